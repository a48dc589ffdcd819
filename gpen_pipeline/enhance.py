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

from .align import DegenerateLandmarks, align_face
from .color import check_image, count_nonfinite
from .detection import Detector, detect_faces
from .face import AlignedFace
from .parsing import PARSE_REGIONS, FaceParser, parse_mask_fn
from .paste import MASK_MODES, paste_faces
from .restore import TASKS, restore_crops
from .selection import select_faces

# How many crops are held and restored at once: bounds memory on long frame batches.
CHUNK_FACES = 16


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

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"unknown mask mode {self.mask_mode!r}; choose one of {', '.join(MASK_MODES)}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be within [0, 1], got {self.strength}")


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
    crops: list[np.ndarray] = []
    damage: list[np.ndarray] = []
    notes: list[list[str]] = []
    for index, image in enumerate(images):
        if check_interrupt is not None:
            check_interrupt()
        aligned, image_notes = [], []
        invalid = count_nonfinite(image)
        if invalid:
            image_notes.append(f"{invalid} NaN/infinite values: treated as black/white inside the faces, "
                               "left as they are elsewhere")
        for face in find_faces(image, detector, options):
            try:
                record, crop = align_face(image, face, _network_size(model), options.template)
            except DegenerateLandmarks as exc:
                image_notes.append(f"skipped a face at {[round(v) for v in face.box]}: {exc}")
                continue
            aligned.append(record)
            crops.append(crop)
            if options.task == "inpaint":
                damage.append(_crop_damage(inpaint_masks[index], record))
        found.append(aligned)
        notes.append(image_notes)

    restored: list[np.ndarray] = []
    for start in range(0, len(crops), CHUNK_FACES):
        if check_interrupt is not None:
            check_interrupt()
        chunk = slice(start, start + CHUNK_FACES)
        restored += restore_crops(model, crops[chunk], options.task,
                                  inpaint_masks=damage[chunk] if damage else None, batch_size=options.batch_size)
        if progress is not None:
            progress(len(restored), len(crops))

    results, cursor = [], 0
    for index, image in enumerate(images):
        if check_interrupt is not None:
            check_interrupt()
        aligned = found[index]
        target = image if targets is None else targets[index]
        if not aligned:
            results.append(EnhanceResult(target, np.zeros(target.shape[:2], np.float32), notes=tuple(notes[index])))
            continue
        mine = restored[cursor:cursor + len(aligned)]
        originals = crops[cursor:cursor + len(aligned)]
        cursor += len(aligned)
        with warnings.catch_warnings():
            # Without a parser the official mode uses GPEN's rectangle mask; said once below.
            warnings.simplefilter("ignore")
            pasted = paste_faces(
                target, aligned, mine, mask_mode=options.mask_mode, strength=options.strength,
                feather=options.feather, grow=options.grow, color_match=options.color_match,
                keep_gray=False if options.task == "colorize" else options.keep_gray,
                parse_masks=parse, original_crops=originals,
            )
        image_notes = list(notes[index])
        if options.mask_mode == "official" and parse is None:
            image_notes.append("no face parser found: pasted with GPEN's rectangle mask")
        results.append(EnhanceResult(pasted.image, pasted.mask, tuple(aligned), tuple(mine), tuple(image_notes)))
    return results


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
