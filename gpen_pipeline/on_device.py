"""Crops cut, restored and pasted on the model's device, the image going up and down once.

With the restorer on a GPU, sending every crop to the host for cv2 and back
costs more than the warps themselves. These are the cv2 steps of align.py and
paste.py in device-agnostic torch, with the same conventions: pixel centres at
integer coordinates, a black border, crops on whole grey levels like the uint8
crops of the numpy path, and only pixels under a non-zero mask written. The
geometry (boxes, maps) is paste.py's own, computed in numpy on a few numbers.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .align import compose_affine, invert_affine
from .face import AlignedFace
from .geometry import Roi, face_box, footprint, inside_source, is_small_in_target
from .restore import model_placement, run_batched

# Paste-mask values this close to 1 are 1 (see _render).
_NEARLY_ONE = 1.0 - 2.0 ** -20


def model_device(model) -> torch.device:
    """The device the model's parameters sit on (the CPU for a model without any)."""
    return model_placement(model, None)[0]


def to_device(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """An HxWxC numpy image as a tensor of the same dtype on `device` (one upload)."""
    with warnings.catch_warnings():
        # A read-only array (a view of a host tensor) is fine: nothing here writes into the source.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(image)).to(device)


def _sampling_grid(out_to_src: np.ndarray, out_hw: tuple[int, int], src_hw: tuple[int, int],
                   device: torch.device) -> torch.Tensor:
    """grid_sample's (1,h,w,2) grid for an output-pixel -> source-pixel map (pixel centres at integers)."""
    h_s, w_s = src_hw
    # align_corners=False reads pixel x of a W-wide source at (2x + 1) / W - 1: folded into the map in float64,
    # then applied with Python scalars, so no matrix has to be uploaded.
    to_unit = np.array([[2.0 / w_s, 0.0, 1.0 / w_s - 1.0], [0.0, 2.0 / h_s, 1.0 / h_s - 1.0]])
    (a, b, c), (d, e, f) = compose_affine(to_unit, out_to_src).tolist()
    ys = torch.arange(out_hw[0], dtype=torch.float32, device=device)[:, None]
    xs = torch.arange(out_hw[1], dtype=torch.float32, device=device)[None, :]
    return torch.stack([xs * a + ys * b + c, xs * d + ys * e + f], dim=-1)[None]


def _sample(planes: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """(C,h,w) planes read at `grid`, zero outside (cv2's BORDER_CONSTANT 0)."""
    return F.grid_sample(planes[None], grid, mode=mode, padding_mode="zeros", align_corners=False)[0]


def _levels(unit: torch.Tensor) -> torch.Tensor:
    """[0,1] values -> whole grey levels 0..255 (float), as uint8 crops hold them."""
    return (unit.clamp(0.0, 1.0) * 255.0).round()


def warp_crops(image: torch.Tensor, affines: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """The SxS crops that `affines` (image -> crop) cut from `image`, as (N,3,S,S) float32 in [0,1].

    `image`: HxWx3/4 uint8 or float32 [0,1] tensor; the crops land on its device.
    Bilinear with a black border like `align.warp_crop`, and on whole grey levels
    like its uint8 crops; NaN/Inf become black/white.
    """
    h, w = image.shape[:2]
    crops = torch.zeros((len(affines), 3, size, size), dtype=torch.float32, device=image.device)
    for index, affine in enumerate(affines):
        inverse = invert_affine(affine)
        box = footprint(inverse, size, h, w)  # the part of the image the crop reads
        if box is None:
            continue  # the crop sees no pixel of the image: black, as cv2 gives
        region = image[box.slices][..., :3].permute(2, 0, 1).float()  # only this box is made float
        region_map = inverse - np.array([[0, 0, box.x0], [0, 0, box.y0]], dtype=np.float64)
        grid = _sampling_grid(region_map, (size, size), tuple(region.shape[1:]), image.device)
        crops[index] = _sample(region, grid)
    if image.dtype == torch.uint8:
        return crops.round_().div_(255.0)
    # NaN/Inf from a broken upstream node must not reach the network: black/white, as warp_crop does.
    torch.nan_to_num_(crops, nan=0.0, posinf=1.0, neginf=0.0)
    return _levels(crops).div_(255.0)


def restore_on_device(model, crops: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """(N,3,S,S) [0,1] crops through the network, kept on its device; the output on whole grey levels in [0,1]."""
    out = run_batched(model, crops * 2.0 - 1.0, batch_size, keep_on_device=True)
    return _levels(out * 0.5 + 0.5).div_(255.0)


def _smooth_small_face(levels: torch.Tensor) -> torch.Tensor:
    """masks.smooth_small_face on (3,S,S) grey levels: [1,2,1]x[1,2,1]/16, reflect-101 border, rounded.

    Applied as two exact [1,2,1]/4 passes, so sums of whole levels round as cv2 rounds them."""
    padded = F.pad(levels[None], (1, 1, 1, 1), mode="reflect")[0]  # torch's "reflect" is cv2's REFLECT_101
    rows = (padded[:, :-2] + 2.0 * padded[:, 1:-1] + padded[:, 2:]) / 4.0
    return ((rows[..., :-2] + 2.0 * rows[..., 1:-1] + rows[..., 2:]) / 4.0).round()


def _without_surround(levels: torch.Tensor, inside: torch.Tensor, face_px: torch.Tensor, face_mask: torch.Tensor,
                      grid: torch.Tensor, is_u8: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """paste._warp_without_surround on the device: along the border of a face cut by the image edge,
    the face from real crop pixels only and its mask faded by their share."""
    core = -F.max_pool2d(-F.pad(inside[None, None], (1, 1, 1, 1), value=0.0), 3, stride=1)[0]  # erode, 0 border
    warped = _sample(torch.cat([core, inside[None], levels * inside]), grid)
    rim, weight = warped[0] < 1.0 - 1e-6, warped[1]
    fixed = warped[2:] / weight.clamp_min(1e-6)
    fixed = fixed.round().clamp_(0.0, 255.0) if is_u8 else fixed / 255.0
    return torch.where(rim, fixed, face_px), torch.where(rim, face_mask * weight.clamp(0.0, 1.0), face_mask)


def _render(image: torch.Tensor, face: AlignedFace, crop: torch.Tensor, crop_mask: torch.Tensor,
            original: torch.Tensor | None, mode: str, strength: float):
    """One face in its box of the target: (roi, mask (h,w), pixels (h,w,3)) or None; paste._render_face's steps."""
    h, w = image.shape[:2]
    size = crop.shape[-1]
    placed = face_box(face, size, (h, w))
    if placed is None:
        return None
    roi, to_roi = placed
    levels = _levels(crop)
    if mode == "official" and is_small_in_target(face, (h, w)):
        levels = _smooth_small_face(levels)
    if original is not None and strength < 1.0:
        # The official strength: cv2.addWeighted of the restored and original uint8 crops.
        levels = (levels * strength + _levels(original) * (1.0 - strength)).round().clamp_(0.0, 255.0)

    grid = _sampling_grid(invert_affine(to_roi), (roi.y1 - roi.y0, roi.x1 - roi.x0), (size, size), image.device)
    face_mask = _sample(crop_mask[None], grid)[0].clamp_(0.0, 1.0)
    # grid_sample's weights need not sum to exactly 1, so a flat 1 can read 0.99999994 where cv2 reads 1.
    # Made 1 again, the plateaus of overlapping faces tie exactly and the first face keeps them, as in
    # paste_faces (which face a plateau pixel shows would otherwise be float noise).
    face_mask = face_mask.masked_fill_(face_mask > _NEARLY_ONE, 1.0)
    is_u8 = image.dtype == torch.uint8
    # Bilinear in the official recipe, bicubic otherwise (torch's and cv2's cubic share a = -0.75).
    face_mode = "bilinear" if mode == "official" else "bicubic"
    if is_u8:  # uint8 targets take the warped uint8 crop: rounded and saturated
        face_px = _sample(levels, grid, face_mode).round_().clamp_(0.0, 255.0)
    else:
        face_px = _sample(levels / 255.0, grid, face_mode).clamp_(0.0, 1.0)
    inside = None if mode == "official" else inside_source(face, size, (h, w))  # official keeps its dark rim
    if inside is not None:
        # Only faces cut by the source's border get here; their small crop-space map goes up once.
        face_px, face_mask = _without_surround(levels, torch.from_numpy(inside).to(image.device), face_px,
                                               face_mask, grid, is_u8)
    return roi, face_mask, face_px.permute(1, 2, 0)


def paste_crops(image: torch.Tensor, aligned: Sequence[AlignedFace], crops: torch.Tensor,
                crop_masks: torch.Tensor, strength: float = 1.0, mode: str = "official",
                originals: torch.Tensor | None = None, keep_gray: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`paste.paste_faces` on the device: returns (image, HxW float32 mask), tensors on the image's device.

    image: HxWx3/4 uint8 or float32 [0,1] tensor. crops: restored (N,3,S,S) in
    [0,1]; crop_masks: (N,S,S) crop-space masks made by paste.py's mask
    functions. mode: the paste_faces mask mode, for its warps and recipe;
    `originals` (the crops as cut, (N,3,S,S)) turn on the official crop blend
    for strength < 1, as `original_crops` does there. keep_gray is resolved
    by the caller (True/False). Pixels outside every mask are left bit for bit.
    """
    h, w = image.shape[:2]
    device = image.device
    full_mask = torch.zeros((h, w), dtype=torch.float32, device=device)
    strength = float(strength)
    if len(aligned) == 0 or strength == 0.0:
        return image.clone(), full_mask  # a new image, as paste_faces: on the CPU `image` may share the input's memory
    crop_blend = mode == "official" and originals is not None
    full_face = torch.zeros((h, w, 3), dtype=torch.float32, device=device)
    touched: Roi | None = None
    for index, face in enumerate(aligned):
        rendered = _render(image, face, crops[index], crop_masks[index],
                           originals[index] if crop_blend else None, mode, strength)
        if rendered is None:
            continue
        roi, face_mask, face_px = rendered
        sub_mask, sub_face = full_mask[roi.slices], full_face[roi.slices]
        higher = face_mask > sub_mask  # overlapping faces: the higher mask wins, as in paste_faces
        sub_face.copy_(torch.where(higher[..., None], face_px, sub_face))
        sub_mask.copy_(torch.where(higher, face_mask, sub_mask))
        touched = roi.union(touched)
    if touched is None:
        return image.clone(), full_mask
    if not crop_blend:
        full_mask.mul_(strength)
    return _composite(image, full_face, full_mask, touched, keep_gray), full_mask


def _composite(image: torch.Tensor, full_face: torch.Tensor, full_mask: torch.Tensor, roi: Roi,
               keep_gray: bool) -> torch.Tensor:
    """paste._composite on the device: one blend in float32; pixels under a zero mask keep their bits."""
    out = image.clone()
    sub_out = out[roi.slices]
    mask = full_mask[roi.slices][..., None]
    face = full_face[roi.slices]
    if keep_gray:  # BT.601 luma in all three channels, as color.gray_rgb
        face = (face[..., 0:1] * 0.299 + face[..., 1:2] * 0.587 + face[..., 2:3] * 0.114).expand(-1, -1, 3)
    base = sub_out[..., :3].float()
    if image.dtype != torch.uint8:
        base = torch.nan_to_num(base, nan=0.0, posinf=1.0, neginf=0.0)  # under a face only, as paste_faces
    blended = base * (1.0 - mask) + face * mask
    if image.dtype == torch.uint8:
        blended = blended.round_().clamp_(0.0, 255.0).to(torch.uint8)
    sub_out[..., :3] = torch.where(mask > 0, blended, sub_out[..., :3])
    return out
