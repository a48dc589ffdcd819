"""Alignment: GPEN/FFHQ templates, the similarity fit, crops against the official fixture."""
import cv2
import numpy as np
import pytest

import torch

from gpen_pipeline.align import (DegenerateLandmarks, aligned_record, compose_affine, ffhq_template, gpen_template,
                                 invert_affine, similarity_from_points, template_points)
from gpen_pipeline.cut import as_tensor, cut_crops
from gpen_pipeline.face import Face, crops_to_numpy


def align_face(image: np.ndarray, face: Face, size: int, template: str = "gpen"):
    """The face's record and its crop as the restore stage cuts it (SxSx3 uint8)."""
    aligned = aligned_record(face, size, image.shape[:2], template)
    crop = cut_crops(as_tensor(image), [aligned.affine], size)[0]
    return aligned, crops_to_numpy(crop)


@pytest.fixture(scope="module")
def align_fx(fixtures_dir):
    return np.load(fixtures_dir / "align.npz")


def _face(landmarks) -> Face:
    pts = np.asarray(landmarks, np.float32)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return Face((float(x0), float(y0), float(x1), float(y1)), 0.99, pts)


@pytest.mark.parametrize("size", [64, 128, 256, 512, 1024, 2048])
def test_gpen_template_matches_official_reference_points(align_fx, size):
    np.testing.assert_allclose(gpen_template(size), align_fx[f"ref_pts_{size}"], rtol=0, atol=1e-9)


def test_ffhq_template_is_facexlib_points_scaled():
    # facexlib's FFHQ-512 points; FaceFusion's normalised ffhq_512 template is the same divided by 512.
    np.testing.assert_allclose(ffhq_template(512)[0], [192.98138, 239.94708], atol=1e-5)
    np.testing.assert_allclose(ffhq_template(1024) / 1024,
                               [[0.37691676, 0.46864664], [0.62285697, 0.46912813], [0.50123859, 0.61331904],
                                [0.39308822, 0.72541100], [0.61150205, 0.72490465]], atol=1e-7)
    # GPEN's crop is looser: eye distance 107.4 px vs 125.9 px at 512.
    assert np.linalg.norm(gpen_template(512)[1] - gpen_template(512)[0]) == pytest.approx(107.39, abs=0.01)
    assert np.linalg.norm(ffhq_template(512)[1] - ffhq_template(512)[0]) == pytest.approx(125.92, abs=0.01)


def test_template_points_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown template"):
        template_points("arcface", 512)
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        template_points(np.zeros((4, 2)), 512)
    with pytest.raises(ValueError, match="crop size"):
        gpen_template(0)


def test_similarity_recovers_a_known_transform_exactly():
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 300, (5, 2)).astype(np.float32)
    angle, scale, shift = 0.7, 1.9, np.array([12.5, -40.25])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src.astype(np.float64) @ (scale * rot).T + shift
    fit = similarity_from_points(src, dst.astype(np.float32))
    np.testing.assert_allclose(fit[:, :2], scale * rot, atol=2e-6)
    np.testing.assert_allclose(fit[:, 2], shift, atol=2e-4)


def test_similarity_never_mirrors():
    src = np.array([[0, 0], [10, 0], [5, 5], [1, 10], [9, 10]], np.float32)
    fit = similarity_from_points(src, src * [-1, 1])  # the best fit would be a reflection
    assert np.linalg.det(fit[:, :2]) > 0


def test_inverse_and_compose_are_exact():
    m = np.array([[1.3, -0.4, 17.0], [0.4, 1.3, -3.5]])
    ident = compose_affine(invert_affine(m), m)
    np.testing.assert_allclose(ident, [[1, 0, 0], [0, 1, 0]], atol=1e-12)


@pytest.mark.parametrize("size", [256, 512])
def test_align_reproduces_official_transforms_and_crops(align_fx, size):
    image = cv2.cvtColor(align_fx["img_bgr_u8"], cv2.COLOR_BGR2RGB)  # the fixture image is BGR
    np.testing.assert_array_equal(align_fx["facial5points_2x5"].T, align_fx["landmarks_xy"])
    aligned, crop = align_face(image, _face(align_fx["landmarks_xy"]), size)

    # Official tfm comes from float32 arithmetic: ~1e-7 relative.
    np.testing.assert_allclose(aligned.affine[:, :2], align_fx[f"tfm_{size}"][:, :2], rtol=0, atol=1e-6)
    np.testing.assert_allclose(aligned.affine[:, 2], align_fx[f"tfm_{size}"][:, 2], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(aligned.inverse, align_fx[f"tfm_inv_{size}"], rtol=1e-6, atol=1e-5)
    assert aligned.size == size and aligned.image_size == image.shape[:2]

    official = cv2.cvtColor(align_fx[f"crop_{size}"], cv2.COLOR_BGR2RGB)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    diff = np.abs(crop.astype(int) - official)
    assert diff.max() <= 1, diff.max()
    assert (diff > 0).mean() < 0.01


def test_align_takes_rgba_and_float_images(align_fx):
    rgb = cv2.cvtColor(align_fx["img_bgr_u8"], cv2.COLOR_BGR2RGB)
    face = _face(align_fx["landmarks_xy"])
    _, ref = align_face(rgb, face, 128)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    _, from_rgba = align_face(rgba, face, 128)
    np.testing.assert_array_equal(from_rgba, ref)
    _, from_float = align_face(rgb.astype(np.float32) / 255.0, face, 128)
    assert from_float.dtype == np.uint8
    assert np.abs(from_float.astype(int) - ref).max() <= 1


def test_ffhq_template_crop_is_tighter(align_fx):
    rgb = cv2.cvtColor(align_fx["img_bgr_u8"], cv2.COLOR_BGR2RGB)
    face = _face(align_fx["landmarks_xy"])
    gpen, _ = align_face(rgb, face, 512)
    ffhq, _ = align_face(rgb, face, 512, template="ffhq")
    scale = lambda m: np.sqrt(abs(np.linalg.det(m[:, :2])))  # noqa: E731
    # Same face, same crop size: the FFHQ crop magnifies the face 5-17 % more (mouth and eyes scale differently).
    assert 1.05 < scale(ffhq.affine) / scale(gpen.affine) < 125.92 / 107.39


@pytest.mark.parametrize("points, reason", [
    (np.full((5, 2), 100.0), "coincide"),
    (np.stack([np.linspace(0, 100, 5), np.linspace(0, 50, 5)], 1), "collinear"),
    (np.array([[1, 2], [np.nan, 3], [4, 5], [6, 7], [8, 1]]), "NaN"),
    (np.array([[1, 2], [np.inf, 3], [4, 5], [6, 7], [8, 1]]), "NaN"),
])
def test_degenerate_landmarks_raise(points, reason):
    image = np.zeros((64, 64, 3), np.uint8)
    face = Face((0, 0, 10, 10), 0.9, points.astype(np.float32))
    with pytest.raises(DegenerateLandmarks, match=reason):
        align_face(image, face, 64)
    assert issubclass(DegenerateLandmarks, ValueError)


def test_bad_images_get_clear_errors():
    face = _face([[10, 10], [30, 10], [20, 20], [12, 30], [28, 30]])
    with pytest.raises(ValueError, match="HxWx3"):
        align_face(np.zeros((64, 64), np.uint8), face, 64)
    with pytest.raises(ValueError, match="uint8 or float32"):
        align_face(np.zeros((64, 64, 3), np.int32), face, 64)
