"""The whole job on whole images: detect, select, align, restore, paste back.

Faces of all the images given go through the network together, in batches, so a
run of video frames keeps the network busy; every image comes back with its
paste mask and the faces that were restored. An image without faces comes back
as the very same array.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from . import on_device
from .align import DegenerateLandmarks, aligned_record, warp_crop
from .color import check_image, count_nonfinite
from .detection import Detector, detect_faces
from .face import AlignedFace
from .parsing import PARSE_REGIONS, FaceParser, parse_mask_fn
from .paste import MASK_MODES, crop_space_mask, paste_faces, pastes_gray
from .restore import TASKS, restore_crops
from .selection import select_faces

# How many crops are held and restored at once: bounds memory on long frame batches.
CHUNK_FACES = 16
# Where crops are cut and pasted: "auto" on the model's device when that is not the CPU (on_device.py),
# "always" there even on the CPU, "never" with numpy/cv2 on the host.
ON_DEVICE = ("auto", "always", "never")


@dataclass(frozen=True)
class EnhanceOptions:
    task: str = "restore"  # "restore", "colorize" or "inpaint"
    threshold: float = 0.5
    order: str = "left-right"
    indices: str = ""
    min_size: float = 0.0
    max_count: int = 0
    template: str = "gpen"
    mask_mode: str = "official"
    strength: float = 1.0
    feather: float | None = None
    grow: float = 0.0
    color_match: bool = False
    keep_gray: bool | str = "auto"
    regions: tuple[str, ...] = PARSE_REGIONS
    batch_size: int | None = None
    on_device: str = "auto"  # see ON_DEVICE; options the device path does not cover use numpy anyway

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"unknown mask mode {self.mask_mode!r}; choose one of {', '.join(MASK_MODES)}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be within [0, 1], got {self.strength}")
        if self.on_device not in ON_DEVICE:
            raise ValueError(f"unknown on_device {self.on_device!r}; choose one of {', '.join(ON_DEVICE)}")


@dataclass(frozen=True)
class EnhanceResult:
    image: np.ndarray
    mask: np.ndarray  # HxW float32, the paste weight used
    faces: tuple[AlignedFace, ...] = ()
    crops: tuple[np.ndarray, ...] = field(default=(), repr=False)  # restored, uint8 RGB
    notes: tuple[str, ...] = ()


def find_faces(image: np.ndarray, detector: Detector, options: EnhanceOptions) -> list:
    faces = detect_faces(detector, image, options.threshold)
    return select_faces(faces, order=options.order, indices=options.indices or None,
                        min_size=options.min_size, max_count=options.max_count)


def _crop_damage(mask: np.ndarray, aligned: AlignedFace) -> np.ndarray:
    """An image-space damage mask seen through the face's crop."""
    mask = np.asarray(mask, np.float32)
    return cv2.warpAffine(mask, aligned.affine, (aligned.size, aligned.size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def enhance_images(images: Sequence[np.ndarray], model, detector: Detector, options: EnhanceOptions = EnhanceOptions(),
                   parser: FaceParser | None = None, inpaint_masks: Sequence[np.ndarray] | None = None,
                   targets: Sequence[np.ndarray] | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   check_interrupt: Callable[[], None] | None = None) -> list[EnhanceResult]:
    """Restore every selected face of every image.

    images: HxWx3/4 RGB, uint8 or float32 [0,1]. targets: optional images to paste
    onto instead (e.g. upscaled copies), one per image. inpaint_masks: HxW damage
    masks, one per image (task "inpaint"). progress(done, total) is called as
    faces are restored; check_interrupt() between chunks may raise to stop.
    """
    _check_inputs(images, targets)
    if targets is not None and len(targets) != len(images):
        raise ValueError(f"{len(targets)} target images for {len(images)} images")
    if options.task == "inpaint" and (inpaint_masks is None or len(inpaint_masks) != len(images)):
        raise ValueError("task 'inpaint' needs one damage mask per image")
    parse = parse_mask_fn(parser, options.regions) if parser is not None else None
    if options.mask_mode == "parse" and parse is None:
        raise ValueError("mask mode 'parse' needs a face parser (parsing_parsenet.pth or parsing_bisenet.pth)")

    found: list[list[AlignedFace]] = []
    notes: list[list[str]] = []
    for image in images:
        if check_interrupt is not None:
            check_interrupt()
        aligned, image_notes = [], []
        invalid = count_nonfinite(image)
        if invalid:
            image_notes.append(f"{invalid} NaN/infinite values: treated as black/white inside the faces, "
                               "left as they are elsewhere")
        for face in find_faces(image, detector, options):
            try:
                aligned.append(aligned_record(face, _network_size(model), image.shape[:2], options.template))
            except DegenerateLandmarks as exc:
                image_notes.append(f"skipped a face at {[round(v) for v in face.box]}: {exc}")
        found.append(aligned)
        if options.mask_mode == "official" and parse is None and aligned:
            image_notes.append("no face parser found: pasted with GPEN's rectangle mask")
        notes.append(image_notes)

    job = _Job(images, targets, found, model, options, parse, progress, check_interrupt)
    device = _pixel_device(model, options)
    pasted = _restore_on_device(job, device) if device is not None else _restore_with_numpy(job, inpaint_masks)
    return [EnhanceResult(image, mask, tuple(aligned), tuple(crops), tuple(image_notes))
            for (image, mask, crops), aligned, image_notes in zip(pasted, found, notes)]


@dataclass(frozen=True)
class _Job:
    """What both restore-and-paste paths share."""
    images: Sequence[np.ndarray]
    targets: Sequence[np.ndarray] | None
    found: list[list[AlignedFace]]
    model: object
    options: EnhanceOptions
    parse: Callable[[np.ndarray], np.ndarray] | None
    progress: Callable[[int, int], None] | None
    check_interrupt: Callable[[], None] | None

    def target(self, index: int) -> np.ndarray:
        return self.images[index] if self.targets is None else self.targets[index]

    def interrupt(self) -> None:
        if self.check_interrupt is not None:
            self.check_interrupt()

    def unchanged(self, index: int) -> tuple[np.ndarray, np.ndarray, list]:
        """An image without faces: the very same target array and an empty mask."""
        target = self.target(index)
        return target, np.zeros(target.shape[:2], np.float32), []


# Per image: (image, paste mask, restored crops).
_Pasted = tuple[np.ndarray, np.ndarray, list]


def _pixel_device(model, options: EnhanceOptions) -> torch.device | None:
    """Where crops are cut and pasted: the model's device (on_device.py), or None for the numpy path.

    The device path covers task "restore" in every mask mode (masks come from
    paste.py's own functions on the downloaded restored crops), strength (the
    official crop blend included), small-face smoothing, keep_gray and targets
    of any size. Colour work stays on the numpy path: color_match and the
    colorize luma swap are cv2 blurs and YUV conversions, and inpainting needs
    its damage masks warped and painted into the crops.
    """
    covered = (options.task == "restore" and not options.color_match
               and options.keep_gray in ("auto", True, False))  # other values: let paste_faces refuse them
    if options.on_device == "never" or not covered:
        return None
    device = on_device.model_device(model)
    if options.on_device == "auto" and device.type == "cpu":
        return None
    return device


def _restore_with_numpy(job: _Job, inpaint_masks: Sequence[np.ndarray] | None) -> list[_Pasted]:
    """Crops cut and pasted with cv2 on the host; any task and option."""
    options = job.options
    crops: list[np.ndarray] = []
    damage: list[np.ndarray] = []
    for index, image in enumerate(job.images):
        for record in job.found[index]:
            crops.append(warp_crop(image, record.affine, record.size))
            if options.task == "inpaint":
                damage.append(_crop_damage(inpaint_masks[index], record))

    restored: list[np.ndarray] = []
    for start in range(0, len(crops), CHUNK_FACES):
        job.interrupt()
        chunk = slice(start, start + CHUNK_FACES)
        restored += restore_crops(job.model, crops[chunk], options.task,
                                  inpaint_masks=damage[chunk] if damage else None, batch_size=options.batch_size)
        if job.progress is not None:
            job.progress(len(restored), len(crops))
    if len(crops) > CHUNK_FACES:
        # A long batch is about to allocate its results: the network's CPU workspace (333 MB at 512 px)
        # goes first. Rebuilding it on the next call costs well under 1% of this many faces.
        getattr(job.model, "release_workspace", lambda: None)()

    results, cursor = [], 0
    for index, aligned in enumerate(job.found):
        job.interrupt()
        if not aligned:
            results.append(job.unchanged(index))
            continue
        mine = restored[cursor:cursor + len(aligned)]
        originals = crops[cursor:cursor + len(aligned)]
        cursor += len(aligned)
        with warnings.catch_warnings():
            # Without a parser the official mode uses GPEN's rectangle mask; the notes say so.
            warnings.simplefilter("ignore")
            pasted = paste_faces(
                job.target(index), aligned, mine, mask_mode=options.mask_mode, strength=options.strength,
                feather=options.feather, grow=options.grow, color_match=options.color_match,
                keep_gray=False if options.task == "colorize" else options.keep_gray,
                parse_masks=job.parse, original_crops=originals,
            )
        results.append((pasted.image, pasted.mask, mine))
    return results


def _face_groups(found: Sequence[Sequence[AlignedFace]], limit: int):
    """Indices of consecutive images with faces, grouped until they hold `limit` faces (the last: the rest)."""
    group, faces = [], 0
    for index, aligned in enumerate(found):
        if not aligned:
            continue
        group.append(index)
        faces += len(aligned)
        if faces >= limit:
            yield group
            group, faces = [], 0
    if group:
        yield group


def _restore_on_device(job: _Job, device: torch.device) -> list[_Pasted]:
    """Images go up once, crops are cut, restored and pasted there, and each image comes down once.

    Images are taken a group at a time, about CHUNK_FACES faces, so only that
    many images and crops are held on the device."""
    options = job.options
    total = sum(len(a) for a in job.found)
    results: list[_Pasted | None] = [None] * len(job.images)
    done = 0
    with torch.inference_mode():
        for group in _face_groups(job.found, CHUNK_FACES):
            job.interrupt()
            uploaded = {i: on_device.to_device(job.images[i], device) for i in group}
            cut = torch.cat([on_device.warp_crops(uploaded[i], [r.affine for r in job.found[i]],
                                                  job.found[i][0].size) for i in group])
            restored = []
            for start in range(0, len(cut), CHUNK_FACES):
                if start:
                    job.interrupt()
                restored.append(on_device.restore_on_device(job.model, cut[start:start + CHUNK_FACES],
                                                            options.batch_size))
                done += restored[-1].shape[0]
                if job.progress is not None:
                    job.progress(done, total)
            restored = torch.cat(restored)
            # One download of the group's restored crops: the results carry them, and parse masks need them.
            restored_u8 = list((restored * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
            cursor = 0
            for index in group:
                job.interrupt()
                aligned = job.found[index]
                mine = slice(cursor, cursor + len(aligned))
                cursor += len(aligned)
                target = job.target(index)
                image = uploaded.pop(index) if job.targets is None else on_device.to_device(target, device)
                keep_gray = pastes_gray(options.keep_gray, target)
                crop_masks = on_device.to_device(_crop_masks(restored_u8[mine], options, job.parse), device)
                crop_masks = crop_masks.expand(len(aligned), -1, -1)
                image, mask = on_device.paste_crops(image, aligned, restored[mine], crop_masks, options.strength,
                                                    options.mask_mode, originals=cut[mine], keep_gray=keep_gray)
                results[index] = (image.cpu().numpy(), mask.cpu().numpy(), restored_u8[mine])
    return [job.unchanged(index) if result is None else result for index, result in enumerate(results)]


def _crop_masks(crops: Sequence[np.ndarray], options: EnhanceOptions, parse) -> np.ndarray:
    """(N,S,S) crop-space paste masks from paste.py's own mask functions; (1,S,S) when one serves every face."""
    mode, feather, grow = options.mask_mode, options.feather, options.grow
    if parse is None:
        return crop_space_mask(mode, crops[0], None, feather, grow)[None]
    return np.stack([crop_space_mask(mode, crop, parse(crop), feather, grow) for crop in crops])


def enhance_image(image: np.ndarray, model, detector: Detector, options: EnhanceOptions = EnhanceOptions(),
                  **kwargs) -> EnhanceResult:
    """`enhance_images` for one image; keyword arguments take single items (inpaint_mask, target)."""
    mask = kwargs.pop("inpaint_mask", None)
    target = kwargs.pop("target", None)
    return enhance_images([image], model, detector, options,
                          inpaint_masks=None if mask is None else [mask],
                          targets=None if target is None else [target], **kwargs)[0]


def _check_inputs(images, targets) -> None:
    """Every image checked before any work, so a bad one fails at once and by its position."""
    if isinstance(images, np.ndarray) and images.ndim < 4:
        raise ValueError(f"enhance_images takes a list (or NxHxWxC array) of images, got one array of shape "
                         f"{images.shape}; use enhance_image for a single image")
    for index, image in enumerate(images):
        check_image(image, f"image {index}")
    for index, target in enumerate(targets or ()):
        check_image(target, f"target image {index}")


def _network_size(model) -> int:
    size = getattr(model, "size", None)
    if not isinstance(size, int):
        raise TypeError("the model must have an integer .size (load it with gpen_arch.load_model)")
    return size
