"""Paste restored face crops back into an image tensor (the original or a resized copy of it).

Per face, on the image's device: the crop made ready in crop space (colour
match, the official small-face smoothing and crop blend), then crop and mask
warped into the face's box of the target with the inverse similarity (black
border; the face bilinear in "official" mode as GPEN does, bicubic otherwise)
and blended there in float32. Where faces overlap, "official" mode keeps the
official rule (the higher mask wins, the first face on ties; the masks warped
by cv2 itself so that the same face wins); the other modes mix the faces by
their mask weights, so no seam runs where their masks cross. Only the faces'
boxes are ever made float, and only pixels under a non-zero mask are written.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .align import invert_affine
from .color import is_grayscale, luma, match_color
from .cut import check_image_tensor, cut_crops, sample, sampling_grid
from .face import AlignedFace
from .blend import BLENDS, add_grain, mix
from .geometry import Roi, crop_to_target, face_box, face_size_in, inside_source, is_small_in_target
from .masks import skin_weight
from .names import KEEP_GRAY, MASK_MODES

__all__ = ["KEEP_GRAY", "MASK_MODES", "PasteResult", "paste_faces", "pastes_gray"]

@dataclass(frozen=True)
class PasteResult:
    image: torch.Tensor  # a new tensor, the input's shape, dtype and device
    mask: torch.Tensor  # HxW float32 in [0,1]: the blend weight actually used


def pastes_gray(keep_gray: str, image: torch.Tensor) -> bool:
    """Whether faces pasted into `image` are re-greyed: "on", or "auto" on a black-and-white image."""
    if keep_gray not in KEEP_GRAY:
        raise ValueError(f"keep_gray must be one of {', '.join(KEEP_GRAY)}, got {keep_gray!r}")
    return keep_gray == "on" or (keep_gray == "auto" and is_grayscale(image))


def paste_faces(image: torch.Tensor, faces: Sequence[AlignedFace], crops: torch.Tensor, crop_masks: torch.Tensor,
                *, mode: str = "official", strength: float | Sequence[float] = 1.0,
                originals: torch.Tensor | None = None,
                keep_gray: bool = False, color_match: bool = False,
                region_mask: torch.Tensor | None = None, blend: str = "feather", grain: bool = False) -> PasteResult:
    """Blend restored crops back into `image`, on its device.

    image: HxWx3/4 tensor, uint8 or float32 in [0,1]; it may be a resized
      copy (any scale) of the image the faces were aligned on.
    crops: (N,3,S,S) restored crops, uint8, any S.
    crop_masks: (N,S,S) crop-space paste masks, or (1,S,S) for every face
      (masks.paste_masks).
    mode: "official" warps the face bilinearly, smooths faces under 100 px
      and keeps GPEN's dark rim where a face is cut by the image border;
      "parse" and "box" warp bicubically and leave the crop's black surround
      out of such faces.
    strength: 0..1, for every face or one per face. In "official" mode with
      `originals` (the crops as cut, (N,3,S',S')) it mixes restored and
      original crops like the official demo; otherwise it scales the mask.
      A face at 0 is left out; all at 0 return a copy of the image.
    originals: (N,3,S',S') uint8, the crops as they were cut.
    color_match: give each face the low-frequency colour of its original
      (`originals`, or cut from `image` when None).
    keep_gray: re-grey the pasted faces (see pastes_gray for "auto").
    region_mask: HxW weights (float [0,1], uint8 or bool) limiting where
      faces go.
    blend: "feather" or "multiband" (blend.py).
    grain: give each face the photo's grain, as measured just outside its mask.
    Returns a new image (pixels under a zero mask bit-identical to the input,
    alpha untouched) and the HxW float32 blend weight used.
    """
    _check_args(image, faces, crops, crop_masks, mode, strength, originals, keep_gray, region_mask)
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}; choose one of {', '.join(BLENDS)}")
    h, w = image.shape[:2]
    device = image.device
    full_mask = torch.zeros((h, w), dtype=torch.float32, device=device)
    strengths = _per_face(strength, len(faces))
    if len(faces) == 0 or not any(strengths):
        return PasteResult(image.clone(), full_mask)
    crops, crop_masks = crops.to(device), crop_masks.to(device=device, dtype=torch.float32)
    if originals is not None:
        originals = originals.to(device)
    region = None if region_mask is None else region_mask.to(device)

    crop_blend = mode == "official" and originals is not None
    out = image.clone()
    pasted: list[Roi] = []
    size = crops.shape[-1]
    planes = torch.empty((4, size, size), dtype=torch.float32, device=device)  # each face's in turn

    def warped(index: int, roi: Roi, crop_to_roi: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        _fill_planes(planes, image, faces[index], crops[index], crop_masks[index if len(crop_masks) > 1 else 0],
                     None if originals is None else originals[index], mode, strengths[index] if crop_blend else 1.0,
                     color_match)
        face_mask, face_px = _warp_face(image, faces[index], planes, crop_to_roi, roi, mode)
        if grain:
            face_px = add_grain(face_px, _float_planes(image[roi.slices]), face_mask, seed=index * 7919 + roi.x0,
                                scale=255.0 if image.dtype == torch.uint8 else 1.0)
        if not crop_blend and strengths[index] != 1.0:
            face_mask = face_mask * strengths[index]  # before faces meet, so each keeps its own strength
        return face_mask, face_px

    def put(box: Roi, face_px: torch.Tensor, face_mask: torch.Tensor, higher: torch.Tensor | None,
            size_px: float) -> None:
        weight = _in_region(face_mask, region, box)
        if higher is None and any(box.overlaps(other) for other in pasted):
            higher = face_mask > 0  # pixels of the box an earlier face may have written keep its value
        _blend(out[box.slices], image[box.slices], face_px, weight,
               None if higher is None else higher & (weight > 0), keep_gray, blend, size_px)

    # None: the face misses the target, or is pasted at strength 0.
    placed = [face_box(face, size, (h, w)) if strengths[i] > 0 else None for i, face in enumerate(faces)]
    for group in _paste_groups(placed, mode):
        if len(group) == 1:
            roi, crop_to_roi = placed[group[0]]
            face_mask, face_px = warped(group[0], roi, crop_to_roi)
            sub_mask = full_mask[roi.slices]
            higher = None
            if any(roi.overlaps(other) for other in pasted):
                higher = face_mask > sub_mask  # the official rule: the higher mask wins, the first on ties
            torch.maximum(sub_mask, face_mask, out=sub_mask)
            put(roi, face_px, face_mask, higher, face_size_in(faces[group[0]], (h, w)))
            pasted.append(roi)
            continue
        # Faces whose boxes overlap: mixed by their mask weights, so no seam runs where their masks cross.
        box = functools.reduce(Roi.union, (placed[i][0] for i in group))
        mixed = torch.zeros((3, box.y1 - box.y0, box.x1 - box.x0), dtype=torch.float32, device=device)
        total, top = torch.zeros_like(mixed[0]), torch.zeros_like(mixed[0])
        for index in group:
            roi, crop_to_roi = placed[index]
            face_mask, face_px = warped(index, roi, crop_to_roi)
            inner = roi.within(box)
            mixed[(slice(None),) + inner].addcmul_(face_px, face_mask)
            total[inner].add_(face_mask)
            torch.maximum(top[inner], face_mask, out=top[inner])
        mixed.div_(total.clamp_min(1e-12))
        sub_mask = full_mask[box.slices]
        torch.maximum(sub_mask, top, out=sub_mask)
        put(box, mixed, top, None, max(face_size_in(faces[i], (h, w)) for i in group))
        pasted.extend(placed[i][0] for i in group)
    if pasted:
        touched = functools.reduce(Roi.union, pasted)
        sub_mask = full_mask[touched.slices]
        if region is not None:
            sub_mask.copy_(_in_region(sub_mask, region, touched))  # the very weights the blends used
        if mode == "official":
            sub_mask.clamp_(max=1.0)  # cv2's warp can read 1 + 1e-7 on a plateau; the blends used it as is
    return PasteResult(out, full_mask)


def _paste_groups(placed: Sequence[tuple[Roi, np.ndarray] | None], mode: str) -> list[list[int]]:
    """The faces that land in the target, grouped for pasting: one by one in "official" mode (the
    official rule decides between overlapping faces); elsewhere faces whose boxes overlap, directly
    or through others, form one group, in the order of their first face."""
    indices = [i for i, p in enumerate(placed) if p is not None]
    if mode == "official":
        return [[i] for i in indices]
    groups: list[list[int]] = []
    for index in indices:
        touching = [g for g in groups if any(placed[index][0].overlaps(placed[j][0]) for j in g)]
        merged = [index] + [j for g in touching for j in g]
        groups = [g for g in groups if g not in touching] + [sorted(merged)]
    return sorted(groups)


def _per_face(strength: float | Sequence[float], count: int) -> list[float]:
    """One strength per face from one for all or a sequence of them (checked by _check_args)."""
    if np.ndim(strength) == 0:
        return [float(strength)] * count
    return [float(s) for s in strength]


def _in_region(mask: torch.Tensor, region: torch.Tensor | None, roi: Roi) -> torch.Tensor:
    """A box's mask (already times its face's strength) times the region mask."""
    if region is not None:
        mask = mask * _unit(region[roi.slices])
    return mask


def _unit(region: torch.Tensor) -> torch.Tensor:
    """Region weights as float32 in [0,1]: uint8 read as 0..255, bool as 0/1, floats clipped."""
    if region.dtype == torch.bool:
        return region.float()
    if region.dtype == torch.uint8:
        return region.float() / 255.0
    return region.float().clamp(0.0, 1.0)


def _fill_planes(planes: torch.Tensor, image: torch.Tensor, face: AlignedFace, crop: torch.Tensor,
                 crop_mask: torch.Tensor, original: torch.Tensor | None, mode: str, blend: float,
                 color_match: bool) -> None:
    """Fill (4,S,S) float32 `planes` with the face's grey levels made ready to warp (colour-matched, then
    smoothed and crop-blended as the official recipe) and, as the fourth plane, its paste mask."""
    target_hw = tuple(image.shape[:2])
    size = crop.shape[-1]
    levels = planes[:3]
    levels.copy_(crop)
    planes[3].copy_(crop_mask)
    reference = _reference_levels(image, face, size, original) if color_match or blend < 1.0 else None
    if color_match:
        # Judged mostly on the skin, so hair and background pull it little; they still count a tenth,
        # so that far from the skin the colour follows its own surroundings.
        weight = 0.1 + 0.9 * skin_weight(face, size)
        inside = inside_source(face, size, target_hw)
        if inside is not None:
            weight = weight * inside
        levels.copy_(match_color(levels, reference, torch.from_numpy(weight)))
    if mode == "official" and is_small_in_target(face, target_hw):
        _smooth_small_face(levels)
    if blend < 1.0:
        # The official strength: cv2.addWeighted of the restored and original uint8 crops.
        levels.copy_((levels * blend + reference * (1.0 - blend)).round_().clamp_(0.0, 255.0))


def _reference_levels(image: torch.Tensor, face: AlignedFace, size: int, original: torch.Tensor | None):
    """The face as it was, (3,S,S) float grey levels: `original` resized to S, or cut from the target."""
    if original is None:
        target_to_crop = invert_affine(crop_to_target(face, size, tuple(image.shape[:2])))
        return cut_crops(image, [target_to_crop], size)[0].float()
    original = original.float()
    if original.shape[-1] != size:
        original = F.interpolate(original[None], size=(size, size), mode="bilinear", align_corners=False)[0]
        original = original.round_().clamp_(0.0, 255.0)
    return original


def _smooth_small_face(levels: torch.Tensor) -> None:
    """The official 3x3 [1,2,1]x[1,2,1]/16 smoothing of (3,S,S) grey levels, in place, reflect-101 border,
    rounded.

    Two [1,2,1]/4 passes, exact on whole levels (quarters and sixteenths are exact in float32), so
    the sums round as cv2's uint8 filter rounds them."""
    rows = torch.empty_like(levels)
    _smooth_121(levels, rows, axis=1)
    _smooth_121(rows, levels, axis=2)
    levels.round_()


