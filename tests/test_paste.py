"""Cut and paste in torch: against the numpy/cv2 reference (reference_cv2.py), invariants, options, masks.

The torch paste must match the reference within one grey level (float rounding
against cv2's fixed-point warps), write nothing outside its mask, and keep the
behaviour the reference was built for (round trips, rims, colour, grey).
"""
import warnings

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_cv2
from gpen_pipeline import masks
from gpen_pipeline.align import DegenerateLandmarks, invert_affine
from reference_cv2 import align_face, warp_crop
from gpen_pipeline.color import gaussian_blur, is_grayscale, match_color
from gpen_pipeline.cut import as_tensor, cut_crops, cut_masks
from gpen_pipeline.face import Face, crops_from_numpy, crops_to_numpy
from gpen_pipeline.geometry import crop_to_target, inside_source, is_small_in_target
from gpen_pipeline.parsing import (PARSE_REGIONS, ParserNotFound, face_parse_mask, load_parser, parse_mask_fn,
                                   region_mask)
from gpen_pipeline.paste import MASK_MODES, PasteResult, paste_faces, pastes_gray

torch.set_num_threads(1)  # small tensors run slower on contended threads

# Read by eye on skimage's astronaut: eyes, nose tip, mouth corners (image-left first).
ASTRONAUT_LANDMARKS = np.array([[205, 101], [247, 103], [224, 124], [203, 141], [245, 142]], np.float32)
ASTRONAUT_BOX = (172.0, 62.0, 280.0, 178.0)
KINDS = ("uint8", "float32", "rgba_uint8", "rgba_float32")


def _face(landmarks=ASTRONAUT_LANDMARKS, box=ASTRONAUT_BOX) -> Face:
    return Face(box, 0.99, np.asarray(landmarks, np.float32))


def _scene_faces() -> list[Face]:
    """The astronaut's face, a copy cut by the top-left border, a small one (smoothed in official mode)."""
    return [_face(),
            _face(ASTRONAUT_LANDMARKS - [190, 90], (-18.0, -28.0, 90.0, 88.0)),
            _face((ASTRONAUT_LANDMARKS - [150, 100]) * 0.4 + [430, 450], (400.0, 435.0, 445.0, 480.0))]


OVERLAPPING = _face(ASTRONAUT_LANDMARKS + [30, 30], (202.0, 92.0, 310.0, 208.0))


def _image(astronaut: np.ndarray, kind: str) -> np.ndarray:
    rgb = astronaut if kind.endswith("uint8") else astronaut.astype(np.float32) / 255.0
    if not kind.startswith("rgba"):
        return rgb
    ramp = np.linspace(0, 1, rgb.shape[0] * rgb.shape[1], dtype=np.float32).reshape(rgb.shape[:2])
    alpha = np.rint(ramp * 255).astype(np.uint8) if rgb.dtype == np.uint8 else ramp
    return np.dstack([rgb, alpha])


def _identity(image, faces, size):
    """Align, then 'restore' with the identity: the crops go back unchanged."""
    pairs = [align_face(image, f, size) for f in faces]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _noisy(crops, seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(c.astype(int) + rng.integers(-40, 41, c.shape), 0, 255).astype(np.uint8) for c in crops]




def _levels(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) * (255.0 if image.dtype != np.uint8 else 1.0)


def _ellipse_parse_mask() -> np.ndarray:
    mask = np.zeros((512, 512), np.uint8)
    cv2.ellipse(mask, (256, 290), (150, 190), 0, 0, 360, 255, -1)
    return mask


def _psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray, peak: float = 255.0) -> float:
    err = np.mean((a.astype(np.float64) - b.astype(np.float64))[where] ** 2)
    return float(10 * np.log10(peak ** 2 / max(err, 1e-12)))


def _paste(image: np.ndarray, aligned, restored, mode="box", parse_mask=None, feather=None, grow=0.0,
           original_crops=None, keep_gray="off", region=None, **kwargs) -> PasteResult:
    """The torch paste from numpy inputs, its crop masks made by masks.paste_masks (one parse mask for all)."""
    parse = None if parse_mask is None else (lambda crop: parse_mask)
    crop_masks = masks.paste_masks(mode, restored, parse, feather, grow)
    target = as_tensor(image)
    return paste_faces(target, aligned, crops_from_numpy(restored), torch.from_numpy(crop_masks), mode=mode,
                       originals=None if original_crops is None else crops_from_numpy(original_crops),
                       keep_gray=pastes_gray(keep_gray, target),
                       region_mask=None if region is None else as_tensor(region), **kwargs)


