"""Paste-back: round trips with an identity restorer, invariants, options, masks, face parsing."""
import warnings

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpen_pipeline import masks
from gpen_pipeline.align import DegenerateLandmarks, align_face, invert_affine
from gpen_pipeline.color import is_grayscale
from gpen_pipeline.face import Face
from gpen_pipeline.parsing import (PARSE_REGIONS, ParserNotFound, face_parse_mask, load_parser, parse_mask_fn,
                                   region_mask)
from gpen_pipeline.geometry import crop_to_target
from gpen_pipeline.paste import PasteResult, paste_faces

torch.set_num_threads(1)

# Read by eye on skimage's astronaut: eyes, nose tip, mouth corners (image-left first).
ASTRONAUT_LANDMARKS = np.array([[205, 101], [247, 103], [224, 124], [203, 141], [245, 142]], np.float32)
ASTRONAUT_BOX = (172.0, 62.0, 280.0, 178.0)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut())


def _face(landmarks=ASTRONAUT_LANDMARKS, box=ASTRONAUT_BOX) -> Face:
    return Face(box, 0.99, np.asarray(landmarks, np.float32))


def _identity(image, faces, size):
    """Align, then 'restore' with the identity: the crops go back unchanged."""
    pairs = [align_face(image, f, size) for f in faces]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _ellipse_parse_mask() -> np.ndarray:
    mask = np.zeros((512, 512), np.uint8)
    cv2.ellipse(mask, (256, 290), (150, 190), 0, 0, 360, 255, -1)
    return mask


def _psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray, peak: float = 255.0) -> float:
    err = np.mean((a.astype(np.float64) - b.astype(np.float64))[where] ** 2)
    return float(10 * np.log10(peak ** 2 / max(err, 1e-12)))


def _assert_untouched_outside(result: PasteResult, image: np.ndarray) -> None:
    outside = result.mask == 0
    assert outside.any()
    np.testing.assert_array_equal(result.image[outside], image[outside])


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("mode", ["box", "parse"])
def test_identity_round_trip_reproduces_the_photo(astronaut, mode):
    aligned, crops = _identity(astronaut, [_face()], 512)
    result = paste_faces(astronaut, aligned, crops, mask_mode=mode, parse_masks=[_ellipse_parse_mask()])
    inside = result.mask > 0
    assert inside.sum() > 5000
    assert _psnr(result.image, astronaut, inside) >= 45.0
    _assert_untouched_outside(result, astronaut)


def test_official_mode_round_trip_and_rectangle_fallback_warns(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 512)
    with pytest.warns(UserWarning, match="rectangle mask"):
        result = paste_faces(astronaut, aligned, crops)
    inside = result.mask > 0
    # The official recipe smooths faces under 100 px and warps bilinearly: a softer copy, still close.
    assert _psnr(result.image, astronaut, inside) >= 35.0
    _assert_untouched_outside(result, astronaut)
    np.testing.assert_allclose(result.mask, cv2.warpAffine(masks.official_rect_mask(512), aligned[0].inverse,
                                                           (512, 512), flags=cv2.INTER_LINEAR), atol=1e-5)


def test_float32_image_is_bit_identical_outside_the_mask(astronaut):
    image = astronaut.astype(np.float32) / 255.0
    image[0, 0] = [0.1234567, 0.7654321, 0.5]  # values no uint8 round trip would keep
    aligned, crops = _identity(image, [_face()], 256)
    result = paste_faces(image, aligned, crops, mask_mode="box")
    assert result.image.dtype == np.float32 and result.image.shape == image.shape
    _assert_untouched_outside(result, image)
    assert _psnr(result.image, image, result.mask > 0, peak=1.0) >= 40.0


def test_rgba_alpha_passes_through_bit_exact(astronaut):
    alpha = np.random.default_rng(1).integers(0, 256, astronaut.shape[:2], dtype=np.uint8)
    rgba = np.dstack([astronaut, alpha])
    aligned, crops = _identity(rgba, [_face()], 256)
    result = paste_faces(rgba, aligned, crops, mask_mode="box")
    assert result.image.shape == rgba.shape
    np.testing.assert_array_equal(result.image[..., 3], alpha)
    rgb_only = paste_faces(astronaut, aligned, crops, mask_mode="box")
    np.testing.assert_array_equal(result.image[..., :3], rgb_only.image)


