"""Property tests of align -> restore -> paste with a restorer that changes nothing.

tests/test_paste.py already checks random landmarks on uint8/float RGB(A) pasted back into
the same image. These add what it leaves out: pasting into resized copies (targets),
landmarks from random similarity transforms and from wild values (huge, tiny spreads,
far outside the image), NaN/Inf pixels, every paste option, the whole enhance_images
call, and how close an identity round trip comes back."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import torch
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from gpen_pipeline import EnhanceOptions, PasteOptions, RestoredFace, enhance_images, paste_back
from gpen_pipeline.align import DegenerateLandmarks, gpen_template
from reference_cv2 import align_face
from gpen_pipeline.face import Face

import robustness_support as support

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                derandomize=True, database=None)


def picture(rng: np.random.Generator, h: int, w: int, channels: int, dtype, smooth: bool = False) -> np.ndarray:
    if smooth:
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = rng.uniform(0, 6, 3)
        rgb = np.stack([0.5 + 0.4 * np.sin(x / 23 + phase[0]), 0.5 + 0.4 * np.cos(y / 17 + phase[1]),
                        0.5 + 0.4 * np.sin((x + y) / 29 + phase[2])], -1)
        image = rgb if channels == 3 else np.dstack([rgb, rng.uniform(0, 1, (h, w))])
        image = image.astype(np.float32)
    else:
        image = rng.uniform(0, 1, (h, w, channels)).astype(np.float32)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8) if dtype == np.uint8 else image


def similarity_landmarks(size: int, angle: float, scale: float, cx: float, cy: float) -> np.ndarray:
    """The GPEN template of an SxS crop, turned by `angle`, scaled to `scale` px eye distance, centred at (cx, cy)."""
    template = gpen_template(size)
    centred = template - template.mean(0)
    eye = np.linalg.norm(template[1] - template[0])
    c, s = np.cos(angle), np.sin(angle)
    rotated = centred @ np.array([[c, s], [-s, c]]) * (scale / eye)
    return (rotated + (cx, cy)).astype(np.float32)


def resized(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def face_from(points: np.ndarray) -> Face:
    finite = points[np.isfinite(points).all(1)] if np.isfinite(points).any() else np.zeros((1, 2))
    return Face(tuple(float(v) for v in (*finite.min(0), *finite.max(0))), 0.99, points)


def paste_crop(target: np.ndarray, aligned, crop: np.ndarray, **options):
    """The paste stage on one face restored by a restorer that changes nothing; numpy results."""
    pixels = torch.from_numpy(crop).permute(2, 0, 1).contiguous()
    result = paste_back(target, [RestoredFace(aligned, pixels, pixels)], PasteOptions(**options))
    return SimpleNamespace(image=result.image.numpy(), mask=result.mask.numpy())


def check_paste(result, target: np.ndarray) -> None:
    assert result.image.shape == target.shape and result.image.dtype == target.dtype
    assert result.mask.shape == target.shape[:2] and result.mask.dtype == np.float32
    assert np.isfinite(result.mask).all() and result.mask.min() >= 0 and result.mask.max() <= 1
    outside = result.mask == 0
    np.testing.assert_array_equal(result.image[outside], target[outside])
    if target.shape[2] == 4:
        np.testing.assert_array_equal(result.image[..., 3], target[..., 3])


paste_options = st.fixed_dictionaries({
    "mask_mode": st.sampled_from(["box", "official"]),
    "strength": st.sampled_from([0.0, 0.35, 1.0]),
    "feather": st.one_of(st.none(), st.floats(0, 40)),
    "grow": st.floats(-15, 15),
    "color_match": st.booleans(),
    "keep_gray": st.sampled_from(["auto", "on", "off"]),
})


@settings(max_examples=60, **SETTINGS)
@given(h=st.integers(8, 160), w=st.integers(8, 160), size=st.sampled_from([16, 64, 96]),
       angle=st.floats(-np.pi, np.pi), eye_px=st.floats(2, 300), cx=st.floats(-80, 240), cy=st.floats(-80, 240),
       factor=st.sampled_from([0.5, 1.0, 1.7, 3.0]), dtype=st.sampled_from([np.uint8, np.float32]),
       channels=st.sampled_from([3, 4]), options=paste_options, seed=st.integers(0, 2 ** 16))
@example(h=8, w=8, size=16, angle=0.0, eye_px=2.0, cx=0.0, cy=0.0, factor=0.5, dtype=np.uint8, channels=3, seed=0,
         options={"mask_mode": "official", "strength": 0.35, "feather": 10.0, "grow": 0.0, "color_match": False,
                  "keep_gray": "auto"})  # found: a blurred mask reached 1.0000001
def test_any_similarity_pastes_into_any_resized_target(h, w, size, angle, eye_px, cx, cy, factor, dtype, channels,
                                                       options, seed):
    rng = np.random.default_rng(seed)
    image = picture(rng, h, w, channels, dtype)
    target = resized(image, factor)
    points = similarity_landmarks(size, angle, eye_px, cx, cy)
    aligned, crop = align_face(image, face_from(points), size)
    result = paste_crop(target, aligned, crop, **options)
    check_paste(result, target)
    if options["strength"] == 0.0:
        np.testing.assert_array_equal(result.image, target)


wild_points = st.one_of(
    # any five points, up to far outside the image
    st.lists(st.tuples(st.floats(-1e5, 1e5), st.floats(-1e5, 1e5)), min_size=5, max_size=5).map(np.array),
    # a real face squeezed to a tiny spread, or blown up
    st.tuples(st.floats(1e-6, 1e4), st.floats(-200, 400), st.floats(-200, 400)).map(
        lambda t: (support.ASTRONAUT_LANDMARKS - support.ASTRONAUT_LANDMARKS.mean(0)) * t[0] + t[1:]),
    # all on one line, with a little noise off it
    st.tuples(st.floats(-3, 3), st.floats(0, 1e-1), st.floats(1, 200)).map(
        lambda t: np.stack([np.linspace(0, t[2], 5), np.linspace(0, t[2], 5) * t[0] + np.array([0, t[1], 0, -t[1], 0])], 1)),
)


@settings(max_examples=80, **SETTINGS)
@given(points=wild_points, dtype=st.sampled_from([np.uint8, np.float32]), mode=st.sampled_from(["box", "official"]),
       seed=st.integers(0, 2 ** 16))
def test_wild_landmarks_either_paste_cleanly_or_are_refused_as_degenerate(points, dtype, mode, seed):
    image = picture(np.random.default_rng(seed), 48, 64, 3, dtype)
    points = np.asarray(points, np.float32)
    try:
        aligned, crop = align_face(image, face_from(points), 32)
    except DegenerateLandmarks as exc:
        event(f"refused: {exc}")
        return
    event("aligned and pasted")
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    check_paste(paste_crop(image, aligned, crop, mask_mode=mode), image)


@settings(max_examples=25, **SETTINGS)
@given(fraction=st.floats(0.001, 0.3), kinds=st.sets(st.sampled_from(["nan", "inf", "-inf"]), min_size=1),
       channels=st.sampled_from([3, 4]), seed=st.integers(0, 2 ** 16))
def test_nan_and_inf_pixels_never_reach_the_pasted_face_nor_leave_the_outside(fraction, kinds, channels, seed):
    rng = np.random.default_rng(seed)
    image = picture(rng, 96, 96, channels, np.float32)
    bad = rng.uniform(size=image.shape[:2]) < fraction
    values = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}
    image[bad, rng.integers(0, channels)] = values[sorted(kinds)[seed % len(kinds)]]
    aligned, crop = align_face(image, face_from(similarity_landmarks(64, 0.3, 30, 48, 50)), 64)
    assert crop.dtype == np.uint8  # the network gets plain pixels
    result = paste_crop(image, aligned, crop, mask_mode="box", color_match=bool(seed % 2))
    check_paste(result, image)
    assert np.isfinite(result.image[result.mask > 0][..., :3]).all()


@settings(max_examples=30, **SETTINGS)
@given(angle=st.floats(-np.pi, np.pi), eye_px=st.floats(12, 40), channels=st.sampled_from([3, 4]),
       dtype=st.sampled_from([np.uint8, np.float32]), seed=st.integers(0, 2 ** 16))
def test_identity_round_trip_gives_back_the_photo_under_the_mask(angle, eye_px, channels, dtype, seed):
    """A 128 px crop of a face whose eyes are 12-40 px apart oversamples the photo, so
    aligning and pasting back must reproduce a smooth photo closely wherever the paste lands."""
    rng = np.random.default_rng(seed)
    image = picture(rng, 120, 120, channels, dtype, smooth=True)
    points = similarity_landmarks(128, angle, eye_px, 60, 60)
    model = support.identity_model(128)
    detector = support.fixed_detector([(tuple(map(float, (*points.min(0), *points.max(0)))), 0.99, points)], 120)
    result = enhance_images([image], model, detector, EnhanceOptions(paste=PasteOptions(mask_mode="box", keep_gray="off")))[0]
    assert len(result.faces) == 1
    check_paste(result, image)
    scale = 255.0 if dtype == np.uint8 else 1.0
    under = result.mask > 0.5
    assume(under.sum() > 50)
    error = np.abs(result.image[under][..., :3].astype(np.float64) - image[under][..., :3]) / scale
    assert error.max() < 6 / 255, error.max() * 255


@settings(max_examples=15, **SETTINGS)
@given(frames=st.integers(1, 4), factor=st.sampled_from([0.5, 2.0]), dtype=st.sampled_from([np.uint8, np.float32]),
       channels=st.sampled_from([3, 4]), options=paste_options, seed=st.integers(0, 2 ** 16))
def test_enhance_images_with_resized_targets_keeps_every_target_outside_the_faces(frames, factor, dtype, channels,
                                                                                 options, seed):
    rng = np.random.default_rng(seed)
    images = [picture(rng, 80, 100, channels, dtype) for _ in range(frames)]
    targets = [resized(i, factor) for i in images]
    faces = [((30.0, 20.0, 70.0, 70.0), 0.99, similarity_landmarks(64, rng.uniform(-0.5, 0.5), 18, 50, 45))]
    opts = EnhanceOptions(paste=PasteOptions(
        mask_mode=options["mask_mode"], strength=options["strength"], feather=options["feather"], grow=options["grow"],
        color_match=options["color_match"], keep_gray=options["keep_gray"]))
    results = enhance_images(images, support.identity_model(64), support.fixed_detector(faces, 100), opts, targets=targets)
    for result, target in zip(results, targets):
        assert len(result.faces) == 1
        check_paste(result, target)
