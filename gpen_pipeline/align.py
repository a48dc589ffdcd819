"""Five-point alignment: the crop templates, the similarity fit, the crop records.

GPEN's own template is looser than the FFHQ one most restorers use (eye
distance 107 px vs 126 px at 512), so a GPEN model must get GPEN crops.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .face import AlignedFace, Face

# ArcFace 96x112 five-point reference (the InsightFace / SphereFace numbers).
_ARCFACE_96x112 = np.array(
    [
        [30.29459953, 51.69630051],
        [65.53179932, 51.50139999],
        [48.02519989, 71.73660278],
        [33.54930115, 92.36550140],
        [62.72990036, 92.20410156],
    ],
    dtype=np.float64,
)

# facexlib's FFHQ template at 512 (what CodeFormer/GFPGAN/ReActor align to).
_FFHQ_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float64,
)

# Below this ratio of the two principal spreads the points are taken as a line.
_MIN_FLATNESS = 1e-2
# Landmarks closer together than this (rms, pixels) carry no face.
_MIN_SPREAD_PX = 1e-3


class DegenerateLandmarks(ValueError):
    """The five landmarks cannot define a crop (NaN, coincident, collinear)."""


def gpen_template(size: int) -> np.ndarray:
    """GPEN's five points for an SxS crop: (ArcFace + [8,0] + 28) * S/168.

    The +8 makes the 96x112 ArcFace box square (112x112), the +28 is the
    0.25 inner padding that grows it to 168 before scaling to S.
    """
    _check_size(size)
    return (_ARCFACE_96x112 + np.array([8.0, 0.0]) + 28.0) * (size / 168.0)


def ffhq_template(size: int) -> np.ndarray:
    """facexlib's FFHQ five points scaled to an SxS crop."""
    _check_size(size)
    return _FFHQ_512 * (size / 512.0)


def arcface_template(size: int = 112) -> np.ndarray:
    """The five points ArcFace recognisers were trained on (insightface's norm_crop), for an SxS crop:
    the 96x112 box made square by 8 px on the left, scaled from 112."""
    _check_size(size)
    return (_ARCFACE_96x112 + np.array([8.0, 0.0])) * (size / 112.0)


TEMPLATES: dict[str, Callable[[int], np.ndarray]] = {"gpen": gpen_template, "ffhq": ffhq_template}


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"crop size must be an integer >= 8, got {size!r}")


def template_points(template: str | np.ndarray, size: int) -> np.ndarray:
    """The (5,2) destination points for `template` ("gpen", "ffhq" or explicit points at `size`)."""
    if isinstance(template, str):
        if template not in TEMPLATES:
            raise ValueError(f"unknown template {template!r}; choose one of {sorted(TEMPLATES)}")
        return TEMPLATES[template](size)
    points = np.asarray(template, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"template points must have shape (5, 2), got {points.shape}")
    return points


def similarity_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) taking `src` onto `dst`.

    Umeyama's closed form, reflection excluded. Points are cast to float32
    first, as the official GPEN code does, then solved in float64.
    Returns the (2, 3) matrix; raises DegenerateLandmarks when `src` cannot
    define one.
    """
    src = np.asarray(src, dtype=np.float32).astype(np.float64)
    dst = np.asarray(dst, dtype=np.float32).astype(np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"point sets must both be (N, 2) with N >= 2, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise DegenerateLandmarks("landmarks contain NaN or infinity")

    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    n = src.shape[0]
    src_var = float((src_c ** 2).sum() / n)
    if np.sqrt(src_var) < _MIN_SPREAD_PX:
        raise DegenerateLandmarks("landmarks coincide (no spread)")
    spreads = np.linalg.svd(src_c, compute_uv=False)
    if n > 2 and spreads[-1] < _MIN_FLATNESS * spreads[0]:
        raise DegenerateLandmarks("landmarks are collinear")

    u, sing, vt = np.linalg.svd(dst_c.T @ src_c / n)
    signs = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[-1] = -1.0  # the best orthogonal fit would be a mirror: take the nearest rotation
    rotation = u @ np.diag(signs) @ vt
    scale = float((sing * signs).sum() / src_var)
    if not np.isfinite(scale) or scale <= 1e-12:
        raise DegenerateLandmarks("landmarks give a zero or invalid scale")
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Exact inverse of a (2, 3) affine map."""
    matrix = np.asarray(matrix, dtype=np.float64)
    linear_inv = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear_inv, -linear_inv @ matrix[:, 2:]])


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) map x -> outer(inner(x))."""
    outer = np.asarray(outer, dtype=np.float64)
    inner = np.asarray(inner, dtype=np.float64)
    return np.hstack([outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2:] + outer[:, 2:]])


def aligned_record(face: Face, size: int, image_hw: tuple[int, int],
                   template: str | np.ndarray = "gpen") -> AlignedFace:
    """The record of one face's SxS crop (its transforms and source size), without cutting the crop."""
    _check_size(size)
    landmarks = np.asarray(face.landmarks)
    if landmarks.shape != (5, 2):
        raise ValueError(f"face landmarks must have shape (5, 2), got {landmarks.shape}")
    affine = similarity_from_points(landmarks, template_points(template, size))
    return AlignedFace(face=face, size=int(size), affine=affine, inverse=invert_affine(affine),
                       image_size=(int(image_hw[0]), int(image_hw[1])))