@pytest.mark.parametrize("scale", [2.0, 3.5])
def test_upscaled_target(astronaut, scale):
    aligned, crops = _identity(astronaut, [_face()], 512)
    h, w = astronaut.shape[:2]
    target = cv2.resize(astronaut, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
    result = paste_faces(target, aligned, crops, mask_mode="box")
    assert result.image.shape == target.shape
    _assert_untouched_outside(result, target)
    # The face lands where it is in the target: the pasted copy is the (softer) original upscaled again.
    assert _psnr(result.image, target, result.mask > 0.5) >= 33.0
    # Mask covers the same part of the picture at any scale.
    small = paste_faces(astronaut, aligned, crops, mask_mode="box").mask
    assert (result.mask > 0.5).sum() / (small > 0.5).sum() == pytest.approx(scale ** 2, rel=0.03)


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
    result = paste_faces(astronaut, aligned, half, mask_mode="box")
    assert _psnr(result.image, astronaut, result.mask > 0) >= 35.0


# ---------------------------------------------------------------- invariants

@pytest.mark.parametrize("mode", ["official", "parse", "box"])
def test_strength_zero_returns_the_input(astronaut, mode):
    aligned, crops = _identity(astronaut, [_face()], 256)
    bright = [np.full_like(c, 250) for c in crops]
    result = paste_faces(astronaut, aligned, bright, mask_mode=mode, strength=0.0,
                         parse_masks=[_ellipse_parse_mask()], original_crops=crops)
    np.testing.assert_array_equal(result.image, astronaut)
    assert not result.mask.any()


def test_no_faces_returns_the_input(astronaut):
    result = paste_faces(astronaut, [], [])
    np.testing.assert_array_equal(result.image, astronaut)
    assert result.image is not astronaut and result.mask.shape == astronaut.shape[:2] and not result.mask.any()


def test_strength_scales_the_mask_without_original_crops(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 256)
    full = paste_faces(astronaut, aligned, crops, mask_mode="box")
    half = paste_faces(astronaut, aligned, crops, mask_mode="box", strength=0.5)
    np.testing.assert_allclose(half.mask, 0.5 * full.mask, atol=1e-7)


def test_official_strength_blends_crops_like_add_weighted(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 256)
    white = [np.full_like(crops[0], 255)]
    result = paste_faces(astronaut, aligned, white, strength=0.8, parse_masks=[_ellipse_parse_mask()],
                         original_crops=crops)
    inner = result.mask > 0.999
    expected = 0.8 * 255 + 0.2 * astronaut[inner].astype(float)  # crop-space mix, then pasted at full mask
    assert np.abs(result.image[inner] - expected).mean() < 3.0


def test_overlapping_faces_take_the_higher_mask(astronaut):
    faces = [_face(), _face(ASTRONAUT_LANDMARKS + [30, 10])]
    aligned, crops = _identity(astronaut, faces, 256)
    both = paste_faces(astronaut, aligned, crops, mask_mode="box")
    first = paste_faces(astronaut, aligned[:1], crops[:1], mask_mode="box")
    second = paste_faces(astronaut, aligned[1:], crops[1:], mask_mode="box")
    np.testing.assert_array_equal(both.mask, np.maximum(first.mask, second.mask))


def test_face_cut_by_the_border_has_no_dark_rim(astronaut):
    cut = np.ascontiguousarray(astronaut[:, 215:])  # the left half of the face is outside
    face = _face(ASTRONAUT_LANDMARKS - [215, 0], (0.0, 62.0, 65.0, 178.0))
    aligned, crops = _identity(cut, [face], 512)
    assert (crops[0][:, :100] == 0).all()  # the crop's surround is black
    result = paste_faces(cut, aligned, crops, mask_mode="box")
    edge = result.mask[:, 0] > 0.2
    assert edge.sum() > 30  # the face does reach the border
    err = np.abs(result.image[:, 0].astype(int) - cut[:, 0])[edge]
    assert err.max() <= 8, err.max()
    with pytest.warns(UserWarning):  # the official recipe pastes the crop's black surround into the edge
        official = paste_faces(cut, aligned, crops, mask_mode="official")
    official_edge = official.mask[:, 0] > 0.2
    assert np.abs(official.image[:, 0].astype(int) - cut[:, 0])[official_edge].max() > 20
    assert _psnr(result.image, cut, result.mask > 0) >= 42.0
    _assert_untouched_outside(result, cut)


def test_face_far_outside_the_target_is_skipped(astronaut):
    aligned, crops = _identity(astronaut, [_face(ASTRONAUT_LANDMARKS + [3000, 0])], 128)
    result = paste_faces(astronaut, aligned, crops, mask_mode="box")
    np.testing.assert_array_equal(result.image, astronaut)


# ---------------------------------------------------------------- options

def test_region_mask_restricts_the_paste(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 256)
    region = np.zeros(astronaut.shape[:2], np.float32)
    region[:, :226] = 1.0  # only the image-left half of the face
    bright = [np.full_like(crops[0], 255)]
    result = paste_faces(astronaut, aligned, bright, mask_mode="box", region_mask=region)
    np.testing.assert_array_equal(result.image[:, 226:], astronaut[:, 226:])
    assert not result.mask[:, 226:].any() and result.mask[:, :226].max() > 0.99
    with pytest.raises(ValueError, match="region_mask"):
        paste_faces(astronaut, aligned, crops, mask_mode="box", region_mask=np.ones((5, 5)))


def test_color_match_removes_a_colour_cast(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 256)
    cast = [np.clip(crops[0].astype(int) + [40, -25, 15], 0, 255).astype(np.uint8)]
    plain = paste_faces(astronaut, aligned, cast, mask_mode="box")
    matched = paste_faces(astronaut, aligned, cast, mask_mode="box", color_match=True)
    core = plain.mask > 0.99
    shift_plain = (plain.image[core].astype(float) - astronaut[core]).mean(axis=0)
    shift_matched = (matched.image[core].astype(float) - astronaut[core]).mean(axis=0)
    assert np.abs(shift_plain).max() > 14
    assert np.abs(shift_matched).max() < 3, shift_matched
    # detail is kept: the matched face is as sharp as the cast one
    lap = lambda im: cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), cv2.CV_64F)[core].std()  # noqa: E731
    assert lap(matched.image) == pytest.approx(lap(plain.image), rel=0.1)


