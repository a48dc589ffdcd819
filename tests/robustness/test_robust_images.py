"""Images of every shape and value a previous node or a user can hand over: tiny, huge,
grey, RGBA, slightly out of range, NaN/Inf, long frame batches. Each gets a defined
result or one clear error; nothing outside the faces changes, alpha included.

NaN/Inf (chosen behaviour): sanitised, not refused. A broken upstream node (an fp16 VAE
overflow) should not stop a long batch; the detector and the network see NaN as black and
+-Inf as white/black, every pixel under a pasted face comes out finite, and every pixel
outside the faces is returned exactly as given, NaN included. The API adds a note with
the count; the nodes log it.
"""
from __future__ import annotations

import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import torch

from gpen_pipeline import EnhanceOptions, PasteOptions, enhance_image, enhance_images

import robustness_support as support
from fixture_files import S64_MODEL_FILE

BOX = EnhanceOptions(paste=PasteOptions(mask_mode="box"))


def restore(image, model, detector, options=BOX):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (invalid cast, overflow) may leak out
        return enhance_image(image, model, detector, options)


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 3, 3), (16, 16, 3), (1, 4096, 3), (16, 16, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_tiny_and_thin_images_come_back_unchanged(s64_model, detector, shape, dtype):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == np.float32:
        image = image.astype(np.float32) / 255
    result = restore(image, s64_model, detector)
    assert result.faces == ()
    support.assert_untouched_outside(result.image, image, result.mask)
    assert not result.mask.any() and result.mask.shape == shape[:2]


@pytest.fixture(scope="module")
def memory_runs():
    """The three memory scenarios, each in a fresh interpreter, two at a time."""
    scenarios = [("large", "u8"), ("large", "f32"), ("frames", "100")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(scenarios, pool.map(lambda s: support.measure_memory(*s), scenarios)))


# The call may need its results (output image + paste mask) plus this much; the old code needed
# ~1.5 GB more for an 8192x8192 float image (float copies of the whole image for the detector).
TRANSIENT_LIMIT_MB = 512


@pytest.mark.parametrize("kind", ["u8", "f32"])
def test_8192_photo_is_restored_in_bounded_memory(memory_runs, kind):
    run = memory_runs[("large", kind)]
    assert run["faces"] == [1] and run["same_shape"]
    transient = run["peak_mb"] - run["before_mb"] - run["results_mb"]
    assert transient < TRANSIENT_LIMIT_MB, run
    assert run["after_mb"] - run["before_mb"] < run["results_mb"] + 128, run  # nothing else kept
    assert run["seconds"] < 30, run


def test_100_frames_progress_and_bounded_memory(memory_runs):
    run = memory_runs[("frames", "100")]
    assert run["faces"] == [1] * 100 and run["same_shape"]
    done = [d for d, _ in run["progress"]]
    # Steps: 100 detections, 100 faces, 100 pastes.
    assert done == sorted(done) and run["progress"][-1] == [300, 300] and len(done) >= 100 // 16
    # No per-frame working copies survive: beyond the results, the call needs a constant.
    assert run["peak_mb"] - run["before_mb"] - run["results_mb"] < 150, run


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("image, words", [
    (np.zeros((64, 64), np.uint8), "is greyscale"),
    (np.zeros((64, 64, 1), np.float32), "is greyscale"),
    (np.zeros((64, 64, 2), np.uint8), "must be HxWx3 (RGB) or HxWx4 (RGBA)"),
    (np.zeros((64, 64, 3), np.float64), "must be uint8 or float32 in [0,1], got float64; convert it first"),
    (np.zeros((64, 64, 3), np.uint16), "must be uint8 or float32 in [0,1], got uint16; convert it first"),
    (np.zeros((64, 64, 3), bool), "must be uint8 or float32 in [0,1], got bool; convert it first"),
    (np.zeros((0, 64, 3), np.uint8), "is empty"),
    ([[1, 2, 3]], "must be a numpy array"),
])
def test_unsupported_images_are_refused_before_any_work(s64_model, image, words):
    from gpen_pipeline.detection import Detector

    calls = []
    detector = Detector(name="counting", model=None, source="-", device="cpu",
                        runner=lambda *args: calls.append(args) or support.fixed_detector([], 32).runner(*args))
    with pytest.raises(ValueError) as info:
        enhance_images([support.faceless(32, 32), image], s64_model, detector)  # the bad one second
    assert f"image 1 {words}" in str(info.value)
    assert calls == []  # refused before the good first image was even searched


def test_one_image_passed_where_a_list_is_expected_is_named(s64_model, detector):
    with pytest.raises(ValueError, match="use enhance_image for a single image"):
        enhance_images(support.astronaut(), s64_model, detector)


def test_grey_photo_stays_grey(s64_model, detector):
    grey = cv2.cvtColor(support.astronaut(), cv2.COLOR_RGB2GRAY)
    image = np.dstack([grey] * 3)
    result = restore(image, s64_model, detector)
    assert len(result.faces) == 1
    assert np.array_equal(result.image[..., 0], result.image[..., 1])
    assert np.array_equal(result.image[..., 1], result.image[..., 2])
    support.assert_untouched_outside(result.image, image, result.mask)
    assert np.abs(result.image.astype(int) - image).max() > 10  # and the face was restored


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_rgba_alpha_is_kept_bit_for_bit(s64_model, detector, dtype):
    photo = support.astronaut()
    alpha = np.random.default_rng(5).integers(0, 256, photo.shape[:2], dtype=np.uint8)
    image = np.dstack([photo, alpha])
    if dtype == np.float32:
        image = image.astype(np.float32) / 255
    result = restore(image, s64_model, detector)
    assert len(result.faces) == 1
    np.testing.assert_array_equal(result.image[..., 3], image[..., 3])
    support.assert_untouched_outside(result.image, image, result.mask)
    rgb = restore(np.ascontiguousarray(image[..., :3]), s64_model, detector)
    np.testing.assert_array_equal(result.image[..., :3], rgb.image)  # alpha never leaks into the colours


def test_values_slightly_outside_0_1_are_kept_outside_the_faces(s64_model, detector):
    image = support.astronaut().astype(np.float32) / 255 * 1.06 - 0.03  # an upscaler's overshoot
    result = restore(image, s64_model, detector)
    assert len(result.faces) == 1
    support.assert_untouched_outside(result.image, image, result.mask)
    inside = result.image[result.mask > 0]
    assert np.isfinite(inside).all() and inside.min() >= -0.03 - 1e-6 and inside.max() <= 1.03 + 1e-6


def poisoned(photo: np.ndarray) -> np.ndarray:
    image = photo.astype(np.float32) / 255
    image[95:110, 200:250] = np.nan  # across the astronaut's eyes
    image[130, 215:230] = np.inf
    image[0:4, 0:4] = -np.inf  # far from any face
    image[500:, 500:] = np.nan
    return image


def test_nan_and_inf_are_sanitised_inside_faces_and_kept_outside(s64_model, detector):
    image = poisoned(support.astronaut())
    given = image.copy()
    result = restore(image, s64_model, detector)
    np.testing.assert_array_equal(image, given)  # the caller's array is never written to
    assert len(result.faces) == 1  # NaN over the eyes did not hide the face
    assert np.isfinite(result.image[result.mask > 0]).all()
    support.assert_untouched_outside(result.image, image, result.mask)  # NaN stays NaN out there
    assert np.isnan(result.image[500:, 500:]).all() and np.isneginf(result.image[0:4, 0:4]).all()
    count = int((~np.isfinite(image)).sum())
    assert any(f"{count} NaN/infinite values" in note for note in result.notes), result.notes


def test_all_nan_frame_in_a_batch_does_not_stop_the_others(s64_model, detector):
    photo = support.astronaut()
    broken = np.full(photo.shape, np.nan, np.float32)
    results = enhance_images([photo.astype(np.float32) / 255, broken], s64_model, detector, BOX)
    assert len(results[0].faces) == 1 and results[1].faces == ()
    assert np.isnan(results[1].image).all() and results[1].image.shape == photo.shape
    assert "NaN/infinite" in results[1].notes[0]


# --------------------------------------------------------------------------- the nodes


def as_image(*arrays: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a for a in arrays]))


