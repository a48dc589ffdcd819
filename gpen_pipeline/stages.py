"""The four stages every front end calls, each a function of records and options.

    find_faces     image -> FoundFaces (detected, or found in boxes given, then selected)
    align_faces    image, faces -> AlignedFace records (where each crop comes from)
    restore_faces  images, aligned faces -> RestoredFace records (crops cut and restored
                   on the model's device, a chunk of FACES_HELD faces at a time)
    paste_back     image, restored faces -> PasteResult (on the device the faces are on)

The ComfyUI nodes call one stage each; `enhance.enhance_images` (the one-node
restore, the command line, the benchmarks) calls them all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from gpen_arch import GPENModel

from .align import DegenerateLandmarks, aligned_record
from .boxed_faces import Box, faces_in_boxes
from .color import count_nonfinite
from .cut import as_tensor, cut_crops, cut_masks
from .detection import Detector, detect_faces
from .face import AlignedFace, Face, RestoredFace, crops_to_numpy
from .masks import paste_masks, unit_mask
from .options import FACES_HELD, MIN_THRESHOLD, PasteOptions, SelectOptions
from .parsing import FaceParser, parse_mask_fn
from .paste import PasteResult, paste_faces, pastes_gray
from .restore import restore_tensor_crops
from .selection import select_faces
from .track_memory import TrackMemory
from .tracking import TrackOptions, track_clip

Image = np.ndarray | torch.Tensor  # HxWx3/4, uint8 or float32 in [0, 1]


@dataclass(frozen=True)
class FoundFaces:
    detected: tuple[Face, ...]  # every face above the threshold, best first
    selected: tuple[Face, ...]  # the ones to restore, in the selection's order
    missed: tuple[Box, ...] = ()  # boxes given in which no face was found


# A face's candidates down to this share of the threshold count: as evidence for bridging a clip's
# missed frame, and inside a box another detector gave (the box already says a face is there).
_WEAK_SHARE = 0.4


def _weak(select: SelectOptions) -> float:
    return max(MIN_THRESHOLD, select.threshold * _WEAK_SHARE)


def find_faces(image: Image, detector: Detector, select: SelectOptions = SelectOptions(),
               boxes: Sequence[Box] | None = None) -> FoundFaces:
    """Detect and select. boxes: faces another detector found (x1, y1, x2, y2): only they are looked
    at, each given our landmarks (boxed_faces.py)."""
    missed: tuple[Box, ...] = ()
    if boxes is None:
        detected = detect_faces(detector, _host_array(image), select.threshold)
    else:
        boxed = faces_in_boxes(detector, _host_array(image), boxes, _weak(select))
        detected, missed = sorted(boxed.faces, key=lambda face: -face.score), boxed.missed
    selected = select_faces(detected, order=select.order, indices=select.indices or None,
                            min_size=select.min_size, max_count=select.max_count)
    return FoundFaces(tuple(detected), tuple(selected), missed)


def find_clip_faces(frames: Iterable[Image], detector: Detector, select: SelectOptions = SelectOptions(),
                    track: TrackOptions = TrackOptions(), progress: Callable[[int], None] | None = None,
                    check_interrupt: Callable[[], None] | None = None,
                    boxes: Sequence[Sequence[Box]] | None = None) -> list[FoundFaces]:
    """find_faces for the frames of a clip, in order (any iterable: a video is decoded as it goes):
    every face above the threshold gets its track's number and the selection picks whole tracks
    (tracking.track_clip). progress(1) after each frame; check_interrupt() before each may raise.
    boxes: per frame, as find_faces takes them."""
    detected, evidence, missed = [], [], []
    for index, frame in enumerate(frames):
        if check_interrupt is not None:
            check_interrupt()
        if boxes is None:
            # Weak candidates are evidence: a frame where the detector only half saw a face gets that
            # face bridged, one without such a candidate does not.
            candidates = detect_faces(detector, _host_array(frame), _weak(select))
            detected.append([face for face in candidates if face.score >= select.threshold])
            evidence.append([face for face in candidates if face.score < select.threshold])
            missed.append(())
        else:
            boxed = faces_in_boxes(detector, _host_array(frame), boxes[index], _weak(select))
            detected.append(list(boxed.faces))
            evidence.append([])
            missed.append(boxed.missed)
        if progress is not None:
            progress(1)
    return [FoundFaces(tuple(every), tuple(chosen), lost)
            for (every, chosen), lost in zip(track_clip(detected, select, track, evidence), missed)]


def align_faces(image: Image, faces: Sequence[Face], size: int,
                template: str = "gpen") -> tuple[list[AlignedFace], list[str]]:
    """The crop records of `faces` at `size`, and notes on what was skipped or is odd in the image."""
    notes = []
    invalid = count_nonfinite(image)
    if invalid:
        notes.append(f"{invalid} NaN/infinite values: treated as black/white inside the faces, "
                     "left as they are elsewhere")
    aligned = []
    for face in faces:
        try:
            aligned.append(aligned_record(face, size, tuple(image.shape[:2]), template))
        except DegenerateLandmarks as exc:
            notes.append(f"skipped a face at {[round(v) for v in face.box]}: {exc}")
    return aligned, notes


def restore_faces(model: GPENModel, images: Sequence[Image], aligned: Sequence[Sequence[AlignedFace]], task: str = "restore",
                  damage: Sequence[Image | None] | None = None, batch_size: int | None = None,
                  progress: Callable[[int], None] | None = None,
                  check_interrupt: Callable[[], None] | None = None,
                  colorize: str = "keep-luminance") -> list[list[RestoredFace]]:
    """Cut every aligned face from its image on the model's device and restore it.

    The faces of all the images go through the network together, FACES_HELD at a time (a run
    of video frames with one face each still fills the network's batches). `damage`: per image
    an HxW mask (task "inpaint"); `colorize`: see restore.restore_tensor_crops. progress(n) is told of every n faces restored;
    check_interrupt() runs before each chunk and may raise to stop."""
    if damage is not None and len(damage) != len(images):
        raise ValueError(f"{len(damage)} damage masks for {len(images)} images")
    if task == "inpaint" and (damage is None or any(damage[i] is None for i, faces in enumerate(aligned) if faces)):
        raise ValueError("task 'inpaint' needs a damage mask for every image with faces")
    if not any(aligned):
        return [[] for _ in images]
    device = model.device
    size = next(faces[0].size for faces in aligned if faces)
    count = sum(map(len, aligned))
    # Filled in place: the crops of a long frame batch are held once, never as pieces and their join.
    crops = torch.empty((count, 3, size, size), dtype=torch.uint8, device=device)
    holes = torch.empty((count, size, size), dtype=torch.float32, device=device) if task == "inpaint" else None
    at = 0
    for index, (image, faces) in enumerate(zip(images, aligned)):
        if not faces:
            continue
        affines, mine = [face.affine for face in faces], slice(at, at + len(faces))
        crops[mine] = cut_crops(as_tensor(image, device), affines, size)
        if holes is not None:
            holes[mine] = cut_masks(as_tensor(unit_mask(_host_array(damage[index]), "damage mask"), device),
                                    affines, size)
        at += len(faces)
    restored, truncated = torch.empty_like(crops), torch.empty_like(crops)
    for start in range(0, count, FACES_HELD):
        if check_interrupt is not None:
            check_interrupt()
        chunk = slice(start, start + FACES_HELD)
        out = restore_tensor_crops(model, crops[chunk], task, None if holes is None else holes[chunk], batch_size,
                                   colorize)
        restored[chunk], truncated[chunk] = out.rounded, out.truncated
        if progress is not None:
            progress(out.rounded.shape[0])
    records, at = [], 0
    for faces in aligned:
        records.append([RestoredFace(face, restored[at + i], crops[at + i], task, truncated[at + i])
                        for i, face in enumerate(faces)])
        at += len(faces)
    return records


def face_paste_masks(restored: Sequence[RestoredFace], options: PasteOptions = PasteOptions(),
                     parser: FaceParser | None = None, memory: TrackMemory | None = None) -> torch.Tensor:
    """The crop-space paste masks of `restored` (at least one face), on the faces' device: (N,S,S),
    or (1,S,S) when one mask serves every face (no parser, or mode "box"). `memory`: a clip's track
    memory, which steadies each tracked face's mask along its track (track_memory.py), and keeps the
    parser in float32 (FaceParser.forward_for)."""
    _check_parser(options, parser)
    # The official recipe needs the official (float32) parse, and so do a clip's tracked faces: on the
    # only parser we can measure, bf16's label changes made a still face's mask flicker 1.6x as much
    # (bench/video.py steadiness). A photo's masks take the faster parse.
    exact = options.mask_mode == "official" or (
        memory is not None and any(face.aligned.face.track is not None for face in restored))
    parse = parse_mask_fn(parser, options.regions, exact) if parser is not None and options.mask_mode != "box" \
        else None
    # Only a parser needs the restored faces on the host; without one, one mask (of the crop size) serves all.
    faces = restored if parse is not None else restored[:1]
    crops = torch.stack([face.for_mask_mode(options.mask_mode) for face in faces])
    masks = torch.from_numpy(paste_masks(options.mask_mode, list(crops_to_numpy(crops)), parse, options.feather,
                                         options.grow)).to(restored[0].restored.device)
    if memory is not None and parse is not None:  # each face's mask from its own parse map: steadied
        for index, face in enumerate(restored):
            masks[index] = memory.steady_mask(face.aligned.face.track, masks[index])
    return masks


def paste_back(image: Image, restored: Sequence[RestoredFace], options: PasteOptions = PasteOptions(),
               parser: FaceParser | None = None, region_mask: Image | None = None,
               strengths: Sequence[float] | None = None, memory: TrackMemory | None = None,
               crop_masks: torch.Tensor | None = None) -> PasteResult:
    """Blend `restored` into `image` (the image they were cut from, or a resized copy of it) on the
    device the faces are on. Only pixels under the returned mask change; without faces, or at
    strength 0, the image comes back as it is. `strengths`: one per face instead of the options' one
    (the identity guard lowers some). The paste masks are face_paste_masks(restored, options,
    parser, memory), or `crop_masks` when given (made so: pastes of the same faces at other strengths
    need not parse them again)."""
    _check_parser(options, parser)
    device = restored[0].restored.device if restored else None
    pixels = as_tensor(image, device)
    if region_mask is not None:
        region_mask = as_tensor(unit_mask(_host_array(region_mask), "region_mask"), pixels.device)
        if tuple(region_mask.shape) != tuple(pixels.shape[:2]):
            raise ValueError(f"region_mask is {region_mask.shape[1]}x{region_mask.shape[0]} but the image is "
                             f"{pixels.shape[1]}x{pixels.shape[0]}; resize the mask to the image first")
    strength = options.strength if strengths is None else list(strengths)
    if not restored or max(np.atleast_1d(strength)) == 0.0:
        return PasteResult(pixels, torch.zeros(pixels.shape[:2], dtype=torch.float32, device=pixels.device))
    if crop_masks is None:
        crop_masks = face_paste_masks(restored, options, parser, memory)
    pasted = torch.stack([face.for_mask_mode(options.mask_mode) for face in restored])
    gray = "off" if any(face.task == "colorize" for face in restored) else options.keep_gray
    return paste_faces(pixels, [face.aligned for face in restored], pasted, crop_masks.to(pixels.device),
                       mode=options.mask_mode,
                       strength=strength,
                       originals=torch.stack([face.original for face in restored]),
                       keep_gray=pastes_gray(gray, pixels), color_match=options.color_match,
                       region_mask=region_mask, blend=options.blend, grain=options.grain)


def _check_parser(options: PasteOptions, parser: FaceParser | None) -> None:
    if options.mask_mode == "parse" and parser is None:
        raise ValueError("mask mode 'parse' needs a face parser (parsing_parsenet.pth or parsing_bisenet.pth); "
                         "put one in the face-detection models folder or use mask mode 'box'")


def _host_array(image: Image) -> np.ndarray:
    return image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
