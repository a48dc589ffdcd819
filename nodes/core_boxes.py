"""ComfyUI's core BOUNDING_BOX values, in and out.

Core detection nodes (RT-DETR, MediaPipe's face landmarker, SDPose) give, per image, a list of
dicts {"x", "y", "width", "height"} in pixels (with "label" and "score" where they have them);
Draw BBoxes also takes one dict, or one flat list for every image. The same shapes are read here,
and our faces are given back in the per-image form.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

from gpen_pipeline import Face
from gpen_pipeline.values import shown

TYPE = "BOUNDING_BOX"
_KEYS = ("x", "y", "width", "height")


class BoxesRefused(ValueError):
    """A bboxes input that is not ComfyUI's bounding-box form."""


def boxes_per_image(value, images: int, name: str = "bboxes") -> list[list[tuple[float, float, float, float]]]:
    """(x1, y1, x2, y2) boxes for each of `images` images from a BOUNDING_BOX value: a dict, a list of
    dicts (the same boxes for every image), or one list of dicts per image (one list alone serves all)."""
    if isinstance(value, dict):
        value = [[value]]
    elif isinstance(value, (list, tuple)) and (not value or isinstance(value[0], dict)):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(each, (list, tuple)) for each in value):
        raise BoxesRefused(f"{name} must be bounding boxes ({{'x', 'y', 'width', 'height'}} dicts, a list per "
                           f"image), got {shown(value)}")
    if len(value) == 1:
        value = list(value) * images
    if len(value) != images:
        raise BoxesRefused(f"{name} has {len(value)} lists of boxes for {images} images; give one list per image, "
                           "or one list for all of them")
    return [[_corners(box, name, index) for box in each] for index, each in enumerate(value)]


def boxes_from_masks(masks, images: int, hw: tuple[int, int],
                     name: str = "face_masks") -> list[list[tuple[float, float, float, float]]]:
    """(x1, y1, x2, y2) boxes for each of `images` images from a MASK with one face per mask (a
    segmentation node's): for a single image every mask is one of its faces, for a batch mask i is
    image i's face. Each box is the bounding box of its mask's pixels above one half; an empty mask
    gives no face."""
    if not hasattr(masks, "ndim") or masks.ndim not in (2, 3):
        raise BoxesRefused(f"{name} must be a ComfyUI MASK [masks, height, width], got {shown(masks)}")
    masks = masks[None] if masks.ndim == 2 else masks
    if tuple(masks.shape[1:]) != tuple(hw):
        raise BoxesRefused(f"{name} is {masks.shape[2]}x{masks.shape[1]} but the image is {hw[1]}x{hw[0]}; "
                           "give masks of the image's size")
    if images > 1 and masks.shape[0] != images:
        raise BoxesRefused(f"{name} has {masks.shape[0]} masks for {images} images: give one mask per face of a "
                           "single image, or one face's mask per image of a batch")
    boxes = [_mask_box(mask) for mask in masks]
    found = [box for box in boxes if box is not None]
    return [found] if images == 1 else [[box] if box is not None else [] for box in boxes]


def _mask_box(mask) -> tuple[float, float, float, float] | None:
    rows, cols = (mask > 0.5).any(dim=1), (mask > 0.5).any(dim=0)
    if not rows.any():
        return None
    ys, xs = rows.nonzero()[:, 0], cols.nonzero()[:, 0]
    return float(xs[0]), float(ys[0]), float(xs[-1]) + 1.0, float(ys[-1]) + 1.0


def _corners(box, name: str, image: int) -> tuple[float, float, float, float]:
    if not isinstance(box, dict) or any(key not in box for key in _KEYS):
        raise BoxesRefused(f"{name} of image {image}: each box must be a dict with x, y, width and height, "
                           f"got {shown(box)}")
    values = [box[key] for key in _KEYS]
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values) \
            or box["width"] <= 0 or box["height"] <= 0:
        raise BoxesRefused(f"{name} of image {image}: x, y, width and height must be finite numbers with a width "
                           f"and height above 0, got {shown(box)}")
    x, y, width, height = (float(v) for v in values)
    return x, y, x + width, y + height


def core_boxes(per_image: Sequence[Sequence[Face]]) -> list[list[dict]]:
    """Our faces as core bounding boxes, one list per image (a track number where there is one)."""
    out = []
    for faces in per_image:
        boxes = []
        for face in faces:
            x1, y1, x2, y2 = (float(v) for v in face.box)
            box = {"x": x1, "y": y1, "width": x2 - x1, "height": y2 - y1, "label": "face", "score": float(face.score)}
            if face.track is not None:
                box["track"] = face.track
            boxes.append(box)
        out.append(boxes)
    return out