def face_restore(comfy, image, **options):
    node = comfy.nodes.NODE_CLASS_MAPPINGS["GPENFaceRestore"]()
    return node.restore(image, "GPEN-robust-64.pth", mask_mode="box", device="cpu", precision="fp32",
                        **options)["result"][:2]


def test_node_nan_image_is_restored_logged_and_kept_outside(comfy, caplog):
    image = torch.from_numpy(poisoned(support.astronaut())[None])
    given = image.clone()
    with caplog.at_level(logging.WARNING, logger="GPEN"):
        out, mask = face_restore(comfy, image)
    assert torch.equal(image.nan_to_num(7.0), given.nan_to_num(7.0))  # the input tensor was not written to
    assert mask.any() and torch.isfinite(out[mask > 0]).all()
    outside = mask == 0
    assert torch.equal(out[outside].isnan(), image[outside].isnan())
    finite = outside[..., None].expand_as(image) & torch.isfinite(image)
    assert torch.equal(out[finite], image[finite])
    assert "NaN/infinite" in caplog.text


def test_node_rgba_and_1x1_and_16x16_frames(comfy):
    rgba = np.dstack([support.astronaut(), np.linspace(0, 255, 512 * 512).astype(np.uint8).reshape(512, 512)])
    image = as_image(rgba)
    out, mask = face_restore(comfy, image)
    assert out.shape == image.shape and torch.equal(out[..., 3], image[..., 3]) and mask.any()
    for shape in [(1, 1, 3), (16, 16, 3)]:
        tiny = torch.rand((2, *shape))
        out, mask = face_restore(comfy, tiny)
        assert torch.equal(out, tiny) and not mask.any()


