"""Face crops cut from an image tensor, on whichever device the image is.

The official crop (cv2.warpAffine, bilinear, black border) in device-agnostic
torch with its conventions: pixel centres at integer coordinates, and uint8
crops (tests/reference_cv2.py is the cv2
reference they are checked against). Only the box of the image a crop reads is
made float. The sampling helpers serve the paste (paste.py) as well.
"""
from __future__ import annotations

import warnings
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .align import compose_affine, invert_affine
from .color import check_image
from .geometry import footprint


def as_tensor(image: np.ndarray | torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """An image (HxWxC) or mask (HxW), numpy array or tensor, as a tensor of the same dtype on `device`.

    `device` None keeps it where it is. A numpy array going to the CPU is not
    copied (the tensor shares its memory) unless its strides are negative;
    read-only arrays are fine, as nothing here writes into its input.
    """
    if isinstance(image, torch.Tensor):
        return image if device is None else image.to(device)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"the image must be a numpy array or a torch tensor, got {type(image).__name__}")
    if any(stride < 0 for stride in image.strides):  # torch cannot view a flipped array
        image = np.ascontiguousarray(image)
    with warnings.catch_warnings():
        # A read-only array (a view of a host tensor, a decoded file) is fine: nothing here writes into it.
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(image)
    return tensor if device is None else tensor.to(device)


def sampling_grid(out_to_src: np.ndarray, out_hw: tuple[int, int], src_hw: tuple[int, int],
                  device: torch.device) -> torch.Tensor:
    """grid_sample's (1,h,w,2) grid for an output-pixel -> source-pixel map (pixel centres at integers)."""
    h_s, w_s = src_hw
    h_o, w_o = out_hw
    # align_corners=False reads pixel x of a W-wide source at (2x + 1) / W - 1: folded into the map in float64,
    # then applied with Python scalars, so no matrix has to be uploaded.
    to_unit = np.array([[2.0 / w_s, 0.0, 1.0 / w_s - 1.0], [0.0, 2.0 / h_s, 1.0 / h_s - 1.0]])
    (a, b, c), (d, e, f) = compose_affine(to_unit, out_to_src).tolist()
    xs = torch.arange(w_o, dtype=torch.float32, device=device)
    ys = torch.arange(h_o, dtype=torch.float32, device=device)[:, None]
    grid = torch.empty((1, h_o, w_o, 2), dtype=torch.float32, device=device)
    # Each coordinate is a row term plus a column term: one broadcast add over the grid, no per-pixel products.
    torch.add(xs * a + c, ys * b, out=grid[0, ..., 0])
    torch.add(xs * d + f, ys * e, out=grid[0, ..., 1])
    return grid


def sample(planes: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """(C,h,w) planes read at `grid`, zero outside (cv2's BORDER_CONSTANT 0)."""
    return F.grid_sample(planes[None], grid, mode=mode, padding_mode="zeros", align_corners=False)[0]


def _warp_boxes(planes: torch.Tensor, affines: Sequence[np.ndarray], size: int) -> Iterator[torch.Tensor | None]:
    """Per affine (image -> crop), the (C,S,S) float32 view it takes of HxWxC `planes`: bilinear, 0 outside;
    None when it sees no pixel of the image. Only the box of the image a crop reads is made float."""
    h, w, _ = planes.shape
    for affine in affines:
        inverse = invert_affine(affine)
        box = footprint(inverse, size, h, w)
        if box is None:
            yield None
            continue
        region = planes[box.slices].permute(2, 0, 1).float()
        region_map = inverse - np.array([[0, 0, box.x0], [0, 0, box.y0]], dtype=np.float64)
        yield sample(region, sampling_grid(region_map, (size, size), tuple(region.shape[1:]), planes.device))


def cut_crops(image: torch.Tensor, affines: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """The SxS crops that `affines` ((2,3) maps image -> crop) cut from `image`: (N,3,S,S) uint8.

    image: HxWx3/4 uint8, or float32 in [0,1]; the crops land on its device.
    Bilinear with a black border, rounded to uint8, like the official cv2 crop;
    NaN becomes black, +-Inf white/black.
    """
    check_image_tensor(image)
    out = torch.empty((len(affines), 3, size, size), dtype=torch.uint8, device=image.device)
    for index, crop in enumerate(_warp_boxes(image[..., :3], affines, size)):
        if crop is None:
            out[index] = 0  # as cv2 gives
            continue
        if image.is_floating_point():
            # NaN/Inf from a broken upstream node must not reach the network: black/white.
            crop = torch.nan_to_num_(crop, nan=0.0, posinf=1.0, neginf=0.0).mul_(255.0).clamp_(0.0, 255.0)
        out[index] = crop.round_()  # a uint8 image's bilinear mix stays within 0..255
    return out


def cut_masks(mask: torch.Tensor, affines: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """An image-space HxW mask (e.g. inpainting damage) seen through each crop: (N,S,S) float32.

    Bilinear, 0 outside the image; the mask's values are kept as they are.
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2:
        raise ValueError(f"mask must be an HxW tensor, got {getattr(mask, 'shape', type(mask).__name__)}; "
                         "give it as cut.as_tensor(mask)")
    out = torch.zeros((len(affines), size, size), dtype=torch.float32, device=mask.device)
    for index, seen in enumerate(_warp_boxes(mask[..., None], affines, size)):
        if seen is not None:
            out[index] = seen[0]
    return out


def check_image_tensor(image, name: str = "image") -> None:
    """Raise a ValueError unless `image` is an HxWx3/4 uint8 or float32 tensor."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(image).__name__}; convert it with cut.as_tensor")
    check_image(image, name)
