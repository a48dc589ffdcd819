"""Restoring image files: the faces of a file's own pixels, one face region at a time.

A file's pixels (image_files.read_pixels: uint8 or uint16, grey, BGR or BGRA) are never made
float as a whole. Faces are found and selected on a uint8 RGB copy of the whole image; then the
faces whose crops overlap are taken together, the box of the image their crops touch
(geometry.footprint) is cut out as the pipeline's RGB, restored by enhance_images with those
faces, and written back where the paste mask is non-zero. A crop and its paste see the pixels
they would see in the whole image (the box holds all they touch and ends where the image ends),
so the result is the whole-image one, while the memory beyond the file's pixels is that of the
face regions.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from gpen_arch import GPENModel

from .align import DegenerateLandmarks, aligned_record
from .color import is_grayscale
from .detection import Detector
from .enhance import enhance_images
from .face import Face, PastedFace
from .geometry import Roi, footprint
from .identity import IdentityCheck, matching_faces
from .image_files import (Changed, Warn, as_colour, copy_file, detection_view, put_back, read_mask, read_pixels,
                          rgb_region)
from .options import FACES_HELD, EnhanceOptions
from .parsing import FaceParser
from .photo_files import write_restored
from .stages import find_faces

# Regions restored by one enhance_images call: their faces share the network's batches, and their
# copies stay small (2^23 pixels are 96 MB as float32 RGB).
REGION_PIXELS = 1 << 23


@dataclass(frozen=True)
class PixelsResult:
    pixels: np.ndarray  # the pixels given, changed in place; a colour copy when coloured faces went into grey
    faces: int  # faces restored
    notes: tuple[str, ...] = ()
    pasted: tuple[PastedFace, ...] = ()  # in the pixels of the whole image
    changed: tuple[Changed, ...] = ()  # every pixel written, by face region; none elsewhere


def enhance_pixels(pixels: np.ndarray, model: GPENModel, detector: Detector,
                   options: EnhanceOptions = EnhanceOptions(), parser: FaceParser | None = None,
                   damage: np.ndarray | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   identity: IdentityCheck | None = None) -> PixelsResult:
    """Restore the selected faces of a file's pixels in place. damage: HxW float32 in [0, 1], the
    damaged areas (task "inpaint"); progress(done, total) as enhance_images tells it, per group of faces;
    identity: as enhance_images takes it (references select on the whole image)."""
    hw = tuple(pixels.shape[:2])
    view = detection_view(pixels)
    selected = matching_faces(identity, view, find_faces(view, detector, options.select).selected)
    gray = options.paste.keep_gray
    if gray == "auto" and selected:
        gray = "on" if is_grayscale(view) else "off"  # judged on the whole image, as for a whole image
    del view
    if not selected:
        return PixelsResult(pixels, 0)
    if pixels.ndim == 2 and (gray == "off" or options.task == "colorize"):
        pixels = as_colour(pixels)
    options = replace(options, paste=replace(options.paste, keep_gray=gray))
    restored, notes, pasted, changed = 0, [], [], []
    for batch in _batches(_groups(selected, model.size, hw, options.template)):
        results = enhance_images(
            [rgb_region(pixels[roi.slices]) for roi, _ in batch], model, None, options, parser=parser,
            inpaint_masks=None if damage is None else [damage[roi.slices] for roi, _ in batch],
            faces=[[face.moved(roi.x0, roi.y0) for face in faces] for roi, faces in batch], progress=progress,
            identity=identity)
        for (roi, _), result in zip(batch, results):
            where = result.mask > 0
            put_back(pixels[roi.slices], result.image, where)
            if where.any():
                changed.append(Changed(roi, where))
            restored += len(result.faces)
            notes += [note for note in result.notes if note not in notes]
            # A region holds every pixel its faces' crops touch, so each score is the whole image's.
            pasted += [replace(face, face=face.face.moved(-roi.x0, -roi.y0)) for face in result.pasted]
    return PixelsResult(pixels, restored, tuple(notes), tuple(pasted), tuple(changed))


@dataclass(frozen=True)
class FileResult:
    faces: int
    notes: tuple[str, ...] = ()
    copied: bool = False  # no face: the output is the input file byte for byte
    pasted: tuple[PastedFace, ...] = ()  # how each face went in (strength, identity), in the file's pixels


def restore_file(source: Path, target: Path, model: GPENModel, detector: Detector,
                 options: EnhanceOptions = EnhanceOptions(), parser: FaceParser | None = None,
                 damage: Path | None = None, warn: Warn | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 identity: IdentityCheck | None = None) -> FileResult:
    """Restore the faces of image file `source` into `target`, which is replaced only once complete.

    What the source holds besides its pixels is kept where the target format holds it
    (photo_files): a JPEG written as a JPEG is the source's blocks with the faces' blocks replaced,
    stored as the source is, its EXIF orientation kept; other targets are written upright with
    orientation 1, like ComfyUI's LoadImage and SaveImage. A file in which nothing is restored is
    copied byte for byte when the format is kept. Of a file of several frames or pages the first
    is restored and written, and `warn` says so."""
    decoded = read_pixels(source, warn)
    mask = None if damage is None else read_mask(damage, decoded.pixels.shape[:2], warn)
    result = enhance_pixels(decoded.pixels, model, detector, options, parser, mask, progress, identity)
    if not result.faces and source.suffix.lower() == target.suffix.lower():
        copy_file(source, target)
        return FileResult(0, result.notes, copied=True)
    if decoded.frames > 1 and warn is not None:
        warn(f"{source.name}: {decoded.frames} frames or pages: only the first is restored and written")
    write_restored(source, target, decoded, result.pixels, result.changed, warn)
    return FileResult(result.faces, result.notes, pasted=result.pasted)


def _groups(faces: Sequence[Face], size: int, hw: tuple[int, int], template: str) -> list[tuple[Roi, list[Face]]]:
    """The faces whose crops overlap, together (each in selection order), with the box of the image
    their crops touch. Faces in different groups touch no common pixel, so they paste alike apart."""
    groups: list[tuple[Roi, list[int]]] = []
    for index, face in enumerate(faces):
        box = _reach(face, size, hw, template)
        touching = [group for group in groups if group[0].overlaps(box)]
        for group in touching:
            groups.remove(group)
            box = box.union(group[0])
        groups.append((box, sorted([index] + [i for group in touching for i in group[1]])))
    return [(box, [faces[i] for i in members]) for box, members in sorted(groups, key=lambda g: g[1][0])]


def _reach(face: Face, size: int, hw: tuple[int, int], template: str) -> Roi:
    """The box of the image a face's crop reads and its paste writes."""
    h, w = hw
    try:
        box = footprint(aligned_record(face, size, hw, template).inverse, size, h, w)
    except DegenerateLandmarks:
        box = None
    if box is None:  # a face that cannot be aligned (enhance_images skips it with a note): its own box
        x0, y0, x1, y1 = np.nan_to_num(np.asarray(face.box, np.float64))
        x0, y0 = int(np.clip(np.floor(x0), 0, w - 1)), int(np.clip(np.floor(y0), 0, h - 1))
        box = Roi(x0, y0, int(np.clip(np.ceil(x1), x0 + 1, w)), int(np.clip(np.ceil(y1), y0 + 1, h)))
    return box


def _batches(groups: list[tuple[Roi, list[Face]]]) -> list[list[tuple[Roi, list[Face]]]]:
    """Groups in runs of at most REGION_PIXELS pixels and FACES_HELD faces (at least one group each)."""
    batches: list[list[tuple[Roi, list[Face]]]] = []
    pixels = faces = 0
    for group in groups:
        box, members = group
        area = (box.x1 - box.x0) * (box.y1 - box.y0)
        if not batches or pixels + area > REGION_PIXELS or faces + len(members) > FACES_HELD:
            batches.append([])
            pixels = faces = 0
        batches[-1].append(group)
        pixels, faces = pixels + area, faces + len(members)
    return batches
