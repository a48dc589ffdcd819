"""Paste masks in crop space: the official GPEN recipe, a soft parse mask, a feathered box.

Every mask here is a float32 SxS array in [0,1] over the aligned crop, and
reaches 0 before the crop's edge, so the warped face never brings the crop's
black surround into the image.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# The official recipe is defined on a 512x512 parse map.
OFFICIAL_SIZE = 512
OFFICIAL_BORDER_PX = 26
OFFICIAL_BLUR_KSIZE = (101, 101)
OFFICIAL_BLUR_SIGMA = 4.0
# The official 101-tap kernel is ~0 beyond 6 sigma (weights < 2e-8): 49 taps in float32 give the
# same mask within 1e-6 at a quarter of the cost.
_FAST_BLUR_KSIZE = (49, 49)
# Faces whose box is under this many pixels get the 3x3 smoothing before pasting.
SMALL_FACE_PX = 100
_SMALL_FACE_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 16.0

DEFAULT_BOX_FEATHER = 10.0  # % of the crop size
# Two official blur passes of sigma 4 make one of sigma 4*sqrt(2); as a
# 4-sigma soft-edge width that is ~4.4 % of the crop.
DEFAULT_PARSE_FEATHER = 400 * OFFICIAL_BLUR_SIGMA * np.sqrt(2.0) / OFFICIAL_SIZE


def unit_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """A mask as HxW float32 in [0,1]: uint8 is read as 0..255, bool as 0/1, floats are clipped."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"{name} must be a non-empty HxW array, got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return mask.astype(np.float32)
    if mask.dtype == np.uint8:
        return mask.astype(np.float32) / 255.0
    if not np.issubdtype(mask.dtype, np.floating):
        raise ValueError(f"{name} must be uint8, bool or float in [0,1], got {mask.dtype}")
    mask = mask.astype(np.float32)
    if not np.isfinite(mask).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return np.clip(mask, 0.0, 1.0)


def _to_square(mask: np.ndarray, size: int) -> np.ndarray:
    if mask.shape == (size, size):
        return mask
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)


def official_parse_mask(parse_mask: np.ndarray, size: int) -> np.ndarray:
    """GPEN's paste mask from a face-parsing map of the restored face.

    At 512: a 26 px border is zeroed, then GaussianBlur((101,101), 4) twice,
    then a bilinear resize to the crop size.
    """
    mask = _to_square(unit_mask(parse_mask, "parse mask"), OFFICIAL_SIZE).copy()
    b = OFFICIAL_BORDER_PX
    mask[:b, :] = 0
    mask[-b:, :] = 0
    mask[:, :b] = 0
    mask[:, -b:] = 0
    for _ in range(2):
        mask = cv2.GaussianBlur(mask, _FAST_BLUR_KSIZE, OFFICIAL_BLUR_SIGMA)
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)


@lru_cache(maxsize=1)
def _official_rect_512() -> np.ndarray:
    mask = np.zeros((OFFICIAL_SIZE, OFFICIAL_SIZE), np.float32)
    far = OFFICIAL_SIZE - OFFICIAL_BORDER_PX
    cv2.rectangle(mask, (OFFICIAL_BORDER_PX, OFFICIAL_BORDER_PX), (far, far), (1.0,), -1, cv2.LINE_AA)
    for _ in range(2):
        mask = cv2.GaussianBlur(mask, OFFICIAL_BLUR_KSIZE, OFFICIAL_BLUR_SIGMA)
    mask.setflags(write=False)
    return mask


def official_rect_mask(size: int) -> np.ndarray:
    """The GPEN demo's parser-free mask: rectangle (26,26)-(486,486) at 512, blurred twice."""
    return cv2.resize(_official_rect_512(), (size, size), interpolation=cv2.INTER_LINEAR)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def edge_window(size: int, margin_px: float, width_px: float) -> np.ndarray:
    """SxS window: exactly 0 within `margin_px` of the edge, rising smoothly to 1 over `width_px`."""
    margin_px = max(float(margin_px), 1.0)
    width_px = max(float(width_px), 1.0)
    room = size / 2.0 - 1.0
    if margin_px + width_px > room:  # keep a plateau of at least the centre pixel
        scale = room / (margin_px + width_px)
        margin_px, width_px = max(margin_px * scale, 0.5), width_px * scale
    centres = np.arange(size, dtype=np.float32) + 0.5
    to_edge = np.minimum(centres, size - centres)
    ramp = _smoothstep((to_edge - margin_px) / width_px).astype(np.float32)
    return np.outer(ramp, ramp)


def box_mask(size: int, feather: float | None = None, grow: float = 0.0) -> np.ndarray:
    """A rectangle over the crop with soft edges; `feather` and `grow` are % of the crop size.

    At grow=0 the rectangle starts where the official one does (26/512 in);
    grow>0 widens it (never past 1 px from the edge), grow<0 shrinks it.
    """
    feather = DEFAULT_BOX_FEATHER if feather is None else float(feather)
    margin = size * (OFFICIAL_BORDER_PX / OFFICIAL_SIZE - grow / 100.0)
    return edge_window(size, margin, size * feather / 100.0)


def soft_parse_mask(parse_mask: np.ndarray, size: int, feather: float | None = None,
                    grow: float = 0.0) -> np.ndarray:
    """A parse region mask made soft for pasting; `feather`/`grow` in % of the crop size.

    Worked at 512 like the official recipe: grow (dilate) or shrink (erode)
    the region, blur it so its soft edge is `feather` % wide, then fade it
    out at the crop border so nothing outside the crop can leak in.
    """
    feather = DEFAULT_PARSE_FEATHER if feather is None else float(feather)
    mask = _to_square(unit_mask(parse_mask, "parse mask"), OFFICIAL_SIZE)
    radius = int(round(abs(grow) / 100.0 * OFFICIAL_SIZE))
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.dilate(mask, kernel) if grow > 0 else cv2.erode(mask, kernel)
    width_px = feather / 100.0 * OFFICIAL_SIZE
    if width_px > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), max(width_px / 4.0, 0.3))
    window = edge_window(OFFICIAL_SIZE, 2.0, max(width_px, float(OFFICIAL_BORDER_PX)))
    return _to_square(mask * window, size)


def smooth_small_face(crop: np.ndarray) -> np.ndarray:
    """The official 3x3 [1,2,1]x[1,2,1]/16 smoothing for faces under SMALL_FACE_PX."""
    return cv2.filter2D(crop, -1, _SMALL_FACE_KERNEL)


def is_small_face(box_w: float, box_h: float) -> bool:
    return min(box_w, box_h) < SMALL_FACE_PX
