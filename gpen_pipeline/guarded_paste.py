"""The paste with each face's strength decided: the strength asked, lowered where a face would be
sharper than the photo around it (sharpness.py, `PasteOptions.sharpness_limit`) or would lose its
identity (identity.py, `IdentityCheck.min_identity`), and how each face went in, as PastedFace records.

The sharpness limit goes first: it needs no extra paste, and the identity guard then searches
below the strength it left.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .face import Face, PastedFace, RestoredFace
from .cut import as_tensor
from .identity import GUARD_STEPS, IdentityCheck, cosines, embed_faces
from .options import PasteOptions
from .parsing import FaceParser
from .paste import PasteResult
from .sharpness import limited_strengths
from .stages import Image, face_paste_masks, paste_back
from .track_memory import TrackMemory


def paste_guarded(image: Image, restored: Sequence[RestoredFace], options: PasteOptions = PasteOptions(),
                  parser: FaceParser | None = None, region_mask: Image | None = None,
                  check: IdentityCheck | None = None,
                  memory: TrackMemory | None = None) -> tuple[PasteResult, tuple[PastedFace, ...]]:
    """stages.paste_back at the strengths the limits leave, with how each face went in: scored with
    `check` (and guarded when it sets min_identity), else unscored. `memory`: a clip's (track_memory.py)."""
    faces = [_in_target(face, image) for face in restored]
    asked = float(options.strength)
    strengths, lowered_by = [asked] * len(faces), [""] * len(faces)
    before = None if check is None else embed_faces(check.recognizer, image, faces)
    # The masks are the same at every strength: made (and parsed) once for all the pastes below.
    masks = face_paste_masks(restored, options, parser, memory) if restored and asked > 0 else None

    def paste(at: Sequence[float] | None = None) -> PasteResult:
        return paste_back(image, restored, options, parser, region_mask, at, crop_masks=masks)

    result = paste()
    if options.sharpness_limit and faces:
        pixels = as_tensor(image, result.image.device)
        strengths = limited_strengths(pixels, result.image, result.mask, faces, strengths, options.sharpness_limit)
        lowered_by = ["sharpness" if s < asked else "" for s in strengths]
        if any(lowered_by):
            result = paste(strengths)
    if check is None:
        return result, tuple(PastedFace(face, strength, asked, None, why)
                             for face, strength, why in zip(faces, strengths, lowered_by))
    scores = cosines(before, embed_faces(check.recognizer, result.image, faces))
    floor = float(check.min_identity)
    low = [i for i, score in enumerate(scores) if floor > 0 and strengths[i] > 0 and score < floor]
    if low:
        result, scores = _guard_identity(paste, check, faces, before, strengths, low)
        for i in low:
            lowered_by[i] = "identity"
    return result, tuple(PastedFace(face, strength, asked, float(score), why)
                         for face, strength, score, why in zip(faces, strengths, scores, lowered_by))


def _guard_identity(paste: Callable[[Sequence[float]], PasteResult], check: IdentityCheck, faces: Sequence[Face],
                    before: np.ndarray, strengths: list[float], low: list[int]) -> tuple[PasteResult, np.ndarray]:
    """Bisect the strengths of the faces in `low` (changed in place) between 0 and where they are, the
    faces of the image together, one paste per step; returns the final paste and every face's score."""
    floor = float(check.min_identity)
    held, failed = {i: 0.0 for i in low}, {i: strengths[i] for i in low}  # strength 0 leaves the face as it was
    for _ in range(GUARD_STEPS):
        for i in low:
            strengths[i] = (held[i] + failed[i]) / 2
        trial = paste(strengths)
        tried = cosines(before[low], embed_faces(check.recognizer, trial.image, [faces[i] for i in low]))
        for i, score in zip(low, tried):
            (held if score >= floor else failed)[i] = strengths[i]
    for i in low:
        strengths[i] = held[i]
    result = paste(strengths)
    return result, cosines(before, embed_faces(check.recognizer, result.image, faces))


def _in_target(face: RestoredFace, image: Image) -> Face:
    """The face's detection in the pixels of `image`, which may be a resized copy of its source."""
    source = face.aligned.image_size
    if source is None or source[0] == image.shape[0]:
        return face.aligned.face
    return face.aligned.face.scaled(image.shape[0] / source[0])
