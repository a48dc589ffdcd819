"""Network pre/post-processing, batching and tasks against the official FaceGAN fixture and the s64 model."""
import dataclasses

import cv2
import numpy as np
import pytest
import torch

from gpen_arch import GPENModel
from gpen_pipeline.color import transfer_luminance
from gpen_pipeline.restore import RestoreOutOfMemory, run_network
from restore_arrays import restore_crops

torch.set_num_threads(1)


def _rgb(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bgr[..., ::-1])


@pytest.fixture(scope="module")
def io_fx(fixtures_dir):
    return np.load(fixtures_dir / "facegan_io.npz")


@pytest.fixture
def model(s64_model):
    """Every test here runs the shared s64 fixture model (the stand-in networks below wrap it)."""
    return s64_model


class Recording:
    """Runs the real network and keeps what it was fed."""

    def __init__(self, network):
        self.network, self.seen = network, []

    def __call__(self, x):
        self.seen.append(x.clone())
        return self.network(x)


def recording(model) -> tuple[GPENModel, Recording]:
    """`model` with its network recorded, and the record."""
    rec = Recording(model.network)
    return dataclasses.replace(model, network=rec), rec


def fixed_output(out: np.ndarray) -> GPENModel:
    """A stand-in model that returns the official network output, whatever it is fed."""
    answer = torch.from_numpy(out)
    return GPENModel(lambda x: answer, out.shape[-1], None)


def identity(size: int) -> GPENModel:
    return GPENModel(lambda x: x, size, None)


def test_the_network_sees_the_official_input_bit_for_bit(io_fx, model):
    resized = cv2.resize(_rgb(io_fx["img_bgr_u8"]), (64, 64))  # official: cv2.resize default bilinear
    np.testing.assert_array_equal(resized, _rgb(io_fx["resized_bgr_u8"]))
    model, rec = recording(model)
    restore_crops(model, [resized])
    assert rec.seen[0].dtype == torch.float32 and torch.equal(rec.seen[0], torch.from_numpy(io_fx["img_t"]))


def test_truncating_the_output_matches_official_and_rounding_is_default(io_fx):
    crop = _rgb(io_fx["resized_bgr_u8"])
    truncated = restore_crops(fixed_output(io_fx["model_out"]), [crop], round_output=False)[0]
    np.testing.assert_array_equal(truncated, _rgb(io_fx["out_bgr_u8"]))
    rounded = restore_crops(fixed_output(io_fx["model_out"]), [crop])[0]
    step = rounded.astype(int) - truncated
    assert set(np.unique(step)) == {0, 1}
    assert (step == 1).sum() == 3634  # the count the fixture records as differing from rounding


def test_restore_crops_with_the_s64_model_matches_official_facegan(io_fx, model):
    crop = _rgb(io_fx["img_bgr_u8"])  # 80x72: restore_crops resizes to the model size like FaceGAN
    out = restore_crops(model, [crop], round_output=False)[0]
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - _rgb(io_fx["out_bgr_u8"]))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_colorization_luma_swap_matches_official(io_fx):
    final = transfer_luminance(_rgb(io_fx["colorization_facegan_out_u8"]), _rgb(io_fx["gray_bgr_u8"]))
    assert final.shape == (96, 96, 3)
    assert np.abs(final.astype(int) - _rgb(io_fx["colorization_final_u8"])).max() <= 1


def test_colorize_task_keeps_luminance_and_takes_network_colours(io_fx, model):
    gray = _rgb(io_fx["gray_bgr_u8"])
    recorded, rec = recording(model)
    out = restore_crops(recorded, [gray], task="colorize", round_output=False)[0]
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    gray64 = cv2.resize(gray, (64, 64))
    y_out = cv2.cvtColor(out, cv2.COLOR_RGB2YUV)[..., 0].astype(int)
    in_gamut = (out.min(axis=2) > 0) & (out.max(axis=2) < 255)  # a clipped channel cannot keep luma
    assert in_gamut.sum() > 400  # the random test model makes loud colours; enough stay in gamut
    assert np.abs(y_out - gray64[..., 0])[in_gamut].max() <= 1  # luminance is the input's
    official = cv2.cvtColor(_rgb(io_fx["colorization_facegan_out_u8"]), cv2.COLOR_RGB2YUV)
    uv = cv2.cvtColor(out, cv2.COLOR_RGB2YUV)[..., 1:].astype(int)
    assert np.abs(uv - official[..., 1:])[in_gamut].max() <= 2  # colour is the network's
    assert np.ptp(uv) > 0


