"""Paste masks in crop space: the official GPEN recipe, a soft parse mask, a feathered box.

Every mask here is a float32 SxS array in [0,1] over the aligned crop, and
reaches 0 before the crop's edge, so the warped face never brings the crop's
black surround into the image.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import cv2
import numpy as np

from .color import check_crop
from .face import AlignedFace
from .names import MASK_MODES

# The official recipe is defined on a 512x512 parse map.
OFFICIAL_SIZE = 512
OFFICIAL_BORDER_PX = 26
OFFICIAL_BLUR_KSIZE = (101, 101)
OFFICIAL_BLUR_SIGMA = 4.0
# Faces whose box is under this many pixels get the official 3x3 smoothing before pasting (paste.py).
SMALL_FACE_PX = 100

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
    then a bilinear resize to the crop size. Blurred in float64 like the
    official code (its map is divided by 255.): a plateau then comes out as
    exactly 1.0 in float32, so where two faces' plateaus meet they tie and the
    first face keeps the pixel, as there.
    """
    mask = _to_square(unit_mask(parse_mask, "parse mask"), OFFICIAL_SIZE).astype(np.float64)
    b = OFFICIAL_BORDER_PX
    mask[:b, :] = 0
    mask[-b:, :] = 0
    mask[:, :b] = 0
    mask[:, -b:] = 0
    for _ in range(2):
        mask = cv2.GaussianBlur(mask, OFFICIAL_BLUR_KSIZE, OFFICIAL_BLUR_SIGMA)
    return cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)


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


def skin_weight(aligned: AlignedFace, size: int) -> np.ndarray:
    """SxS float32 weights over the crop, 1 on an ellipse of skin around the nose (cheeks, forehead,
    chin; from the face's own landmarks), fading to 0 at its edge: where a face's colour is judged."""
    scale = size / aligned.size
    points = (np.c_[aligned.face.landmarks, np.ones(5)] @ aligned.affine.T) * scale + 0.5 * (scale - 1.0)
    eyes, nose, mouth = points[:2].mean(0), points[2], points[3:].mean(0)
    across = points[1] - points[0]
    half_width = 0.95 * np.linalg.norm(across)
    half_height = 1.25 * np.linalg.norm(mouth - eyes)
    u = across / max(np.linalg.norm(across), 1e-6)
    grid = np.stack(np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32)), -1) - nose
    along, down = grid @ u, grid @ np.array([-u[1], u[0]])
    radius = np.sqrt((along / half_width) ** 2 + (down / half_height) ** 2)
    return _smoothstep((1.0 - radius) / 0.2).astype(np.float32)


def is_small_face(box_w: float, box_h: float) -> bool:
    return min(box_w, box_h) < SMALL_FACE_PX


def paste_masks(mode: str, crops: Sequence[np.ndarray], parse: Callable[[np.ndarray], np.ndarray] | None,
                feather: float | None, grow: float) -> np.ndarray:
    """The crop-space paste masks of restored crops (uint8 SxSx3 RGB), float32 in [0,1].

    mode:
      "official": GPEN's recipe on the parse map of each restored crop
        (official_parse_mask); without a parser, the demo's blurred rectangle.
      "parse": the parse regions grown by `grow` and feathered by `feather`
        (% of the crop size); needs `parse`.
      "box": a feathered rectangle (box_mask).
    `feather`/`grow` on an official mask redo it softly from its core.
    parse(crop) gives a crop's face-parsing mask (any square size, e.g.
    parsing.parse_mask_fn). Returns (N,S,S), or (1,S,S) when one mask
    serves every face (no parser, or mode "box": the parser is not called).
    """
    if mode not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mode!r}; choose one of {', '.join(MASK_MODES)}")
    if mode == "parse" and parse is None:
        raise ValueError("mask mode 'parse' needs a face parser (gpen_pipeline.parsing.load_parser and "
                         "parse_mask_fn); without one use mask mode 'box' or 'official'")
    if len(crops) == 0:
        raise ValueError("paste_masks needs at least one crop: the masks take its size")
    crops = [check_crop(crop, f"crop {index}") for index, crop in enumerate(crops)]
    size = crops[0].shape[0]
    if any(crop.shape[0] != size for crop in crops):
        raise ValueError(f"crops must all be {size}x{size} like the first, got sizes "
                         f"{sorted({crop.shape[0] for crop in crops})}")
    if parse is None or mode == "box":
        return _paste_mask(mode, size, None, feather, grow)[None]
    return np.stack([_paste_mask(mode, size, parse(crop), feather, grow) for crop in crops])


def _paste_mask(mode: str, size: int, parse_mask: np.ndarray | None, feather: float | None,
                grow: float) -> np.ndarray:
    if mode == "box":
        return box_mask(size, feather, grow)
    if mode == "parse":
        return soft_parse_mask(parse_mask, size, feather, grow)
    base = official_rect_mask(size) if parse_mask is None else official_parse_mask(parse_mask, size)
    if feather is None and grow == 0:
        return base
    # Adjustments asked for on top of the official mask: redo it softly from its core.
    return soft_parse_mask(base > 0.5, size, feather, grow)
