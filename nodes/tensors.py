"""ComfyUI IMAGE/MASK tensors <-> what the pipeline's stages take, and batch checks."""
from __future__ import annotations

from collections.abc import Sequence

import torch

import comfy.model_management as model_management


def check_image_batch(image: torch.Tensor, name: str = "image") -> None:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (3, 4):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{name} must be a ComfyUI IMAGE [batch, height, width, 3 or 4], got {shape}")
    if image.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")


def mask_for_image(mask: torch.Tensor | None, index: int, hw: tuple[int, int],
                   name: str = "mask") -> torch.Tensor | None:
    """Image `index`'s HxW mask from a MASK [B,H,W] or [H,W]; a single mask serves every image."""
    if mask is None:
        return None
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise ValueError(f"{name} must be a ComfyUI MASK [batch, height, width] or [height, width], "
                         f"got {tuple(mask.shape)}")
    if tuple(mask.shape[1:]) != tuple(hw):
        raise ValueError(f"{name} is {mask.shape[2]}x{mask.shape[1]} but the image is {hw[1]}x{hw[0]}; "
                         "resize the mask to the image first")
    return mask[min(index, mask.shape[0] - 1)].detach().float()


def crops_to_image(crops: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) uint8 crops -> an IMAGE batch [N, S, S, 3] float32 in [0, 1]."""
    return crops.permute(0, 2, 3, 1).to(output_device(), torch.float32).div_(255.0)


def output_device() -> torch.device:
    return model_management.intermediate_device()


def check_faces_batch(faces: Sequence, batch: int, what: str = "faces") -> None:
    if not isinstance(faces, Sequence) or len(faces) != batch:
        got = len(faces) if isinstance(faces, Sequence) else type(faces).__name__
        raise ValueError(f"{what} were found on a batch of {got} images but the image input has {batch}; "
                         "connect the same image batch (or a resized copy of it) to both nodes")