def _smooth_121(source: torch.Tensor, target: torch.Tensor, axis: int) -> None:
    """target = [1,2,1]/4 along `axis` of source; reflect-101 makes an edge pixel's outer neighbour its inner one."""
    n = source.shape[axis]
    middle = target.narrow(axis, 1, n - 2)
    torch.add(source.narrow(axis, 0, n - 2), source.narrow(axis, 2, n - 2), out=middle)
    middle.add_(source.narrow(axis, 1, n - 2), alpha=2.0)
    for edge, inner in ((0, 1), (n - 1, n - 2)):
        torch.add(source.select(axis, edge), source.select(axis, inner), out=target.select(axis, edge)).mul_(2.0)
    target.mul_(0.25)


def _warp_face(image: torch.Tensor, face: AlignedFace, planes: torch.Tensor, crop_to_roi: np.ndarray, roi: Roi,
               mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask (h,w) and face (3,h,w) in the face's box of the target, from the face's planes (_fill_planes):
    the face in grey levels on a uint8 target (rounded, as the warped uint8 crop), in [0,1] on a float one."""
    size = planes.shape[-1]
    levels = planes[:3]
    grid = sampling_grid(invert_affine(crop_to_roi), (roi.y1 - roi.y0, roi.x1 - roi.x0), (size, size),
                         planes.device)
    if mode == "official":
        face_px, face_mask = sample(levels, grid), _official_mask_warp(planes[3], crop_to_roi, roi)
    else:
        # Bicubic undoes the bilinear crop far better (identity round trip at 512: ~42.5 dB -> ~47 dB);
        # torch's and cv2's cubic share a = -0.75.
        face_px, face_mask = sample(levels, grid, "bicubic"), sample(planes[3:], grid)[0]
        face_mask.clamp_(0.0, 1.0)  # interpolation can overshoot 1 by a rounding
    is_u8 = image.dtype == torch.uint8
    if is_u8:
        face_px.round_().clamp_(0.0, 255.0)
    else:
        face_px.div_(255.0).clamp_(0.0, 1.0)
    inside = None if mode == "official" else inside_source(face, size, tuple(image.shape[:2]))
    if inside is not None:  # a face cut by the source's border; the official recipe keeps its dark rim
        face_px, face_mask = _without_surround(levels, torch.from_numpy(inside).to(levels.device), face_px,
                                               face_mask, grid, is_u8)
    return face_mask, face_px


def _official_mask_warp(crop_mask: torch.Tensor, crop_to_roi: np.ndarray, roi: Roi) -> torch.Tensor:
    """The crop's mask in the face's box by the official call itself, cv2.warpAffine (bilinear, 0 outside).

    Where two faces' masks meet, the official code keeps the face whose mask is higher, and near the
    masks' plateaus the two differ only in their last float32 bits: only cv2's own arithmetic picks
    the same face there (grid_sample computes the coordinates differently)."""
    box_mask = cv2.warpAffine(crop_mask.cpu().numpy(), np.asarray(crop_to_roi, np.float64),
                              (roi.x1 - roi.x0, roi.y1 - roi.y0), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return torch.from_numpy(box_mask).to(crop_mask.device)


def _without_surround(levels: torch.Tensor, inside: torch.Tensor, face_px: torch.Tensor, face_mask: torch.Tensor,
                      grid: torch.Tensor, is_u8: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Along the border of a face cut by the image edge, interpolate from real crop pixels only.

    Crop pixels that straddle the image border were mixed with the black
    surround; a plain warp would carry that into a dark rim. There the face
    is re-interpolated bilinearly from the inside pixels alone (normalised
    weights) and its mask scaled by their share, so the image's last pixels
    keep some of their own value instead of an extrapolated one.
    """
    # The rim is wherever the bicubic footprint (one crop pixel wider than the bilinear one) saw the surround.
    core = -F.max_pool2d(-F.pad(inside[None, None], (1, 1, 1, 1), value=0.0), 3, stride=1)[0]  # erode, 0 border
    warped = sample(torch.cat([core, inside[None], levels * inside]), grid)
    rim, weight = warped[0] < 1.0 - 1e-6, warped[1]
    fixed = warped[2:] / weight.clamp_min(1e-6)
    fixed = fixed.round_().clamp_(0.0, 255.0) if is_u8 else fixed / 255.0
    return torch.where(rim, fixed, face_px), torch.where(rim, face_mask * weight.clamp(0.0, 1.0), face_mask)


def _blend(out_box: torch.Tensor, image_box: torch.Tensor, face_px: torch.Tensor, weight: torch.Tensor,
           write: torch.Tensor | None, keep_gray: bool, blend: str, face_size: float) -> None:
    """Write image*(1-weight) + face*weight (blend.mix) into `out_box` where `write` is set (None: wherever
    weight > 0, no earlier face being in the box), in float32.

    Blended from the input image, so a pixel that a later, higher face takes over is blended afresh.
    Worked on contiguous channel-first planes, so the (h,w) weight and write mask broadcast over them."""
    face = luma(face_px.permute(1, 2, 0)) if keep_gray else face_px
    base = _float_planes(image_box)
    if not image_box.dtype == torch.uint8 and not bool(torch.isfinite(base).all()):
        # NaN/Inf under a face would poison the blend; there they count as black/white. Pixels outside
        # every face are not touched, invalid or not, so here only the weighted ones are written.
        write = weight > 0 if write is None else write
        torch.nan_to_num_(base, nan=0.0, posinf=1.0, neginf=0.0)
    blended = mix(base, face, weight, blend, face_size)
    if image_box.dtype == torch.uint8:
        blended.round_().clamp_(0.0, 255.0)  # bands and grain can overshoot; uint8 would wrap
    elif blend != "feather" or face is not face_px:
        blended.clamp_(0.0, 1.0)
    rgb = out_box[..., :3].permute(2, 0, 1)
    if write is not None:
        torch.where(write, blended, _float_planes(out_box), out=blended)
    rgb.copy_(blended)


def _float_planes(box: torch.Tensor) -> torch.Tensor:
    """A new (3,h,w) contiguous float32 copy of an (h,w,3/4) box's colour (one pass, whatever its dtype)."""
    planes = torch.empty((3,) + tuple(box.shape[:2]), dtype=torch.float32, device=box.device)
    return planes.copy_(box[..., :3].permute(2, 0, 1))


def _check_args(image, faces, crops, crop_masks, mode, strength, originals, keep_gray, region_mask) -> None:
    check_image_tensor(image)
    if mode not in MASK_MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MASK_MODES)}")
    values = _per_face(strength, 1)
    if np.ndim(strength) != 0 and len(values) != len(faces):
        raise ValueError(f"got {len(values)} strengths for {len(faces)} faces; give one for all or one per face")
    if not all(0.0 <= float(s) <= 1.0 for s in values):
        raise ValueError(f"strength must be within [0, 1], got {strength}")
    if not isinstance(keep_gray, bool):
        raise ValueError(f"keep_gray must be True or False, got {keep_gray!r}; resolve 'auto'/'on'/'off' with "
                         "paste.pastes_gray first")
    n = len(faces)
    if not isinstance(crops, torch.Tensor) or crops.ndim != 4 or crops.shape[1] != 3 \
            or crops.shape[2] != crops.shape[3] or crops.dtype != torch.uint8:
        raise ValueError(f"crops must be an (N,3,S,S) uint8 tensor (as cut.cut_crops gives), got "
                         f"{getattr(crops, 'dtype', type(crops).__name__)} {tuple(getattr(crops, 'shape', ()))}")
    if crops.shape[0] != n:
        raise ValueError(f"got {n} faces but {crops.shape[0]} crops; they must pair up")
    size = crops.shape[-1]
    if not isinstance(crop_masks, torch.Tensor) or crop_masks.ndim != 3 \
            or crop_masks.shape[0] not in (1, n) or tuple(crop_masks.shape[1:]) != (size, size):
        raise ValueError(f"crop_masks must be ({n},{size},{size}) or (1,{size},{size}) like the crops "
                         f"(masks.paste_masks), got {tuple(getattr(crop_masks, 'shape', ()))}")
    if originals is not None and (not isinstance(originals, torch.Tensor) or originals.ndim != 4
                                  or originals.shape[:2] != (n, 3) or originals.shape[2] != originals.shape[3]
                                  or originals.dtype != torch.uint8):
        raise ValueError(f"originals must be ({n},3,S,S) uint8 like the crops as cut, "
                         f"got {tuple(getattr(originals, 'shape', ()))}")
    if region_mask is not None:
        if not isinstance(region_mask, torch.Tensor) or tuple(region_mask.shape) != tuple(image.shape[:2]):
            raise ValueError(f"region_mask must be an {image.shape[0]}x{image.shape[1]} tensor like the image, "
                             f"got {tuple(getattr(region_mask, 'shape', ()))}")
        if region_mask.is_floating_point() and not bool(torch.isfinite(region_mask).all()):
            raise ValueError("region_mask contains NaN or infinity; give weights in [0, 1]")
