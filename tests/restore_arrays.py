"""The restore stage's network step on uint8 numpy crops, as the official FaceGAN takes them: crops of
any size resized to the model's (bilinear), uint8 SxSx3 in and out. The package works on crop tensors
(gpen_pipeline.restore); the fixtures hold arrays."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from gpen_arch import GPENModel
from gpen_pipeline.color import check_crop
from gpen_pipeline.face import crops_from_numpy, crops_to_numpy
from gpen_pipeline.options import TASKS
from gpen_pipeline.restore import restore_tensor_crops


def restore_crops(model: GPENModel, crops: Sequence[np.ndarray], task: str = "restore",
                  inpaint_masks: Sequence[np.ndarray] | None = None, batch_size: int | None = None,
                  round_output: bool = True) -> list[np.ndarray]:
    """`restore_tensor_crops` on uint8 RGB SxSx3 crops (float32 [0, 1] ones are rounded); returns uint8 crops.

    Crops of another size are resized to `model.size` first (bilinear, as the official code);
    inpaint masks (HxW, uint8 or float, >= half scale is damage) likewise (nearest)."""
    if len(crops) == 0:
        return []
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    size = model.size
    inputs = [_resized(check_crop(c, f"crop {i}", square=False), size, cv2.INTER_LINEAR) for i, c in enumerate(crops)]
    damage = None
    if task == "inpaint":
        if inpaint_masks is None or len(inpaint_masks) != len(inputs):
            got = None if inpaint_masks is None else len(inpaint_masks)
            raise ValueError(f"task 'inpaint' needs one mask per crop: {len(inputs)} crops, masks: {got}")
        damage = torch.from_numpy(np.stack([_unit_mask(m, size, i) for i, m in enumerate(inpaint_masks)]))
    out = restore_tensor_crops(model, crops_from_numpy(inputs), task, damage, batch_size)
    return list(crops_to_numpy(out.rounded if round_output else out.truncated))


def _resized(image: np.ndarray, size: int, interpolation: int) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=interpolation)


def _unit_mask(mask: np.ndarray, size: int, index: int) -> np.ndarray:
    """A crop's inpainting mask as float32 SxS in [0, 1] (uint8 read as 0..255)."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"inpaint mask {index} must be HxW, got shape {mask.shape}")
    unit = mask.astype(np.float32) / (255.0 if mask.dtype == np.uint8 else 1.0)
    return _resized(unit, size, cv2.INTER_NEAREST)