def _paste_both(image, aligned, restored, mode, parse_mask=None, keep_gray="off", **kwargs):
    """The reference and the torch paste on the same inputs: (reference result, torch image, torch mask)."""
    parse = None if parse_mask is None else (lambda crop: parse_mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference warns in official mode without a parser
        want = reference_cv2.paste_faces(image, aligned, restored, mask_mode=mode, parse_masks=parse,
                                           keep_gray={"on": True, "off": False}[keep_gray], **kwargs)
    if "region_mask" in kwargs:
        kwargs["region"] = kwargs.pop("region_mask")
    got = _paste(image, aligned, restored, mode, parse_mask=parse_mask, keep_gray=keep_gray, **kwargs)
    return want, got.image.numpy(), got.mask.numpy()


def _assert_matches_reference(want, got, mask, image) -> None:
    assert got.dtype == image.dtype and got.shape == image.shape
    assert np.nanmax(np.abs(_levels(got) - _levels(want.image))) <= 1.0 + 1e-3
    np.testing.assert_allclose(mask, want.mask, atol=1e-4)
    np.testing.assert_array_equal(mask > 0, want.mask > 0)
    outside = mask == 0
    assert outside.any()
    np.testing.assert_array_equal(got[outside], image[outside])  # NaN included: array_equal has NaN == NaN
    if image.shape[2] == 4:
        np.testing.assert_array_equal(got[..., 3], image[..., 3])


def _assert_untouched_outside(result: PasteResult, image: np.ndarray) -> None:
    outside = result.mask.numpy() == 0
    assert outside.any()
    np.testing.assert_array_equal(result.image.numpy()[outside], image[outside])


# ---------------------------------------------------------------- the torch paste against the reference

@pytest.mark.parametrize("mode", MASK_MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_paste_matches_the_reference_in_every_mode_and_pixel_format(astronaut, mode, kind, strength):
    image = _image(astronaut, kind)
    aligned, originals = _identity(image, _scene_faces(), 128)
    assert is_small_in_target(aligned[2], image.shape[:2])  # the small face is smoothed in official mode
    assert inside_source(aligned[1], 128, image.shape[:2]) is not None  # and one is cut by the border
    want, got, mask = _paste_both(image, aligned, _noisy(originals), mode, parse_mask=_ellipse_parse_mask(),
                                  strength=strength, original_crops=originals)
    _assert_matches_reference(want, got, mask, image)
    assert 0.3 < (mask == 0).mean() < 0.95


@pytest.mark.parametrize("mode", MASK_MODES)
def test_strength_without_originals_matches_the_reference(astronaut, mode):
    aligned, originals = _identity(astronaut, _scene_faces(), 128)
    want, got, mask = _paste_both(astronaut, aligned, _noisy(originals), mode, strength=0.35,
                                  parse_mask=_ellipse_parse_mask())
    _assert_matches_reference(want, got, mask, astronaut)


@pytest.mark.parametrize("scale", [0.5, 2.0, 3.0])
@pytest.mark.parametrize("mode", ["official", "box"])
def test_paste_onto_a_resized_target_matches_the_reference(astronaut, scale, mode):
    aligned, originals = _identity(astronaut, _scene_faces(), 128)
    size = round(512 * scale)
    target = cv2.resize(astronaut, (size, size), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    want, got, mask = _paste_both(target, aligned, _noisy(originals), mode, original_crops=originals,
                                  strength=0.8)
    _assert_matches_reference(want, got, mask, target)


@pytest.mark.parametrize("kind", ["uint8", "float32"])
def test_keep_gray_matches_the_reference(astronaut, kind):
    image = _image(astronaut, kind)
    aligned, originals = _identity(image, _scene_faces(), 128)
    want, got, mask = _paste_both(image, aligned, _noisy(originals), "box", keep_gray="on")
    _assert_matches_reference(want, got, mask, image)


@pytest.mark.parametrize("with_originals", [True, False])
@pytest.mark.parametrize("mode", ["official", "parse"])
def test_color_match_matches_the_reference(astronaut, with_originals, mode):
    aligned, originals = _identity(astronaut, _scene_faces(), 128)
    cast = [np.clip(c.astype(int) + [40, -25, 15], 0, 255).astype(np.uint8) for c in _noisy(originals, 3)]
    want, got, mask = _paste_both(astronaut, aligned, cast, mode, parse_mask=_ellipse_parse_mask(),
                                  color_match=True, original_crops=originals if with_originals else None)
    _assert_matches_reference(want, got, mask, astronaut)


@pytest.mark.parametrize("dtype", ["float32", "uint8", "bool"])
def test_region_mask_matches_the_reference(astronaut, dtype):
    aligned, originals = _identity(astronaut, _scene_faces(), 128)
    ramp = np.tile(np.linspace(0, 1.2, 512, dtype=np.float32), (512, 1))  # past 1: clipped on both paths
    region = {"float32": ramp, "uint8": np.rint(np.clip(ramp, 0, 1) * 255).astype(np.uint8),
              "bool": ramp > 0.4}[dtype]
    want, got, mask = _paste_both(astronaut, aligned, _noisy(originals), "box", region_mask=region, strength=0.7)
    _assert_matches_reference(want, got, mask, astronaut)


@pytest.mark.parametrize("mode", ["official"])
def test_overlapping_faces_match_the_reference(astronaut, mode):
    faces = [_scene_faces()[0], OVERLAPPING]
    aligned, originals = _identity(astronaut, faces, 128)
    restored = _noisy(originals)
    want, got, mask = _paste_both(astronaut, aligned, restored, mode)
    np.testing.assert_allclose(mask, want.mask, atol=1e-4)
    _assert_untouched_outside(PasteResult(torch.from_numpy(got), torch.from_numpy(mask)), astronaut)
    # Where the two masks differ by less than float rounding, which face wins is a coin toss on either
    # path (cv2's plateaus read 0.99999976 here and 1 there): compared everywhere else.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # official mode without a parser
        alone = [reference_cv2.paste_faces(astronaut, [a], [r], mask_mode=mode).mask
                 for a, r in zip(aligned, restored)]
    both = (alone[0] > 0) & (alone[1] > 0)
    gap = np.abs(alone[0] - alone[1])
    near_tie = both & (gap > 0) & (gap < 1e-4)
    assert both.sum() > 2000 and (both & (gap == 0)).sum() > 1000 and near_tie.sum() < 0.1 * both.sum()
    assert np.abs(got.astype(int) - want.image)[~near_tie].max() <= 1


def test_overlapping_faces_in_official_mode_take_the_higher_mask_and_the_first_on_ties(astronaut):
    faces = [_scene_faces()[0], OVERLAPPING]
    aligned, originals = _identity(astronaut, faces, 128)
    restored = _noisy(originals)
    both = _paste(astronaut, aligned, restored, "official")
    alone = [_paste(astronaut, [a], [r], "official") for a, r in zip(aligned, restored)]
    np.testing.assert_array_equal(both.mask.numpy(), np.maximum(alone[0].mask.numpy(), alone[1].mask.numpy()))
    first, second = (a.mask.numpy() for a in alone)
    tie = (first == second) & (first > 0)
    assert tie.sum() > 1000  # the plateaus of both masks
    np.testing.assert_array_equal(both.image.numpy()[tie], alone[0].image.numpy()[tie])
    wins = second > first
    np.testing.assert_array_equal(both.image.numpy()[wins], alone[1].image.numpy()[wins])


@pytest.mark.parametrize("mode", ["box", "parse"])
def test_overlapping_faces_outside_official_mode_mix_by_their_mask_weights(astronaut, mode):
    # Each face alone gives image*(1-m) + face*m, so m*face is recovered from it; together the faces
    # must give image*(1-M) + M * sum(m*face)/sum(m) with M the larger mask: no switch where masks cross.
    image = astronaut.astype(np.float32) / 255.0
    aligned, originals = _identity(astronaut, [_scene_faces()[0], OVERLAPPING], 128)
    restored = _noisy(originals)
    parse = _ellipse_parse_mask() if mode == "parse" else None
    both = _paste(image, aligned, restored, mode, parse_mask=parse)
    alone = [_paste(image, [a], [r], mode, parse_mask=parse) for a, r in zip(aligned, restored)]
    masks_ = [a.mask.numpy()[..., None] for a in alone]
    weighted = [a.image.numpy()[..., :3] - image * (1.0 - m) for a, m in zip(alone, masks_)]
    total, top = masks_[0] + masks_[1], np.maximum(masks_[0], masks_[1])
    mixed = (weighted[0] + weighted[1]) / np.maximum(total, 1e-12)
    want = image * (1.0 - top) + mixed * top
    overlap = (masks_[0][..., 0] > 0.05) & (masks_[1][..., 0] > 0.05)
    assert overlap.sum() > 2000
    np.testing.assert_allclose(both.image.numpy()[..., :3], want, atol=2e-5)
    np.testing.assert_array_equal(both.mask.numpy(), top[..., 0])


@pytest.mark.parametrize("options", [{"strength": 0.5}, {"color_match": True}])
def test_restored_crops_at_another_size_match_the_reference(astronaut, options):
    # The originals are resized to the restored size: cv2's fixed-point resize and torch's float one differ
    # by a grey level, which each option alone keeps within one (together they can reach two).
    aligned, originals = _identity(astronaut, _scene_faces(), 128)
    bigger = [cv2.resize(c, (192, 192), interpolation=cv2.INTER_CUBIC) for c in _noisy(originals)]
    want, got, mask = _paste_both(astronaut, aligned, bigger, "official", original_crops=originals, **options)
    _assert_matches_reference(want, got, mask, astronaut)


def test_nan_stays_outside_the_faces_and_is_cleaned_under_them(astronaut):
    image = astronaut.astype(np.float32) / 255.0
    image[0:20, 400:420] = np.nan  # far from every face
    image[110:115, 215:225] = np.nan  # under the astronaut's face
    image[120:123, 215:225] = np.inf
    aligned, originals = _identity(image, _scene_faces(), 128)
    want, got, mask = _paste_both(image, aligned, _noisy(originals), "box")
    assert np.isnan(got[0:20, 400:420]).all()
    assert np.isfinite(got[mask > 0]).all()
    _assert_matches_reference(want, got, mask, image)


# ---------------------------------------------------------------- invariants

@pytest.mark.parametrize("mode", MASK_MODES)
def test_strength_zero_returns_a_new_equal_image(astronaut, mode):
    aligned, crops = _identity(astronaut, [_face()], 256)
    bright = [np.full_like(c, 250) for c in crops]
    target = as_tensor(astronaut)
    result = _paste(astronaut, aligned, bright, mode, parse_mask=_ellipse_parse_mask(), strength=0.0,
                    original_crops=crops)
    np.testing.assert_array_equal(result.image.numpy(), astronaut)
    assert result.image.data_ptr() != target.data_ptr()
    assert not result.mask.any()


def test_no_faces_return_a_new_equal_image(astronaut):
    target = as_tensor(astronaut)
    result = paste_faces(target, [], torch.zeros((0, 3, 64, 64), dtype=torch.uint8), torch.zeros((1, 64, 64)))
    assert torch.equal(result.image, target) and result.image.data_ptr() != target.data_ptr()
    assert result.mask.shape == astronaut.shape[:2] and result.mask.dtype == torch.float32 and not result.mask.any()


def test_face_far_outside_the_target_leaves_it_unchanged(astronaut):
    aligned, crops = _identity(astronaut, [_face(ASTRONAUT_LANDMARKS + [3000, 0])], 128)
    result = _paste(astronaut, aligned, crops)
    np.testing.assert_array_equal(result.image.numpy(), astronaut)
    assert not result.mask.any()


def test_the_input_tensor_is_never_written(astronaut):
    image = _image(astronaut, "rgba_float32")
    aligned, crops = _identity(image, _scene_faces(), 128)
    target = torch.from_numpy(image.copy())
    before = target.clone()
    masks_ = torch.from_numpy(masks.paste_masks("box", crops, None, None, 0.0))
    paste_faces(target, aligned, crops_from_numpy(_noisy(crops)), masks_, mode="box", color_match=True, keep_gray=True)
    assert torch.equal(target, before)


# ---------------------------------------------------------------- behaviour

@pytest.mark.parametrize("mode", ["box", "parse"])
def test_identity_round_trip_reproduces_the_photo(astronaut, mode):
    aligned, crops = _identity(astronaut, [_face()], 512)
    result = _paste(astronaut, aligned, crops, mode, parse_mask=_ellipse_parse_mask())
    inside = result.mask.numpy() > 0
    assert inside.sum() > 5000
    assert _psnr(result.image.numpy(), astronaut, inside) >= 45.0
    _assert_untouched_outside(result, astronaut)


def test_official_mode_without_a_parser_uses_the_rectangle_mask(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 512)
    result = _paste(astronaut, aligned, crops, "official")
    inside = result.mask.numpy() > 0
    # The official recipe smooths faces under 100 px and warps bilinearly: a softer copy, still close.
    assert _psnr(result.image.numpy(), astronaut, inside) >= 35.0
    _assert_untouched_outside(result, astronaut)
    np.testing.assert_allclose(result.mask.numpy(),
                               cv2.warpAffine(masks.official_rect_mask(512), aligned[0].inverse, (512, 512),
                                              flags=cv2.INTER_LINEAR), atol=1e-5)


def test_float32_image_is_bit_identical_outside_the_mask(astronaut):
    image = astronaut.astype(np.float32) / 255.0
    image[0, 0] = [0.1234567, 0.7654321, -0.0]  # values no uint8 round trip would keep
    aligned, crops = _identity(image, [_face()], 256)
    result = _paste(image, aligned, crops)
    assert result.image.dtype == torch.float32 and result.image.shape == image.shape
    _assert_untouched_outside(result, image)
    assert np.signbit(result.image.numpy()[0, 0, 2])
    assert _psnr(result.image.numpy(), image, result.mask.numpy() > 0, peak=1.0) >= 40.0


def test_rgba_alpha_passes_through_bit_exact(astronaut):
    alpha = np.random.default_rng(1).integers(0, 256, astronaut.shape[:2], dtype=np.uint8)
    rgba = np.dstack([astronaut, alpha])
    aligned, crops = _identity(rgba, [_face()], 256)
    result = _paste(rgba, aligned, crops)
    assert result.image.shape == rgba.shape
    np.testing.assert_array_equal(result.image[..., 3].numpy(), alpha)
    np.testing.assert_array_equal(result.image[..., :3].numpy(), _paste(astronaut, aligned, crops).image.numpy())


@pytest.mark.parametrize("scale", [2.0, 3.5])
def test_upscaled_target_gets_the_face_where_it_is(astronaut, scale):
    aligned, crops = _identity(astronaut, [_face()], 512)
    h, w = astronaut.shape[:2]
    target = cv2.resize(astronaut, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
    result = _paste(target, aligned, crops)
    assert result.image.shape == target.shape
    _assert_untouched_outside(result, target)
    # The pasted copy is the (softer) original upscaled again.
    assert _psnr(result.image.numpy(), target, result.mask.numpy() > 0.5) >= 33.0
    small = _paste(astronaut, aligned, crops).mask.numpy()
    assert (result.mask.numpy() > 0.5).sum() / (small > 0.5).sum() == pytest.approx(scale ** 2, rel=0.03)


def test_scaled_transform_equals_aligning_on_the_resized_image(astronaut):
    """Pixel centres: a point x in the original is at s*(x+0.5)-0.5 in a copy resized by s."""
    s = 2.5
    aligned, _ = align_face(astronaut, _face(), 512)
    big_hw = (round(512 * s), round(512 * s))
    big_face = _face(ASTRONAUT_LANDMARKS * s + 0.5 * (s - 1.0))
    big_aligned, _ = align_face(np.zeros(big_hw + (3,), np.uint8), big_face, 512)
    np.testing.assert_allclose(crop_to_target(aligned, 512, big_hw), big_aligned.inverse, atol=1e-4)


def test_restored_crop_at_another_size_is_scaled(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 512)
    half = [cv2.resize(crops[0], (256, 256), interpolation=cv2.INTER_AREA)]
    result = _paste(astronaut, aligned, half)
    assert _psnr(result.image.numpy(), astronaut, result.mask.numpy() > 0) >= 35.0


def test_strength_scales_the_mask_without_originals(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 256)
    full = _paste(astronaut, aligned, crops).mask
    half = _paste(astronaut, aligned, crops, strength=0.5).mask
    torch.testing.assert_close(half, 0.5 * full, atol=1e-7, rtol=0)


def test_official_strength_blends_crops_like_add_weighted(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 256)
    white = [np.full_like(crops[0], 255)]
    result = _paste(astronaut, aligned, white, "official", parse_mask=_ellipse_parse_mask(), strength=0.8,
                    original_crops=crops)
    inner = result.mask.numpy() > 0.999
    expected = 0.8 * 255 + 0.2 * astronaut[inner].astype(float)  # crop-space mix, then pasted at full mask
    assert np.abs(result.image.numpy()[inner] - expected).mean() < 3.0


def test_face_cut_by_the_border_has_no_dark_rim_outside_official_mode(astronaut):
    cut = np.ascontiguousarray(astronaut[:, 215:])  # the left half of the face is outside
    face = _face(ASTRONAUT_LANDMARKS - [215, 0], (0.0, 62.0, 65.0, 178.0))
    aligned, crops = _identity(cut, [face], 512)
    assert (crops[0][:, :100] == 0).all()  # the crop's surround is black
    result = _paste(cut, aligned, crops)
    image, mask = result.image.numpy(), result.mask.numpy()
    edge = mask[:, 0] > 0.2
    assert edge.sum() > 30  # the face does reach the border
    assert np.abs(image[:, 0].astype(int) - cut[:, 0])[edge].max() <= 8
    # The official recipe pastes the crop's black surround into the edge.
    official = _paste(cut, aligned, crops, "official")
    official_edge = official.mask.numpy()[:, 0] > 0.2
    assert np.abs(official.image.numpy()[:, 0].astype(int) - cut[:, 0])[official_edge].max() > 20
    assert _psnr(image, cut, mask > 0) >= 42.0
    _assert_untouched_outside(result, cut)


def test_region_mask_restricts_the_paste(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 256)
    region = np.zeros(astronaut.shape[:2], np.float32)
    region[:, :226] = 1.0  # only the image-left half of the face
    result = _paste(astronaut, aligned, [np.full_like(crops[0], 255)], region=region)
    np.testing.assert_array_equal(result.image.numpy()[:, 226:], astronaut[:, 226:])
    assert not result.mask[:, 226:].any() and result.mask[:, :226].max() > 0.99


def test_color_match_removes_a_colour_cast_and_keeps_the_detail(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 256)
    cast = [np.clip(crops[0].astype(int) + [40, -25, 15], 0, 255).astype(np.uint8)]
    plain = _paste(astronaut, aligned, cast)
    matched = _paste(astronaut, aligned, cast, color_match=True)
    core = plain.mask.numpy() > 0.99
    shift_plain = (plain.image.numpy()[core].astype(float) - astronaut[core]).mean(axis=0)
    shift_matched = (matched.image.numpy()[core].astype(float) - astronaut[core]).mean(axis=0)
    assert np.abs(shift_plain).max() > 14
    assert np.abs(shift_matched).max() < 3, shift_matched
    lap = lambda im: cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), cv2.CV_64F)[core].std()  # noqa: E731
    assert lap(matched.image.numpy()) == pytest.approx(lap(plain.image.numpy()), rel=0.1)


def test_keep_gray_makes_faces_grey_in_a_black_and_white_photo(astronaut):
    gray = cv2.cvtColor(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert pastes_gray("auto", as_tensor(gray)) and not pastes_gray("auto", as_tensor(astronaut))
    assert pastes_gray("on", as_tensor(astronaut)) and not pastes_gray("off", as_tensor(gray))
    aligned, crops = _identity(gray, [_face()], 256)
    coloured = [np.clip(crops[0].astype(int) + [40, -25, 15], 0, 255).astype(np.uint8)]
    auto = _paste(gray, aligned, coloured, keep_gray="auto")
    assert is_grayscale(auto.image, tolerance=1 / 255, fraction=1.0)
    assert not is_grayscale(_paste(gray, aligned, coloured, keep_gray="off").image)
    in_colour_photo = _paste(astronaut, aligned, coloured, keep_gray="auto")
    core = in_colour_photo.mask.numpy() > 0.99
    assert np.ptp(in_colour_photo.image.numpy()[core].astype(int), axis=1).mean() > 20
    with pytest.raises(ValueError, match="keep_gray"):
        pastes_gray(True, as_tensor(gray))


def test_feather_and_grow_change_the_mask(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 256)
    area = lambda **kw: (_paste(astronaut, aligned, crops, **kw).mask.numpy() > 0.5).sum()  # noqa: E731
    assert area(grow=4) > area() > area(grow=-10)
    soft_band = lambda m: ((m > 0.02) & (m < 0.98)).sum()  # noqa: E731
    sharp = _paste(astronaut, aligned, crops, feather=2).mask.numpy()
    soft = _paste(astronaut, aligned, crops, feather=30).mask.numpy()
    assert soft_band(soft) > 3 * soft_band(sharp)
    pm = _ellipse_parse_mask()
    assert area(mode="parse", parse_mask=pm, grow=5) > area(mode="parse", parse_mask=pm)


def test_bad_arguments_are_named(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 128)
    target, unit = as_tensor(astronaut), crops_from_numpy(crops)
    mask = torch.from_numpy(masks.box_mask(128))[None]
    with pytest.raises(ValueError, match="pair up"):
        paste_faces(target, aligned, unit[:0], mask)
    with pytest.raises(ValueError, match="unknown mode"):
        paste_faces(target, aligned, unit, mask, mode="oval")
    with pytest.raises(ValueError, match="strength"):
        paste_faces(target, aligned, unit, mask, strength=1.5)
    with pytest.raises(ValueError, match="crop_masks"):
        paste_faces(target, aligned, unit, mask[:, :64])
    with pytest.raises(ValueError, match=r"crops must be an \(N,3,S,S\)"):
        paste_faces(target, aligned, unit[..., :100], mask)
    with pytest.raises(ValueError, match="as_tensor"):
        paste_faces(astronaut, aligned, unit, mask)
    with pytest.raises(ValueError, match="region_mask"):
        paste_faces(target, aligned, unit, mask, region_mask=torch.ones((5, 5)))
    with pytest.raises(ValueError, match="region_mask contains NaN"):
        paste_faces(target, aligned, unit, mask, region_mask=torch.full(astronaut.shape[:2], float("nan")))
    with pytest.raises(ValueError, match="originals"):
        paste_faces(target, aligned, unit, mask, originals=unit[0])
    with pytest.raises(ValueError, match="pastes_gray"):
        paste_faces(target, aligned, unit, mask, keep_gray="auto")


# ---------------------------------------------------------------- cutting crops

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [64, 256])
def test_cut_crops_equal_warp_crop_within_a_grey_level(astronaut, kind, size):
    image = _image(astronaut, kind)
    pairs = [align_face(image, face, size) for face in _scene_faces()]
    crops = cut_crops(as_tensor(image), [a.affine for a, _ in pairs], size)
    assert crops.shape == (len(pairs), 3, size, size) and crops.dtype == torch.uint8
    got, want = crops_to_numpy(crops), np.stack([c for _, c in pairs])
    diff = np.abs(got.astype(int) - want)
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.999  # cv2's 1/32-pixel grid is the only difference
    assert (want[1] == 0).mean() > 0.1  # the border-cut face does have a black surround


def test_cut_crops_turn_nan_black_as_warp_crop_does(astronaut):
    image = astronaut.astype(np.float32) / 255.0
    image[95:105, 195:215] = np.nan
    aligned, want = align_face(image, _face(), 128)
    got = crops_to_numpy(cut_crops(as_tensor(image), [aligned.affine], 128))[0]
    assert (want == 0).all(axis=2).sum() > 300
    assert np.abs(got.astype(int) - want).max() <= 1


def test_cut_crops_turn_infinity_white_and_minus_infinity_black(astronaut):
    # cv2 turns most of an infinite block into NaN (0 * inf in its taps), so warp_crop shows it black:
    # cut_crops keeps the documented mapping, +inf white, -inf black.
    image = astronaut.astype(np.float32) / 255.0
    image[135:145, 200:250] = np.inf
    image[80:90, 200:250] = -np.inf
    aligned, _ = align_face(image, _face(), 128)
    crop = cut_crops(as_tensor(image), [aligned.affine], 128)[0]
    (x, y), (x_neg, y_neg) = (aligned.affine @ np.array([[225, 140, 1], [225, 85, 1]]).T).T.round().astype(int)
    assert (crop[:, y, x] == 255).all() and (crop[:, y_neg, x_neg] == 0).all()


def test_crops_of_a_face_outside_the_image_are_black(astronaut):
    aligned, want = align_face(astronaut, _face(ASTRONAUT_LANDMARKS + 5000, (0.0, 0.0, 1.0, 1.0)), 64)
    assert not want.any()
    assert not cut_crops(as_tensor(astronaut), [aligned.affine], 64).any()


def test_cut_masks_see_an_image_mask_through_each_crop_as_cv2_does(astronaut):
    damage = np.zeros(astronaut.shape[:2], np.float32)
    damage[110:130, 200:250] = 1.0
    damage[0:40, 0:60] = 0.5  # under the border-cut face
    records = [align_face(astronaut, face, 96)[0] for face in _scene_faces()]
    got = cut_masks(as_tensor(damage), [r.affine for r in records], 96)
    assert got.shape == (3, 96, 96) and got.dtype == torch.float32
    for crop_mask, record in zip(got.numpy(), records):
        want = cv2.warpAffine(damage, record.affine, (96, 96), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        assert np.abs(crop_mask - want).max() <= 1 / 32 + 1e-6  # cv2's 1/32-pixel grid
    assert got[0].max() == 1.0 and got[1].max() > 0.4


def test_as_tensor_shares_memory_and_takes_read_only_and_flipped_arrays(astronaut):
    assert not astronaut.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shared = as_tensor(astronaut)
    assert shared.dtype == torch.uint8 and shared.shape == astronaut.shape
    assert shared.data_ptr() == astronaut.ctypes.data
    flipped = astronaut[:, ::-1]
    np.testing.assert_array_equal(as_tensor(flipped).numpy(), flipped)
    as_float = astronaut.astype(np.float32)
    assert as_tensor(as_float, "cpu").dtype == torch.float32
    assert as_tensor(shared) is shared
    with pytest.raises(ValueError, match="numpy array or a torch tensor"):
        as_tensor([[1, 2, 3]])


# ---------------------------------------------------------------- colour

@pytest.mark.parametrize("sigma", [1.0, 2.5, 16.0])
def test_gaussian_blur_equals_cv2(sigma):
    planes = np.random.default_rng(2).random((3, 96, 80)).astype(np.float32) * 255
    want = np.stack([cv2.GaussianBlur(p, (0, 0), sigma) for p in planes])
    np.testing.assert_allclose(gaussian_blur(torch.from_numpy(planes), sigma).numpy(), want, atol=2e-3)


@pytest.mark.parametrize("cut_by_border", [False, True])
def test_match_color_equals_the_cv2_version_within_a_grey_level(astronaut, cut_by_border):
    face = _scene_faces()[1 if cut_by_border else 0]
    aligned, crop = align_face(astronaut, face, 128)
    restored = np.clip(_noisy([crop])[0].astype(int) + [30, -20, 10], 0, 255).astype(np.uint8)
    inside = inside_source(aligned, 128, astronaut.shape[:2])
    assert (inside is not None) == cut_by_border
    want = reference_cv2.match_color(restored, crop, weight=inside)
    as_levels = lambda c: torch.from_numpy(c).permute(2, 0, 1).float()  # noqa: E731
    got = match_color(as_levels(restored), as_levels(crop), None if inside is None else torch.from_numpy(inside))
    assert np.abs(got.permute(1, 2, 0).numpy() - want).max() <= 1


def test_is_grayscale_judges_arrays_and_tensors_alike(astronaut):
    gray = cv2.cvtColor(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    specks = gray.copy()
    specks[::40, ::40] = [255, 0, 0]  # 0.06 % coloured: still black-and-white
    tinted = gray.copy()
    tinted[..., 0] = np.clip(tinted[..., 0].astype(int) + 3, 0, 255)  # past the 2-level tolerance
    for image, expected in ((gray, True), (specks, True), (tinted, False), (astronaut, False)):
        for kind in (image, image.astype(np.float32) / 255.0):
            assert is_grayscale(kind) == expected
            assert is_grayscale(as_tensor(kind)) == expected


# ---------------------------------------------------------------- crop-space masks

def test_paste_masks_give_one_mask_per_face_or_one_for_all():
    crops = [np.full((64, 64, 3), v, np.uint8) for v in (10, 200)]
    calls = []

    def parse(crop):
        calls.append(crop)
        return _ellipse_parse_mask()

    assert masks.paste_masks("official", crops, None, None, 0.0).shape == (1, 64, 64)
    assert masks.paste_masks("box", crops, parse, None, 0.0).shape == (1, 64, 64) and not calls
    per_face = masks.paste_masks("parse", crops, parse, 5.0, 2.0)
    assert per_face.shape == (2, 64, 64) and per_face.dtype == np.float32 and len(calls) == 2
    np.testing.assert_array_equal(calls[1], crops[1])
    np.testing.assert_allclose(masks.paste_masks("official", crops, parse, None, 0.0)[1],
                               masks.official_parse_mask(_ellipse_parse_mask(), 64))
    with pytest.raises(ValueError, match="needs a face parser"):
        masks.paste_masks("parse", crops, None, None, 0.0)
    with pytest.raises(ValueError, match="unknown mask mode"):
        masks.paste_masks("oval", crops, None, None, 0.0)
    with pytest.raises(ValueError, match="at least one crop"):
        masks.paste_masks("box", [], None, None, 0.0)
    with pytest.raises(ValueError, match="must all be 64x64"):
        masks.paste_masks("box", [crops[0], np.zeros((32, 32, 3), np.uint8)], None, None, 0.0)


@pytest.mark.parametrize("size", [64, 512, 2048])
def test_box_mask_reaches_zero_smoothly_before_the_crop_edge(size):
    m = masks.box_mask(size)
    assert m.shape == (size, size) and m.dtype == np.float32
    for edge in (m[0], m[-1], m[:, 0], m[:, -1]):
        assert not edge.any()
    assert m[size // 2, size // 2] == 1.0
    width = 0.10 * size  # default feather: 10 % of the crop
    steepest = np.abs(np.diff(m, axis=1)).max()
    assert steepest <= 1.5 / width + 1e-3  # smoothstep's steepest slope: no step anywhere


def test_official_masks_follow_the_documented_recipe():
    """GPEN demo: mask/255, 26 px border zeroed, GaussianBlur((101,101), 4) twice (float64), resize to S."""
    rng = np.random.default_rng(5)
    parse = (cv2.GaussianBlur(rng.random((512, 512)), (0, 0), 20) > 0.5).astype(np.uint8) * 255
    literal = parse / 255.0
    literal[:26], literal[-26:], literal[:, :26], literal[:, -26:] = 0, 0, 0, 0
    for _ in range(2):
        literal = cv2.GaussianBlur(literal, (101, 101), 4)
    for size in (64, 512):
        expected = cv2.resize(literal.astype(np.float32), (size, size))
        np.testing.assert_allclose(masks.official_parse_mask(parse, size), expected, atol=1e-6)
    rect = np.zeros((512, 512), np.float32)
    cv2.rectangle(rect, (26, 26), (486, 486), (1.0,), -1, cv2.LINE_AA)
    for _ in range(2):
        rect = cv2.GaussianBlur(rect, (101, 101), 4)
    np.testing.assert_allclose(masks.official_rect_mask(512), rect, atol=1e-6)


@pytest.mark.parametrize("size", [64, 512])
def test_parse_and_official_masks_vanish_at_the_crop_edge(size):
    for m in (masks.soft_parse_mask(np.ones((512, 512), np.uint8) * 255, size, feather=20),
              masks.official_parse_mask(np.ones((512, 512), np.uint8) * 255, size)):
        assert m.shape == (size, size)
        assert max(m[0].max(), m[-1].max(), m[:, 0].max(), m[:, -1].max()) < 5e-3


# ---------------------------------------------------------------- face parsing (facexlib layout)

def _write_random_parser(folder, kind: str) -> None:
    from facexlib.parsing.bisenet import BiSeNet
    from facexlib.parsing.parsenet import ParseNet
    torch.manual_seed(0)
    net = ParseNet(in_size=512, out_size=512, parsing_ch=19) if kind == "parsenet" else BiSeNet(num_class=19)
    torch.save(net.state_dict(), folder / f"parsing_{kind}.pth")


@pytest.mark.parametrize("kind", ["bisenet", "parsenet"])
def test_facexlib_parser_loads_runs_and_feeds_the_paste(tmp_path, astronaut, kind):
    pytest.importorskip("facexlib")
    _write_random_parser(tmp_path, kind)
    parser = load_parser("auto", [tmp_path / "missing", tmp_path])
    assert parser.kind == kind and parser.path == tmp_path / f"parsing_{kind}.pth"
    aligned, crops = _identity(astronaut, [_face()], 256)
    mask = face_parse_mask(parser, crops[0])
    assert mask.shape == (512, 512) and mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    if kind == "parsenet":
        return  # ParseNet takes ~5 s a face on one CPU thread: the paste path is covered with BiSeNet
    crop_masks = masks.paste_masks("parse", crops, parse_mask_fn(parser, ("skin", "nose")), None, 0.0)
    result = paste_faces(as_tensor(astronaut), aligned, crops_from_numpy(crops), torch.from_numpy(crop_masks), mode="parse")
    assert result.mask.shape == astronaut.shape[:2] and 0.0 <= result.mask.min() and result.mask.max() <= 1.0
    _assert_untouched_outside(result, astronaut)


def test_parser_errors_name_the_folders_and_file(tmp_path):
    with pytest.raises(ParserNotFound, match="parsing_parsenet.pth or parsing_bisenet.pth") as err:
        load_parser("auto", [tmp_path])
    assert str(tmp_path) in str(err.value)
    torch.save({"not": torch.zeros(1)}, tmp_path / "parsing_bisenet.pth")
    pytest.importorskip("facexlib")
    with pytest.raises(ValueError, match="parsing_bisenet.pth"):
        load_parser("bisenet", [tmp_path])


def test_region_selection_uses_each_networks_class_order():
    labels = np.arange(19, dtype=np.uint8)[None, :]
    # ParseNet (PSFRGAN order): 2 nose, 10 mouth; BiSeNet (face-parsing.PyTorch order): 10 nose, 11 mouth.
    np.testing.assert_array_equal(np.flatnonzero(region_mask(labels, "parsenet", ["nose"])[0]), [2])
    np.testing.assert_array_equal(np.flatnonzero(region_mask(labels, "bisenet", ["nose"])[0]), [10])
    # All regions = GPEN's own choice: everything but background, hat and cloth.
    np.testing.assert_array_equal(np.flatnonzero(region_mask(labels, "parsenet", PARSE_REGIONS)[0] == 0),
                                  [0, 14, 18])
    np.testing.assert_array_equal(np.flatnonzero(region_mask(labels, "bisenet", PARSE_REGIONS)[0] == 0),
                                  [0, 16, 18])
    with pytest.raises(ValueError, match="unknown face regions"):
        region_mask(labels, "bisenet", ["beard"])


# ---------------------------------------------------------------- property test

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(16, 120), w=st.integers(16, 120), size=st.sampled_from([32, 64, 96]),
    points=st.lists(st.tuples(st.floats(-60, 180, allow_nan=False), st.floats(-60, 180, allow_nan=False)),
                    min_size=5, max_size=5),
    mode=st.sampled_from(MASK_MODES), as_float=st.booleans(), rgba=st.booleans(), seed=st.integers(0, 2 ** 16),
)
def test_random_landmarks_never_break_the_paste_and_match_the_reference(h, w, size, points, mode, as_float, rgba,
                                                                        seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 4 if rgba else 3), dtype=np.uint8)
    if as_float:
        image = image.astype(np.float32) / 255.0
    pts = np.array(points, np.float32)
    face = Face(tuple(float(v) for v in (*pts.min(0), *pts.max(0))), 0.95, pts)
    try:
        aligned, crop = align_face(image, face, size)
    except DegenerateLandmarks:
        return
    want, got, mask = _paste_both(image, [aligned], [crop], mode, parse_mask=_ellipse_parse_mask())
    assert got.shape == image.shape and got.dtype == image.dtype
    assert mask.shape == (h, w) and 0.0 <= mask.min() and mask.max() <= 1.0
    outside = mask == 0
    np.testing.assert_array_equal(got[outside], image[outside])
    if rgba:
        np.testing.assert_array_equal(got[..., 3], image[..., 3])
    assert np.abs(_levels(got) - _levels(want.image)).max() <= 1.0 + 1e-3
    np.testing.assert_allclose(invert_affine(aligned.inverse), aligned.affine, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(warp_crop(image, aligned.affine, size), crop)


@pytest.mark.parametrize("mode", ["official", "box"])
def test_each_face_can_have_its_own_strength(astronaut, mode):
    """The identity guard lowers one face's strength: a face at 0 is left out, the other pasted as at
    the strength of them all."""
    moved = _face(ASTRONAUT_LANDMARKS + [260, 0], tuple(np.add(ASTRONAUT_BOX, [260, 0, 260, 0])))
    aligned, originals = _identity(astronaut, [_face(), moved], 64)
    white = [np.full_like(crop, 255) for crop in originals]
    both = _paste(astronaut, aligned, white, mode, strength=0.7, original_crops=originals).image.numpy()
    first_only = _paste(astronaut, aligned, white, mode, strength=[0.7, 0.0], original_crops=originals).image.numpy()
    right, left = slice(int(ASTRONAUT_BOX[2]) + 200, None), slice(0, int(ASTRONAUT_BOX[2]) + 60)
    np.testing.assert_array_equal(first_only[:, right], astronaut[:, right])
    assert np.any(both[:, right] != astronaut[:, right])
    np.testing.assert_array_equal(first_only[:, left], both[:, left])
    with pytest.raises(ValueError, match="got 3 strengths for 2 faces"):
        _paste(astronaut, aligned, white, mode, strength=[1.0, 1.0, 1.0])
