"""The Detect node's preview (gpen_pipeline.preview), saved to ComfyUI's temp folder like PreviewImage
does, plus the boxes as data: the editor's face picker draws the boxes and numbers on it and makes each
face clickable, so the picture itself is left unmarked (numbers drawn once)."""
from __future__ import annotations

import os
import random
import string
from typing import Sequence

import numpy as np
import torch
from PIL import Image

import folder_paths

from gpen_pipeline import FoundFaces
from gpen_pipeline.preview import numbered_preview

MAX_PREVIEW_IMAGES = 8


def save_temp_png(rgb: np.ndarray, prefix: str) -> dict:
    """Save to ComfyUI's temp folder; returns the {"filename","subfolder","type"} the UI fetches."""
    folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
        prefix, folder_paths.get_temp_directory(), rgb.shape[1], rgb.shape[0])
    name = f"{filename}_{counter:05}_.png"
    Image.fromarray(rgb).save(os.path.join(folder, name), compress_level=1)
    return {"filename": name, "subfolder": subfolder, "type": "temp"}


def face_previews(images: torch.Tensor, found: Sequence[FoundFaces], order: str, min_size: float) -> list[dict]:
    """One record per image for the first MAX_PREVIEW_IMAGES images of a batch:
    {"image" (its number), "preview" (the temp PNG's {"filename","subfolder","type"}), "width", "height",
    "faces": [{"index", "box", "score", "selected"}]}, boxes in the pixels of the node's input image.
    """
    prefix = "gpen_faces_" + "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    records = []
    for number, faces in enumerate(found[:MAX_PREVIEW_IMAGES]):
        picture, boxes = numbered_preview(images[number], faces.detected, faces.selected, order, min_size,
                                          draw=False)
        records.append({"image": number, "preview": save_temp_png(picture, prefix),
                        "width": int(images.shape[2]), "height": int(images.shape[1]), "faces": boxes})
    return records