def test_keep_gray_makes_faces_grey_in_a_black_and_white_photo(astronaut):
    gray = cv2.cvtColor(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert is_grayscale(gray) and not is_grayscale(astronaut)
    aligned, crops = _identity(gray, [_face()], 256)
    coloured = [np.clip(crops[0].astype(int) + [40, -25, 15], 0, 255).astype(np.uint8)]
    auto = paste_faces(gray, aligned, coloured, mask_mode="box")
    assert is_grayscale(auto.image, tolerance=1 / 255, fraction=1.0)
    kept_colour = paste_faces(gray, aligned, coloured, mask_mode="box", keep_gray=False)
    assert not is_grayscale(kept_colour.image)
    in_colour_photo = paste_faces(astronaut, aligned, coloured, mask_mode="box")
    core = in_colour_photo.mask > 0.99
    assert np.ptp(in_colour_photo.image[core].astype(int), axis=1).mean() > 20


def test_feather_and_grow_change_the_mask(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 256)
    base = paste_faces(astronaut, aligned, crops, mask_mode="box").mask
    grown = paste_faces(astronaut, aligned, crops, mask_mode="box", grow=4).mask
    shrunk = paste_faces(astronaut, aligned, crops, mask_mode="box", grow=-10).mask
    assert (grown > 0.5).sum() > (base > 0.5).sum() > (shrunk > 0.5).sum()
    sharp = paste_faces(astronaut, aligned, crops, mask_mode="box", feather=2).mask
    soft = paste_faces(astronaut, aligned, crops, mask_mode="box", feather=30).mask
    soft_band = lambda m: ((m > 0.02) & (m < 0.98)).sum()  # noqa: E731
    assert soft_band(soft) > 3 * soft_band(sharp)
    pm = [_ellipse_parse_mask()]
    p_base = paste_faces(astronaut, aligned, crops, mask_mode="parse", parse_masks=pm).mask
    p_grown = paste_faces(astronaut, aligned, crops, mask_mode="parse", parse_masks=pm, grow=5).mask
    assert (p_grown > 0.5).sum() > (p_base > 0.5).sum()


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


def test_bad_arguments_are_named(astronaut):
    aligned, crops = _identity(astronaut, [_face()], 128)
    with pytest.raises(ValueError, match="pair up"):
        paste_faces(astronaut, aligned, [])
    with pytest.raises(ValueError, match="mask_mode"):
        paste_faces(astronaut, aligned, crops, mask_mode="oval")
    with pytest.raises(ValueError, match="strength"):
        paste_faces(astronaut, aligned, crops, strength=1.5)
    with pytest.raises(ValueError, match="needs parse_masks"):
        paste_faces(astronaut, aligned, crops, mask_mode="parse")
    with pytest.raises(ValueError, match="square"):
        paste_faces(astronaut, aligned, [crops[0][:, :100]], mask_mode="box")


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
    result = paste_faces(astronaut, aligned, crops, mask_mode="parse",
                         parse_masks=parse_mask_fn(parser, ("skin", "nose")))
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
    mode=st.sampled_from(["box", "parse", "official"]), as_float=st.booleans(), rgba=st.booleans(),
    seed=st.integers(0, 2 ** 16),
)
def test_random_landmarks_never_break_the_paste(h, w, size, points, mode, as_float, rgba, seed):
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = paste_faces(image, [aligned], [crop], mask_mode=mode, parse_masks=[_ellipse_parse_mask()])
    assert result.image.shape == image.shape and result.image.dtype == image.dtype
    assert result.mask.shape == (h, w) and 0.0 <= result.mask.min() and result.mask.max() <= 1.0
    outside = result.mask == 0
    np.testing.assert_array_equal(result.image[outside], image[outside])
    if rgba:
        np.testing.assert_array_equal(result.image[..., 3], image[..., 3])
    np.testing.assert_allclose(invert_affine(aligned.inverse), aligned.affine, rtol=1e-6, atol=1e-6)