def test_node_refuses_images_comfy_cannot_hold(comfy):
    for bad, words in [(torch.zeros(1, 32, 32, 1), "IMAGE [batch, height, width, 3 or 4]"),
                       (torch.zeros(32, 32, 3), "IMAGE [batch, height, width, 3 or 4]"),
                       (torch.zeros(0, 32, 32, 3), "empty batch")]:
        with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
            face_restore(comfy, bad)


def test_node_batch_of_100_frames_shows_progress_and_keeps_memory_flat(comfy):
    face = cv2.resize(support.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    frames = [np.roll(face, i % 5, axis=1) for i in range(100)]
    frames[50] = support.faceless(256, 256)  # one frame without a face passes through
    image = as_image(*frames)
    given = image.clone()
    calls = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: calls.append((value, total)))
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status_mb("VmRSS")
    try:
        out, mask = face_restore(comfy, image)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    peak = _status_mb("VmHWM")
    assert torch.equal(image, given)
    assert out.shape == image.shape and torch.equal(out[50], image[50]) and not mask[50].any()
    assert bool(mask[:50].flatten(1).any(1).all()) and bool(mask[51:].flatten(1).any(1).all())
    values = [v for v, _ in calls]
    assert len(calls) >= 200 and values == sorted(values) and calls[-1][0] == calls[-1][1]
    # In-process figure (other tests' memory is reused first, so it can only be lower than a
    # fresh process's): the node needs its output and masks plus a small constant, no second
    # copy of the whole batch.
    results_mb = (out.numel() * 4 + mask.numel() * 4) / 2 ** 20
    assert peak - before < results_mb + 120, (peak - before, results_mb)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(field)


# --------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def cli_images(tmp_path_factory):
    """Image files a user may point the CLI at, each restored once (two runs at a time)."""
    folder = tmp_path_factory.mktemp("cli_images")
    photo = support.astronaut()
    cv2.imwrite(str(folder / "one-pixel.png"), np.full((1, 1, 3), 200, np.uint8))
    sixteen = photo.astype(np.uint16) * 257 + np.random.default_rng(3).integers(0, 257, photo.shape).astype(np.uint16)
    cv2.imwrite(str(folder / "deep.png"), cv2.cvtColor(sixteen, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "grey.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
    good = cv2.imencode(".png", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))[1].tobytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 2])
    os.mkfifo(folder / "pipe.png")
    names = ["one-pixel.png", "deep.png", "grey.png", "cut.png", "pipe.png"]

    def run(name):
        return support.run_cli("restore", folder / name, "--model", S64_MODEL_FILE, "-o", folder / "out" / name,
                               "--mask", "box", timeout=60)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return folder, dict(zip(names, pool.map(run, names)))


def test_cli_one_pixel_image_is_copied_unchanged(cli_images):
    folder, runs = cli_images
    assert runs["one-pixel.png"].returncode == 0, runs["one-pixel.png"].stderr
    assert "0 face(s) restored" in runs["one-pixel.png"].stdout
    assert (folder / "out" / "one-pixel.png").read_bytes() == (folder / "one-pixel.png").read_bytes()


def test_cli_16_bit_png_keeps_16_bits_and_every_pixel_outside_the_face(cli_images):
    folder, runs = cli_images
    assert runs["deep.png"].returncode == 0, runs["deep.png"].stderr
    before = cv2.imread(str(folder / "deep.png"), cv2.IMREAD_UNCHANGED)
    after = cv2.imread(str(folder / "out" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert after.dtype == np.uint16 and after.shape == before.shape
    changed = np.any(after != before, axis=2)
    assert 0.005 < changed.mean() < 0.2  # the face only
    ys, xs = np.nonzero(changed)
    assert xs.min() > 100 and xs.max() < 380 and ys.max() < 300  # around the astronaut's face


def test_cli_grey_png_comes_back_grey(cli_images):
    folder, runs = cli_images
    assert runs["grey.png"].returncode == 0, runs["grey.png"].stderr
    after = cv2.imread(str(folder / "out" / "grey.png"), cv2.IMREAD_UNCHANGED)
    before = cv2.imread(str(folder / "grey.png"), cv2.IMREAD_UNCHANGED)
    channels = [after] if after.ndim == 2 else [after[..., i] for i in range(after.shape[2])]
    assert all(np.array_equal(channels[0], c) for c in channels)
    assert channels[0].shape == before.shape and not np.array_equal(channels[0], before)


@pytest.mark.parametrize("name, words", [("cut.png", "cannot read image"), ("pipe.png", "not an image file or a folder")])
def test_cli_unreadable_image_is_one_line(cli_images, name, words):
    folder, runs = cli_images
    line = support.assert_cli_error(runs[name], name, words)
    if name == "cut.png":
        assert "PNG input buffer is incomplete" in line  # libpng's own words, on the same line
    assert not (folder / "out" / name).exists()
