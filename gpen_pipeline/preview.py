"""A picture of what was found: the image with every candidate face boxed and numbered by
the position that a selection's `indices` refers to, and the same as data."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from .face import Face
from .selection import LARGEST, select_faces

# Enough to read the numbers; bigger previews only cost PNG time on large photos.
PREVIEW_MAX_SIDE = 1024
KEPT_RGB = (80, 220, 100)
DROPPED_RGB = (150, 150, 150)


def numbered_faces(found: Sequence[Face], order: str, min_size: float) -> list[Face]:
    """The faces in the order that `indices` counts them (position 0 first); a clip's tracked faces
    by their track numbers, which `indices` counts."""
    if found and all(face.track is not None for face in found):
        return sorted(found, key=lambda face: face.track)
    return select_faces(found, order="large-small" if order == LARGEST else order, min_size=min_size)


def draw_numbers(rgb: np.ndarray, faces: Sequence[Face], kept: Sequence[bool], scale: float) -> np.ndarray:
    """A copy of `rgb` (HxWx3 uint8) with numbered boxes; box coordinates are multiplied by `scale`."""
    out = np.ascontiguousarray(rgb.copy())
    thickness = max(1, round(min(out.shape[:2]) / 300))
    for index, (face, keep) in enumerate(zip(faces, kept)):
        x0, y0, x1, y1 = (int(round(v * scale)) for v in face.box)
        colour = KEPT_RGB if keep else DROPPED_RGB
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thickness)
        label = str(index if face.track is None else face.track)
        font_scale = max(0.4, min(1.5, (x1 - x0) / 80))
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = max(0, y0 - th - base - 2)
        cv2.rectangle(out, (x0, top), (x0 + tw + 4, top + th + base + 2), colour, -1)
        cv2.putText(out, label, (x0 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0),
                    thickness, cv2.LINE_AA)
    return out


def numbered_preview(image: np.ndarray | torch.Tensor, detected: Sequence[Face], selected: Sequence[Face],
                     order: str, min_size: float, draw: bool = True) -> tuple[np.ndarray, list[dict]]:
    """(HxWx3 uint8 picture at most PREVIEW_MAX_SIDE wide and high, [{"index", "box", "score", "selected"}]),
    boxes in the pixels of `image`. With draw=False the picture is left unmarked, for a viewer that
    draws the boxes and numbers itself (the editor's face picker)."""
    pixels = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    height, width = pixels.shape[:2]
    ranked = numbered_faces(detected, order, min_size)
    chosen = {id(face) for face in selected}
    kept = [id(face) in chosen for face in ranked]
    scale = min(1.0, PREVIEW_MAX_SIDE / max(height, width))
    rgb = pixels[..., :3]
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                         interpolation=cv2.INTER_AREA)
    faces = [{"index": i if face.track is None else face.track, "box": [round(float(v), 1) for v in face.box], "score": round(float(face.score), 3),
              "selected": keep} for i, (face, keep) in enumerate(zip(ranked, kept))]
    return (draw_numbers(rgb, ranked, kept, scale) if draw else np.ascontiguousarray(rgb)), faces
