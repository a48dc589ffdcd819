"""The whole chain on whole images: find, align, restore, paste back (the stages of stages.py).

The faces of all the images are restored first, FACES_HELD at a time, and only
their crops are held; then each image is pasted, on the model's device, and
comes back. Every image comes back with its paste mask and the faces restored;
an image without faces comes back as the very same array.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from gpen_arch import GPENModel

from .color import check_image
from .detection import Detector
from .face import AlignedFace, Face, PastedFace, RestoredFace
from .guarded_paste import paste_guarded
from .identity import IdentityCheck, matching_faces
from .options import FACES_HELD, EnhanceOptions
from .parsing import FaceParser
from .stages import Image, align_faces, find_faces, restore_faces
from .track_memory import TrackMemory


@dataclass(frozen=True)
class EnhanceResult:
    image: Image  # the target's shape, dtype and kind (a numpy array, or a tensor on the target's device)
    mask: Image  # HxW float32, the paste weight used
    restored: tuple[RestoredFace, ...] = ()
    notes: tuple[str, ...] = ()
    pasted: tuple[PastedFace, ...] = ()  # per restored face: the strength used (and why lowered), the identity kept

    @property
    def faces(self) -> tuple[AlignedFace, ...]:
        return tuple(face.aligned for face in self.restored)

    @property
    def crops(self) -> tuple[np.ndarray, ...]:
        """The restored crops, uint8 RGB."""
        return tuple(face.restored_u8() for face in self.restored)


def enhance_images(images: Sequence[Image], model: GPENModel, detector: Detector | None,
                   options: EnhanceOptions = EnhanceOptions(), parser: FaceParser | None = None,
                   inpaint_masks: Sequence[Image] | None = None, targets: Sequence[Image] | None = None,
                   region_masks: Sequence[Image | None] | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   check_interrupt: Callable[[], None] | None = None,
                   faces: Sequence[Sequence[Face]] | None = None,
                   identity: IdentityCheck | None = None,
                   memory: TrackMemory | None = None) -> list[EnhanceResult]:
    """Restore every selected face of every image.

    images: HxWx3/4 RGB, uint8 or float32 [0,1], numpy arrays or tensors (the
    results are of the same kind). targets: optional images to paste onto
    instead (e.g. upscaled copies), one per image. inpaint_masks: HxW damage
    masks, one per image (task "inpaint"). region_masks: HxW weights limiting
    where faces are pasted, one (or None) per image. progress(done, total) counts
    steps (each image's detection, each face restored, each image pasted);
    check_interrupt() before each image and each chunk of faces may raise to stop.
    faces: per image, the faces to restore (already selected, in its pixels: a file's regions,
    a clip's tracked faces from stages.find_clip_faces) instead of detecting and selecting
    them; `detector` is then not used.
    identity: scores each pasted face, guards the scores and restores only faces like its references
    (identity.py); without it the faces are pasted at the strength asked and unscored.
    memory: the images are frames of a clip, in order, with tracked faces: each track's paste mask is
    steadied from frame to frame (track_memory.py; one memory for all of a clip's calls).
    """
    _check_inputs(images, targets)
    if region_masks is not None and len(region_masks) != len(images):
        raise ValueError(f"{len(region_masks)} region masks for {len(images)} images")
    if options.task == "inpaint" and (inpaint_masks is None or len(inpaint_masks) != len(images)):
        raise ValueError("task 'inpaint' needs one damage mask per image")
    if faces is not None and len(faces) != len(images):
        raise ValueError(f"{len(faces)} face lists for {len(images)} images")
    if faces is None and detector is None:
        raise ValueError("enhance_images needs a face detector, or the faces of every image")
    if options.paste.mask_mode == "parse" and parser is None:
        raise ValueError("mask mode 'parse' needs a face parser (parsing_parsenet.pth or parsing_bisenet.pth)")

    # Progress counts steps: each image's detection (instant when its faces are given), each face
    # restored, each image pasted.
    total, done = 2 * len(images), 0

    def advance(steps: int) -> None:
        nonlocal done
        done += steps
        if progress is not None:
            progress(done, total)

    found: list[list[AlignedFace]] = []
    notes: list[list[str]] = []
    for index, image in enumerate(images):
        if check_interrupt is not None:
            check_interrupt()
        # Faces given are already selected (by reference too: file_restore.py selects on the whole image).
        chosen = (matching_faces(identity, image, find_faces(image, detector, options.select).selected)
                  if faces is None else faces[index])
        aligned, image_notes = align_faces(image, chosen, model.size, options.template)
        if options.paste.mask_mode == "official" and parser is None and aligned:
            image_notes.append("no face parser found: pasted with GPEN's rectangle mask")
        found.append(aligned)
        notes.append(image_notes)
        total += len(aligned)
        advance(1)

    restored = restore_faces(model, images, found, options.task, inpaint_masks, options.batch_size, advance,
                             check_interrupt, options.colorize)
    if sum(map(len, found)) > FACES_HELD:
        # A long batch is about to allocate its results: the network's CPU workspace (333 MB at 512 px)
        # goes first. Rebuilding it on the next call costs well under 1 % of this many faces.
        model.release_workspace()
    results = []
    for index, image_faces in enumerate(restored):
        if check_interrupt is not None:
            check_interrupt()
        target = images[index] if targets is None else targets[index]
        if image_faces:
            pasted, how = paste_guarded(target, image_faces, options.paste, parser,
                                        None if region_masks is None else region_masks[index], identity, memory)
            image, mask = _like(pasted.image, target), _like(pasted.mask, target)
        else:  # no face: the very same target and an empty mask
            image, mask, how = target, _like(torch.zeros(target.shape[:2], dtype=torch.float32), target), ()
        results.append(EnhanceResult(image, mask, tuple(image_faces), tuple(notes[index]), how))
        if memory is not None:
            memory.next_frame()
        advance(1)
    return results


def _like(result: torch.Tensor, target: Image) -> Image:
    """A stage's tensor result as the kind of image the caller gave."""
    if isinstance(target, torch.Tensor):
        return result.to(target.device)
    return result.cpu().numpy()


def enhance_image(image: Image, model: GPENModel, detector: Detector, options: EnhanceOptions = EnhanceOptions(),
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
    if targets is not None and len(targets) != len(images):
        raise ValueError(f"{len(targets)} target images for {len(images)} images")
    for index, image in enumerate(images):
        check_image(image, f"image {index}")
    for index, target in enumerate(targets or ()):
        check_image(target, f"target image {index}")
