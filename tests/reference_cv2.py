"""The numpy/cv2 cut and paste: the reference the torch ones (gpen_pipeline.cut, .paste) are checked
against.

It cuts and pastes with cv2 on uint8 crops, step by step as the official GPEN
demo does, independently of the torch code; only tests import it.

Per face: build a crop-space mask, warp crop and mask back with the inverse
similarity (black border; the face bilinear in "official" mode as GPEN does,
bicubic otherwise), keep the higher mask where faces overlap, then blend once
in float32. Only pixels under a non-zero mask are written.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

from gpen_pipeline import masks
from gpen_pipeline.align import aligned_record, invert_affine
from gpen_pipeline.color import check_crop, check_image, is_grayscale, luma
from gpen_pipeline.face import AlignedFace, Face
from gpen_pipeline.geometry import Roi, crop_to_target, face_box, inside_source, is_small_in_target
from gpen_pipeline.masks import MASK_MODES, skin_weight

_SMALL_FACE_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 16.0

# A parse source: one mask per face, or a function giving the mask of a restored crop.
ParseSource = Sequence[np.ndarray] | Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PasteResult:
    image: np.ndarray  # same shape and dtype as the input image
    mask: np.ndarray  # HxW float32 in [0,1]: the blend weight actually used


def _warp_without_surround(crop: np.ndarray, inside: np.ndarray, face_px: np.ndarray, face_mask: np.ndarray,
                           to_roi: np.ndarray, dsize: tuple[int, int], warp: dict) -> None:
    """Along the border of a face cut by the image edge, interpolate from real crop pixels only.

    Crop pixels that straddle the image border were mixed with the black
    surround; a plain warp would carry that into a dark rim. There the face
    is re-interpolated from the inside pixels alone (normalised weights)
    and its mask scaled by their share. Updates `face_px` and `face_mask` in place.
    """
    # The rim is wherever the bicubic footprint (one crop pixel wider than the bilinear one) saw the surround.
    core = cv2.erode(inside, np.ones((3, 3), np.uint8), borderValue=0)
    rim = cv2.warpAffine(core, to_roi, dsize, **warp) < 1.0 - 1e-6
    if not rim.any():
        return
    weight = cv2.warpAffine(inside, to_roi, dsize, **warp)
    num = cv2.warpAffine(crop.astype(np.float32) * inside[..., None], to_roi, dsize, **warp)
    fixed = num[rim] / np.maximum(weight[rim], 1e-6)[:, None]  # 0..255
    if face_px.dtype == np.uint8:
        face_px[rim] = np.clip(np.rint(fixed), 0, 255).astype(np.uint8)
    else:
        face_px[rim] = fixed / 255.0
    # Fade the paste out where part of the footprint was surround: the image's last pixels keep some of
    # their own value instead of an extrapolated one.
    face_mask[rim] *= np.clip(weight[rim], 0.0, 1.0)


def _crop_mask(mode: str, crop: np.ndarray, parse_masks: ParseSource | None, index: int,
               feather: float | None, grow: float) -> np.ndarray:
    if parse_masks is None:
        parse = None
    elif callable(parse_masks):
        parse = parse_masks
    else:
        parse = lambda _crop: parse_masks[index]  # noqa: E731
    return masks.paste_masks(mode, [crop], parse, feather, grow)[0]


def _check_args(image, aligned, restored, mask_mode, strength, keep_gray, region_mask, parse_masks,
                original_crops) -> None:
    check_image(image)
    if mask_mode not in MASK_MODES:
        raise ValueError(f"unknown mask_mode {mask_mode!r}; choose one of {MASK_MODES}")
    if len(aligned) != len(restored):
        raise ValueError(f"got {len(aligned)} aligned faces but {len(restored)} restored crops; they must pair up")
    if not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if keep_gray not in ("auto", True, False):
        raise ValueError(f"keep_gray must be 'auto', True or False, got {keep_gray!r}")
    if region_mask is not None and np.asarray(region_mask).shape[:2] != image.shape[:2]:
        raise ValueError(f"region_mask must be {image.shape[0]}x{image.shape[1]} like the image, "
                         f"got shape {np.asarray(region_mask).shape}")
    if parse_masks is not None and not callable(parse_masks) and len(parse_masks) != len(aligned):
        raise ValueError(f"parse_masks must hold one mask per face ({len(aligned)}), got {len(parse_masks)}")
    if original_crops is not None and len(original_crops) != len(aligned):
        raise ValueError(f"original_crops must hold one crop per face ({len(aligned)}), got {len(original_crops)}")
    if mask_mode == "parse" and parse_masks is None:
        raise ValueError("mask_mode 'parse' needs parse_masks (masks or a parser function); "
                         "load a face parser (gpen_pipeline.parsing.load_parser) or use mask_mode 'box'")


def paste_faces(image: np.ndarray, aligned: Sequence[AlignedFace], restored: Sequence[np.ndarray],
                mask_mode: str = "official", strength: float = 1.0, feather: float | None = None,
                grow: float = 0.0, color_match: bool = False, keep_gray: bool | str = "auto",
                region_mask: np.ndarray | None = None, parse_masks: ParseSource | None = None,
                original_crops: Sequence[np.ndarray] | None = None) -> PasteResult:
    """Blend restored crops (uint8 RGB, square, any size) back into `image` (HxWx3/4, uint8 or float32).

    mask_mode:
      "official": GPEN demo recipe (parse mask of the restored face, 26 px
        border, blur (101,101) sigma 4 twice; 3x3 smoothing of faces under
        100 px). Without `parse_masks` it falls back to the demo's blurred
        rectangle and warns.
      "parse": the parse masks (chosen regions) grown by `grow` and feathered
        by `feather`, in % of the crop size.
      "box": a feathered rectangle over the crop.
      Outside "official" mode a face cut by the image border is pasted
      without the crop's black surround (GPEN leaves a dark rim there).
    strength: 0..1. In "official" mode with `original_crops` it mixes the
      crops like the demo (addWeighted); otherwise it scales the mask.
      0 returns the image unchanged.
    color_match: give each restored face the low-frequency colour of the
      original crop. keep_gray: "auto" re-greys faces pasted into a
      black-and-white image. region_mask: HxW weights limiting where faces go.
    `image` may be a resized copy of the image the faces were aligned on.
    """
    _check_args(image, aligned, restored, mask_mode, strength, keep_gray, region_mask, parse_masks,
                original_crops)
    h, w = image.shape[:2]
    strength = float(strength)
    if len(aligned) == 0 or strength == 0.0:
        return PasteResult(image.copy(), np.zeros((h, w), np.float32))
    if mask_mode == "official" and parse_masks is None:
        warnings.warn("no face parser: pasting with GPEN's rectangle mask instead of a parse mask", stacklevel=2)

    crop_blend = mask_mode == "official" and original_crops is not None
    full_mask = np.zeros((h, w), np.float32)
    full_face = np.zeros((h, w, 3), np.float32)  # calloc'd: only the faces' boxes are ever touched
    boxes: list[Roi] = []
    for i, (face, crop) in enumerate(zip(aligned, restored)):
        job = _FaceJob(face=face, crop=check_crop(crop, f"restored crop {i}"), mode=mask_mode,
                       strength=strength if crop_blend else 1.0)
        rendered = _render_face(image, job, i, parse_masks, original_crops, color_match, feather, grow)
        if rendered is None:
            continue
        roi, face_mask, face_px = rendered
        sub_mask, sub_face = full_mask[roi.slices], full_face[roi.slices]
        higher = face_mask > sub_mask  # overlapping faces: the higher mask wins, as in the official code
        np.copyto(sub_mask, face_mask, where=higher)
        np.copyto(sub_face, face_px, where=higher[..., None])
        boxes.append(roi)

    if not boxes:
        return PasteResult(image.copy(), full_mask)
    if not crop_blend:
        full_mask *= strength
    if region_mask is not None:
        full_mask *= masks.unit_mask(region_mask, "region_mask")
    return PasteResult(_composite(image, full_face, full_mask, boxes, keep_gray), full_mask)


@dataclass(frozen=True)
class _FaceJob:
    face: AlignedFace
    crop: np.ndarray  # uint8 RGB PxP
    mode: str
    strength: float  # crop-space mix with the original (official recipe); 1.0 = none


def _reference_crop(image, inverse, size, index, original_crops) -> np.ndarray:
    if original_crops is None:
        return warp_crop(image, invert_affine(inverse), size)
    reference = check_crop(original_crops[index], f"original crop {index}")
    if reference.shape[0] != size:
        reference = cv2.resize(reference, (size, size), interpolation=cv2.INTER_LINEAR)
    return reference


def _render_face(image, job: _FaceJob, index, parse_masks, original_crops, color_match, feather, grow):
    """One face warped into its box of the target: (roi, mask, pixels), or None when it misses the image."""
    h, w = image.shape[:2]
    face, crop, size = job.face, job.crop, job.crop.shape[0]
    placed = face_box(face, size, (h, w))
    if placed is None:
        return None
    roi, to_roi = placed
    reference = None
    if color_match or job.strength < 1.0:
        reference = _reference_crop(image, crop_to_target(face, size, (h, w)), size, index, original_crops)
    inside = inside_source(face, size, (h, w))
    crop_mask = _crop_mask(job.mode, crop, parse_masks, index, feather, grow)
    if color_match:  # judged on the skin, and only on pixels from inside the image
        skin = 0.1 + 0.9 * skin_weight(face, size)
        crop = match_color(crop, reference, weight=skin if inside is None else skin * inside)
    if job.mode == "official" and is_small_in_target(face, (h, w)):
        crop = cv2.filter2D(crop, -1, _SMALL_FACE_KERNEL)
    if job.strength < 1.0:
        crop = cv2.addWeighted(crop, job.strength, reference, 1.0 - job.strength, 0)

    dsize = (roi.x1 - roi.x0, roi.y1 - roi.y0)
    warp = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    face_mask = cv2.warpAffine(crop_mask, to_roi, dsize, **warp)
    np.clip(face_mask, 0.0, 1.0, out=face_mask)  # blurs and interpolation can overshoot 1 by a rounding
    # The official recipe warps the face bilinearly; the other modes use bicubic, which undoes the
    # bilinear crop far better (identity round trip at 512: ~42.5 dB -> ~47 dB).
    face_warp = dict(warp, flags=cv2.INTER_LINEAR if job.mode == "official" else cv2.INTER_CUBIC)
    # uint8 targets warp the uint8 crop (rounded, as the official code); float targets stay in float.
    is_u8 = image.dtype == np.uint8
    face_px = cv2.warpAffine(crop if is_u8 else crop.astype(np.float32) / 255.0, to_roi, dsize, **face_warp)
    if not is_u8:
        np.clip(face_px, 0.0, 1.0, out=face_px)  # bicubic overshoot
    if inside is not None and job.mode != "official":  # the official recipe keeps its dark rim
        _warp_without_surround(crop, inside, face_px, face_mask, to_roi, dsize, warp)
    return roi, face_mask, face_px


def pastes_gray(keep_gray: bool | str, target: np.ndarray) -> bool:
    """Whether faces pasted into `target` are re-greyed: asked for, or "auto" on a black-and-white image."""
    return keep_gray is True or (keep_gray == "auto" and is_grayscale(target))


def _composite(image: np.ndarray, full_face: np.ndarray, full_mask: np.ndarray, boxes: Sequence[Roi],
               keep_gray: bool | str) -> np.ndarray:
    """Blend only the pixels under a non-zero mask; every other pixel is copied bit for bit.

    Box by box, each pixel once (a pixel in two overlapping boxes is blended in the first): the
    arithmetic runs on whole boxes, which numpy does much faster than on gathered pixels.
    """
    out = image.copy()
    gray = pastes_gray(keep_gray, image)
    blended_already = np.zeros(full_mask.shape, bool) if len(boxes) > 1 else None
    for roi in boxes:
        mask = full_mask[roi.slices]
        under = mask > 0
        if blended_already is not None:
            seen = blended_already[roi.slices]
            under &= ~seen
            seen |= under
        if not under.any():
            continue
        face = full_face[roi.slices]
        if gray:
            face = gray_rgb(face)
        sub_out = out[roi.slices]
        base = sub_out[..., :3].astype(np.float32)
        if image.dtype != np.uint8:
            # NaN/Inf under a face would poison the blend; there they count as black/white. Pixels
            # outside every face are not touched, invalid or not.
            np.nan_to_num(base, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        m = mask[..., None]
        blended = base * (1.0 - m) + face * m
        if image.dtype == np.uint8:
            blended = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        np.copyto(sub_out[..., :3], blended, where=under[..., None])
    return out


def gray_rgb(rgb: np.ndarray) -> np.ndarray:
    """Replace colour by its luma in all three channels (float32, same scale as the input)."""
    return np.repeat(luma(rgb)[..., None], 3, axis=-1)


def match_color(restored: np.ndarray, reference: np.ndarray, weight: np.ndarray | None = None,
                sigma_fraction: float = 1 / 16) -> np.ndarray:
    """Give `restored` the low-frequency colour of `reference` (both uint8 SxSx3 RGB).

    Per channel, the restored face keeps its detail (its own high frequencies)
    and takes the reference's blurred colour: out = R + blur(O) - blur(R).
    `weight` (SxS, [0,1]) says which reference pixels are real (a crop cut by
    the image border is black outside it); the blurs are normalised by it so
    the black does not leak in.
    """
    restored = check_crop(restored, "restored")
    reference = check_crop(reference, "reference")
    if reference.shape != restored.shape:
        reference = cv2.resize(reference, restored.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    size = restored.shape[0]
    w = np.ones(restored.shape[:2], np.float32) if weight is None else np.asarray(weight, np.float32)
    if w.shape != restored.shape[:2]:
        w = cv2.resize(w, restored.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    sigma = max(size * sigma_fraction, 1.0)

    def low_pass(img: np.ndarray) -> np.ndarray:
        num = cv2.GaussianBlur(img.astype(np.float32) * w[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(w, (0, 0), sigma)[..., None]
        return num / np.maximum(den, 1e-6)

    out = restored.astype(np.float32) + (low_pass(reference) - low_pass(restored))
    # Where no weighted pixel is near, the face takes their mean shift.
    den = cv2.GaussianBlur(w, (0, 0), sigma)[..., None]
    trust = np.clip(den * 4.0, 0.0, 1.0)
    overall = ((reference.astype(np.float32) - restored) * w[..., None]).sum((0, 1)) / max(w.sum(), 1e-6)
    out = (restored.astype(np.float32) + overall) * (1.0 - trust) + out * trust
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def warp_crop(image: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """Cut the SxS uint8 RGB crop that `affine` (image -> crop) defines.

    Bilinear with a black constant border, like the official crop. A float32
    image is warped in float and rounded once at the end.
    """
    # RGBA is warped with its alpha and the alpha dropped from the small crop: cutting the RGB out
    # of the image first would copy the whole image for every face. Channels are interpolated
    # independently, so the RGB of the crop is the same either way.
    source = np.ascontiguousarray(image)
    crop = cv2.warpAffine(source, np.asarray(affine, np.float64), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0,) * source.shape[2])
    crop = np.ascontiguousarray(crop[..., :3])
    if crop.dtype != np.uint8:
        # NaN/Inf from a broken upstream node must not reach the network: black/white instead.
        crop = np.nan_to_num(crop, nan=0.0, posinf=1.0, neginf=0.0)
        crop = np.clip(np.rint(crop * 255.0), 0, 255).astype(np.uint8)
    return crop


def align_face(image: np.ndarray, face: Face, size: int,
               template: str | np.ndarray = "gpen") -> tuple[AlignedFace, np.ndarray]:
    """Align one face: its record (gpen_pipeline's own) and its SxS uint8 RGB crop cut by warp_crop."""
    check_image(image)
    aligned = aligned_record(face, size, image.shape[:2], template)
    return aligned, warp_crop(image, aligned.affine, size)
