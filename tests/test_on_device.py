"""The device path (on_device.py) against the cv2 path it mirrors, run on the CPU by forcing it on."""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

import gpen_arch
from gpen_pipeline import EnhanceOptions, enhance_image, enhance_images
from gpen_pipeline.align import align_face
from gpen_pipeline.enhance import _pixel_device
from gpen_pipeline.face import Face
from gpen_pipeline.on_device import paste_crops, warp_crops
from gpen_pipeline.paste import crop_space_mask, paste_faces

torch.set_num_threads(1)  # as test_paste: small tensors run slower on contended threads

FIXTURES = Path(__file__).parent / "fixtures" / "gpen"
ASTRONAUT_LANDMARKS = np.array([[205, 101], [247, 103], [224, 124], [203, 141], [245, 142]], np.float32)
ALWAYS, NEVER = EnhanceOptions(on_device="always"), EnhanceOptions(on_device="never")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut())


@pytest.fixture(scope="module")
def model():
    return gpen_arch.load_model(FIXTURES / "gpen_s64_cm1_n0125.pth")


def _faces() -> list[Face]:
    """The astronaut's face, a copy cut by the top-left border, a small one (smoothed in official mode)."""
    return [Face((172.0, 62.0, 280.0, 178.0), 0.99, ASTRONAUT_LANDMARKS),
            Face((-18.0, -28.0, 90.0, 88.0), 0.9, ASTRONAUT_LANDMARKS - [190, 90]),
            Face((400.0, 435.0, 445.0, 480.0), 0.9, (ASTRONAUT_LANDMARKS - [150, 100]) * 0.4 + [430, 450])]


OVERLAPPING = Face((202.0, 92.0, 310.0, 208.0), 0.9, ASTRONAUT_LANDMARKS + [30, 30])


def _image(astronaut: np.ndarray, kind: str) -> np.ndarray:
    if kind == "uint8":
        return astronaut
    rgb = astronaut.astype(np.float32) / 255.0
    if kind == "float32":
        return rgb
    alpha = np.linspace(0, 1, rgb.shape[0] * rgb.shape[1], dtype=np.float32).reshape(rgb.shape[:2])
    return np.dstack([rgb, alpha])  # float32 RGBA


