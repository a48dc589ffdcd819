"""The Detect node's preview: the image with every candidate face boxed and numbered by the
position that the node's `indices` input refers to, saved to ComfyUI's temp folder like
PreviewImage does, plus the boxes as data so the editor can make each face clickable."""
from __future__ import annotations

import os
import random
import string
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

import folder_paths

from gpen_pipeline.face import Face
from gpen_pipeline.selection import LARGEST, select_faces

# Enough to read the numbers; bigger previews only cost PNG time on large photos.
PREVIEW_MAX_SIDE = 1024
MAX_PREVIEW_IMAGES = 8
KEPT_RGB = (80, 220, 100)
DROPPED_RGB = (150, 150, 150)


def numbered_faces(found: Sequence[Face], order: str, min_size: float) -> list[Face]:
    """The faces in the order that `indices` counts them (position 0 first)."""
    return select_faces(found, order="large-small" if order == LARGEST else order, min_size=min_size)


def draw_numbers(rgb: np.ndarray, faces: Sequence[Face], kept: Sequence[bool], scale: float) -> np.ndarray:
    """A copy of `rgb` (HxWx3 uint8) with numbered boxes; box coordinates are multiplied by `scale`."""
    out = np.ascontiguousarray(rgb.copy())
    thickness = max(1, round(min(out.shape[:2]) / 300))
    for index, (face, keep) in enumerate(zip(faces, kept)):
        x0, y0, x1, y1 = (int(round(v * scale)) for v in face.box)
        colour = KEPT_RGB if keep else DROPPED_RGB
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thickness)
        label = str(index)
        font_scale = max(0.4, min(1.5, (x1 - x0) / 80))
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = max(0, y0 - th - base - 2)
        cv2.rectangle(out, (x0, top), (x0 + tw + 4, top + th + base + 2), colour, -1)
        cv2.putText(out, label, (x0 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0),
                    thickness, cv2.LINE_AA)
    return out


def save_temp_png(rgb: np.ndarray, prefix: str) -> dict:
    """Save to ComfyUI's temp folder; returns the {"filename","subfolder","type"} the UI fetches."""
    folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
        prefix, folder_paths.get_temp_directory(), rgb.shape[1], rgb.shape[0])
    name = f"{filename}_{counter:05}_.png"
    Image.fromarray(rgb).save(os.path.join(folder, name), compress_level=1)
    return {"filename": name, "subfolder": subfolder, "type": "temp"}


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """HxWxC float [0,1] (alpha dropped) -> HxWx3 uint8."""
    return np.clip(np.rint(image[..., :3] * 255.0), 0, 255).astype(np.uint8)


def face_previews(images: Sequence[np.ndarray], found: Sequence[Sequence[Face]],
                  selected: Sequence[Sequence[Face]], order: str, min_size: float) -> tuple[list[dict], list[dict]]:
    """(image refs, face data) for the first MAX_PREVIEW_IMAGES images of a batch.

    Face data per image: {"image", "width", "height", "faces": [{"index", "box", "score", "selected"}]},
    boxes in the pixels of the node's input image.
    """
    prefix = "gpen_faces_" + "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    refs, data = [], []
    for number, (image, faces_found, chosen) in enumerate(zip(images, found, selected)):
        if number >= MAX_PREVIEW_IMAGES:
            break
        height, width = image.shape[:2]
        ranked = numbered_faces(faces_found, order, min_size)
        chosen_ids = {id(face) for face in chosen}
        kept = [id(face) in chosen_ids for face in ranked]
        scale = min(1.0, PREVIEW_MAX_SIDE / max(height, width))
        rgb = to_uint8_rgb(image)
        if scale < 1.0:
            rgb = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                             interpolation=cv2.INTER_AREA)
        refs.append(save_temp_png(draw_numbers(rgb, ranked, kept, scale), prefix))
        data.append({"image": number, "width": width, "height": height,
                     "faces": [{"index": i, "box": [round(float(v), 1) for v in face.box],
                                "score": round(float(face.score), 3), "selected": keep}
                               for i, (face, keep) in enumerate(zip(ranked, kept))]})
    return refs, data