def test_colorize_feeds_grey_even_for_a_colour_crop(io_fx, model):
    colour = cv2.resize(_rgb(io_fx["img_bgr_u8"]), (64, 64))
    recorded, rec = recording(model)
    out = restore_crops(recorded, [colour], task="colorize")[0]
    fed = rec.seen[0][0]
    assert torch.equal(fed[0], fed[1]) and torch.equal(fed[1], fed[2])
    luma = cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY).astype(int)
    in_gamut = (out.min(axis=2) > 0) & (out.max(axis=2) < 255)
    assert np.abs(cv2.cvtColor(out, cv2.COLOR_RGB2YUV)[..., 0].astype(int) - luma)[in_gamut].max() <= 1


def _damage(size=64):
    mask = np.zeros((size, size), np.uint8)
    cv2.line(mask, (8, 10), (50, 40), 255, 6)
    return mask


def test_inpaint_paints_damage_white_and_returns_the_network_output(io_fx, model):
    crop = cv2.resize(_rgb(io_fx["img_bgr_u8"]), (64, 64))
    mask = _damage()
    recorded, rec = recording(model)
    out = restore_crops(recorded, [crop], task="inpaint", inpaint_masks=[mask])[0]
    fed = np.rint((rec.seen[0][0].permute(1, 2, 0).numpy() * 0.5 + 0.5) * 255).astype(np.uint8)
    hole = mask >= 128
    assert (fed[hole] == 255).all()
    np.testing.assert_array_equal(fed[~hole], crop[~hole])  # undamaged pixels go in untouched
    broken = crop.copy()
    broken[hole] = 255
    np.testing.assert_array_equal(out, restore_crops(model, [broken])[0])


def test_batches_give_the_same_faces(model):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    together = restore_crops(model, crops)
    one_by_one = restore_crops(model, crops, batch_size=1)
    for a, b in zip(together, one_by_one):
        assert np.abs(a.astype(int) - b).max() <= 1


class OomAbove:
    """A real network that reports out-of-memory for batches above `limit` (fault injection)."""

    def __init__(self, network, limit):
        self.network, self.limit, self.batches = network, limit, []

    def __call__(self, x):
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("injected")
        return self.network(x)


def test_out_of_memory_halves_the_batch_and_still_restores_all(model):
    batch = torch.stack([torch.full((3, 64, 64), v, dtype=torch.uint8) for v in (20, 90, 160, 230, 128)])
    flaky = OomAbove(model.network, limit=2)
    out = run_network(dataclasses.replace(model, network=flaky), batch, batch_size=5).rounded
    assert flaky.batches[:3] == [5, 2, 2] and sum(b for b in flaky.batches if b <= 2) == 5
    ref = run_network(model, batch, batch_size=1).rounded
    assert (out.int() - ref.int()).abs().max() <= 1


def test_out_of_memory_at_one_face_raises_a_clear_error(model):
    with pytest.raises(RestoreOutOfMemory, match="even with one face"):
        restore_crops(dataclasses.replace(model, network=OomAbove(model.network, limit=0)),
                      [np.zeros((64, 64, 3), np.uint8)] * 2)


def test_bad_arguments_are_named():
    crop = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown task"):
        restore_crops(identity(64), [crop], task="sharpen")
    with pytest.raises(ValueError, match="one mask per crop"):
        restore_crops(identity(64), [crop], task="inpaint")
    assert restore_crops(identity(64), []) == []


def test_a_plain_callable_runs_and_float_crops_are_accepted():
    crop = (np.arange(32 * 32 * 3).reshape(32, 32, 3) % 256).astype(np.uint8)
    out = restore_crops(identity(32), [crop.astype(np.float32) / 255.0])[0]
    np.testing.assert_array_equal(out, crop)  # identity network: in -> out exactly (with rounding)