def _as_u8(crops: torch.Tensor) -> np.ndarray:
    return (crops * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _as_unit(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0


def _levels(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) * (255.0 if image.dtype != np.uint8 else 1.0)


# ---------------------------------------------------------------- crops

@pytest.mark.parametrize("kind", ["uint8", "float32", "rgba"])
@pytest.mark.parametrize("size", [64, 256])
def test_warp_crops_equal_warp_crop_within_a_grey_level(astronaut, kind, size):
    image = _image(astronaut, kind)
    pairs = [align_face(image, face, size) for face in _faces()]
    crops = warp_crops(torch.from_numpy(image), [a.affine for a, _ in pairs], size)
    assert crops.shape == (len(pairs), 3, size, size) and crops.dtype == torch.float32
    got, want = _as_u8(crops), np.stack([c for _, c in pairs])
    diff = np.abs(got.astype(int) - want)
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.999  # cv2's 1/32-pixel grid is the only difference
    assert (want[1] == 0).mean() > 0.1  # the border-cut face does have a black surround


def test_warp_crops_turn_nan_black_as_warp_crop_does(astronaut):
    image = astronaut.astype(np.float32) / 255.0
    image[95:105, 195:215] = np.nan
    aligned, want = align_face(image, Face((172.0, 62.0, 280.0, 178.0), 0.99, ASTRONAUT_LANDMARKS), 128)
    got = _as_u8(warp_crops(torch.from_numpy(image), [aligned.affine], 128))[0]
    assert (want == 0).all(axis=2).sum() > 300
    assert np.abs(got.astype(int) - want).max() <= 1


def test_warp_crops_turn_infinity_white(astronaut):
    # cv2 turns most of an infinite block into NaN (0 * inf in its taps), so warp_crop shows it black:
    # the device path keeps the documented mapping, +inf white, -inf black.
    image = astronaut.astype(np.float32) / 255.0
    image[135:145, 200:250] = np.inf
    image[80:90, 200:250] = -np.inf
    aligned, _ = align_face(image, Face((172.0, 62.0, 280.0, 178.0), 0.99, ASTRONAUT_LANDMARKS), 128)
    crop = warp_crops(torch.from_numpy(image), [aligned.affine], 128)[0]
    assert torch.isfinite(crop).all() and crop.min() >= 0 and crop.max() <= 1
    (x, y), (x_neg, y_neg) = (aligned.affine @ np.array([[225, 140, 1], [225, 85, 1]]).T).T.round().astype(int)
    assert (crop[:, y, x] == 1).all() and (crop[:, y_neg, x_neg] == 0).all()


def test_crops_of_a_face_outside_the_image_are_black(astronaut):
    face = Face((0.0, 0.0, 1.0, 1.0), 0.9, ASTRONAUT_LANDMARKS + 5000)
    aligned, want = align_face(astronaut, face, 64)
    assert not want.any()
    assert not warp_crops(torch.from_numpy(astronaut), [aligned.affine], 64).any()


# ---------------------------------------------------------------- paste

def _paste_both(image, size, mode, strength, faces=None, rng_seed=0):
    """paste_faces and paste_crops on the same restored crops (the aligned crops plus noise)."""
    pairs = [align_face(image, face, size) for face in faces or _faces()]
    aligned, originals = [a for a, _ in pairs], [c for _, c in pairs]
    rng = np.random.default_rng(rng_seed)
    restored = [np.clip(c.astype(int) + rng.integers(-40, 41, c.shape), 0, 255).astype(np.uint8) for c in originals]
    parse = np.pad(np.full((400, 400), 255, np.uint8), 56) if mode == "parse" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # official mode without a parser warns
        want = paste_faces(image, aligned, restored, mask_mode=mode, strength=strength,
                           parse_masks=None if parse is None else [parse] * len(restored), original_crops=originals)
    crop_masks = torch.from_numpy(np.stack([crop_space_mask(mode, c, parse, None, 0.0) for c in restored]))
    got_image, got_mask = paste_crops(torch.from_numpy(image), aligned, _as_unit(restored), crop_masks, strength,
                                      mode, originals=_as_unit(originals))
    return want, got_image.numpy(), got_mask.numpy()


@pytest.mark.parametrize("mode", ["official", "box", "parse"])
@pytest.mark.parametrize("kind", ["uint8", "rgba"])
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_paste_crops_equal_paste_faces_within_a_grey_level(astronaut, mode, kind, strength):
    image = _image(astronaut, kind)
    want, got, mask = _paste_both(image, 128, mode, strength)
    assert got.dtype == image.dtype and got.shape == image.shape
    assert np.abs(_levels(got) - _levels(want.image)).max() <= 1.0 + 1e-3
    np.testing.assert_allclose(mask, want.mask, atol=1e-4)
    np.testing.assert_array_equal(mask > 0, want.mask > 0)
    outside = mask == 0
    assert 0.3 < outside.mean() < 0.95
    np.testing.assert_array_equal(got[outside], image[outside])
    if kind == "rgba":
        np.testing.assert_array_equal(got[..., 3], image[..., 3])


def test_overlapping_faces_take_the_higher_mask(astronaut):
    faces = [_faces()[0], OVERLAPPING]
    want, got, mask = _paste_both(astronaut, 128, "box", 1.0, faces)
    np.testing.assert_allclose(mask, want.mask, atol=1e-4)
    alone = [_paste_both(astronaut, 128, "box", 1.0, [face])[0].mask for face in faces]
    np.testing.assert_allclose(mask, np.maximum(*alone), atol=1e-4)
    # Equal masks (the plateau of both) keep the first face on both paths; where they differ by less
    # than float rounding, which face wins is a coin toss on either path.
    both = (alone[0] > 0) & (alone[1] > 0)
    gap = np.abs(alone[0] - alone[1])
    near_tie = both & (gap > 0) & (gap < 1e-4)
    assert both.sum() > 2000 and (both & (gap == 0)).sum() > 1000 and near_tie.sum() < 0.01 * both.sum()
    assert np.abs(got.astype(int) - want.image)[~near_tie].max() <= 1


def test_paste_leaves_nan_outside_the_faces_and_cleans_it_under_them(astronaut):
    image = astronaut.astype(np.float32) / 255.0
    image[0:20, 400:420] = np.nan  # far from every face
    image[110:115, 215:225] = np.nan  # under the astronaut's face
    want, got, mask = _paste_both(image, 128, "box", 1.0)
    assert np.isnan(got[0:20, 400:420]).all()
    assert np.isfinite(got[mask > 0]).all()
    assert np.nanmax(np.abs(_levels(got) - _levels(want.image))) <= 1.0 + 1e-3


def test_paste_on_an_upscaled_target(astronaut):
    pairs = [align_face(astronaut, face, 128) for face in _faces()[:3]]
    aligned, crops = [a for a, _ in pairs], [c for _, c in pairs]
    target = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    for mode in ("official", "box"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = paste_faces(target, aligned, crops, mask_mode=mode, original_crops=crops)
        masks = torch.from_numpy(crop_space_mask(mode, crops[0], None, None, 0.0)[None]).expand(len(crops), -1, -1)
        got, mask = paste_crops(torch.from_numpy(target), aligned, _as_unit(crops), masks, 1.0, mode,
                                originals=_as_unit(crops))
        assert np.abs(got.numpy().astype(int) - want.image).max() <= 1
        np.testing.assert_allclose(mask.numpy(), want.mask, atol=1e-4)


def test_paste_with_strength_zero_or_no_face_returns_the_image(astronaut):
    aligned, crop = align_face(astronaut, _faces()[0], 64)
    masks = torch.ones((1, 64, 64))
    for records, strength in (([aligned], 0.0), ([], 1.0)):
        got, mask = paste_crops(torch.from_numpy(astronaut), records, _as_unit([crop]), masks, strength)
        np.testing.assert_array_equal(got.numpy(), astronaut)
        assert not mask.any()


# ---------------------------------------------------------------- enhance_images

def test_enhance_on_device_matches_the_numpy_path(astronaut, model, detector):
    coffee = skimage.data.coffee()
    images = [astronaut, coffee, np.ascontiguousarray(astronaut[:, ::-1])]
    progress = []
    device = enhance_images(images, model, detector, ALWAYS, progress=lambda d, t: progress.append((d, t)))
    host = enhance_images(images, model, detector, NEVER)
    assert progress[-1] == (2, 2)
    assert device[1].image is coffee and not device[1].mask.any() and device[1].faces == ()
    for got, want, image in zip(device[::2], host[::2], images[::2]):
        assert len(got.faces) == len(want.faces) == 1
        assert got.faces[0].face.box == want.faces[0].face.box
        assert np.abs(got.image.astype(int) - want.image).max() <= 2
        assert np.abs(got.mask - want.mask).max() <= 1 / 255
        assert np.abs(got.crops[0].astype(int) - want.crops[0]).max() <= 2
        assert got.crops[0].dtype == np.uint8 and got.crops[0].shape == (64, 64, 3)
        outside = got.mask == 0
        np.testing.assert_array_equal(got.image[outside], image[outside])
        assert np.abs(got.image.astype(int) - image).max() > 20  # the face was restored
    assert device[0].notes == host[0].notes


@pytest.mark.parametrize("options", [EnhanceOptions(mask_mode="box", strength=0.7),
                                     EnhanceOptions(strength=0.5, keep_gray=True)])
def test_enhance_on_device_float_rgba_and_options(astronaut, model, detector, options):
    image = _image(astronaut, "rgba")
    image[0:10, 0:10, :3] = np.nan  # no face there: stays NaN on both paths
    got = enhance_image(image, model, detector, EnhanceOptions(**{**options.__dict__, "on_device": "always"}))
    want = enhance_image(image, model, detector, options)
    assert got.image.dtype == np.float32 and got.image.shape == image.shape
    assert np.nanmax(np.abs(got.image - want.image)) <= 2 / 255
    assert np.abs(got.mask - want.mask).max() <= 1 / 255
    np.testing.assert_array_equal(got.image[..., 3], image[..., 3])
    outside = got.mask == 0
    np.testing.assert_array_equal(got.image[outside], image[outside])  # NaN included (array_equal: NaN == NaN)


def test_enhance_on_device_pastes_onto_a_larger_target(astronaut, model, detector):
    target = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    got = enhance_image(astronaut, model, detector, ALWAYS, target=target)
    want = enhance_image(astronaut, model, detector, NEVER, target=target)
    assert got.image.shape == target.shape
    assert np.abs(got.image.astype(int) - want.image).max() <= 2
    assert np.abs(got.mask - want.mask).max() <= 1 / 255


def test_image_without_faces_comes_back_unchanged(model, detector):
    coffee = skimage.data.coffee()
    result = enhance_image(coffee, model, detector, ALWAYS)
    assert result.image is coffee and result.faces == () and not result.mask.any()


@pytest.mark.parametrize("options", [EnhanceOptions(color_match=True), EnhanceOptions(task="colorize"),
                                     EnhanceOptions(task="inpaint")])
def test_options_the_device_path_lacks_fall_back_to_numpy(astronaut, model, detector, options):
    assert _pixel_device(model, EnhanceOptions(**{**options.__dict__, "on_device": "always"})) is None
    damage = np.zeros(astronaut.shape[:2], np.float32)
    damage[110:130, 200:250] = 1.0
    kwargs = {"inpaint_mask": damage} if options.task == "inpaint" else {}
    forced = enhance_image(astronaut, model, detector, EnhanceOptions(**{**options.__dict__, "on_device": "always"}),
                           **kwargs)
    host = enhance_image(astronaut, model, detector, options, **kwargs)
    np.testing.assert_array_equal(forced.image, host.image)
    np.testing.assert_array_equal(forced.mask, host.mask)


def test_on_device_option_chooses_the_path(model):
    cpu = torch.device("cpu")
    assert _pixel_device(model, ALWAYS) == cpu
    assert _pixel_device(model, NEVER) is None
    assert _pixel_device(model, EnhanceOptions()) is None  # "auto" keeps a CPU model on numpy
    assert _pixel_device(model, EnhanceOptions(on_device="always", mask_mode="parse")) == cpu
    with pytest.raises(ValueError, match="on_device"):
        EnhanceOptions(on_device="gpu")


def test_interrupt_stops_the_device_path(astronaut, model, detector):
    calls = []

    def check():
        calls.append(1)
        if len(calls) > 1:
            raise InterruptedError

    with pytest.raises(InterruptedError):
        enhance_images([astronaut, astronaut], model, detector, ALWAYS, check_interrupt=check)
