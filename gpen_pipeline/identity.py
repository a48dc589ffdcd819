"""Identity: how much of each person a restoration kept, a floor under it, and faces picked by who they are.

Score: the cosine similarity of the ArcFace embeddings (recognition.py) of a face
in the image before and after the paste, both cut with the face's landmarks from
the whole image, so strength, masks and colour matching count. 1 is the same
picture; with insightface's models about 0.4 is the usual line between two people.

Guard (`min_identity`, applied by guarded_paste.py): a face scoring below the floor is pasted again at a lower
strength, found by bisection between 0 and the strength asked (GUARD_STEPS
halvings), keeping the highest strength tried that held the floor. The faces of an
image are searched together, one paste per step, so faces whose masks meet are
measured as they will be pasted. Faces at or above the floor keep the strength asked.

Reference: the largest face of each reference image is embedded once; a face is
restored only when its similarity to one of them reaches `reference_threshold`.
This applies to the faces the other selection settings kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .detection import Detector
from .face import Face, PastedFace
from .options import DEFAULT_REFERENCE_THRESHOLD, SelectOptions
from .recognition import (FILE_NAMES, Recognizer, RecognizerInvalid, RecognizerMissing, embed_faces, find_recognizer,
                          load_recognizer)
from .selection import LARGEST
from .stages import Image, find_faces

__all__ = ["DEFAULT_REFERENCE_THRESHOLD", "FILE_NAMES", "GUARD_STEPS", "IdentityCheck", "NoReferenceFace",
           "PastedFace", "Recognizer", "RecognizerInvalid", "RecognizerMissing", "embed_faces", "find_recognizer",
           "identity_scores", "load_recognizer", "matching_faces", "reference_embeddings",
           "reference_similarities"]

GUARD_STEPS = 7  # the strength is found to 1/128 of the one asked


class NoReferenceFace(ValueError):
    """A reference image in which no face was found."""


@dataclass(frozen=True, eq=False)
class IdentityCheck:
    """What a run asks of identity: the recognizer scores every face; `min_identity` > 0 guards the
    scores; `references` ((R, D) unit embeddings, reference_embeddings) restricts the faces restored."""
    recognizer: Recognizer
    min_identity: float = 0.0
    references: np.ndarray | None = None
    reference_threshold: float = DEFAULT_REFERENCE_THRESHOLD

    def __post_init__(self):
        for name in ("min_identity", "reference_threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating)) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be a number within [0, 1], got {value!r}")
        refs = self.references
        if refs is not None and (not isinstance(refs, np.ndarray) or refs.ndim != 2 or not len(refs)
                                 or not np.isfinite(refs).all()):
            raise ValueError("references must be an (R, D) array of finite embeddings from reference_embeddings")


def reference_embeddings(recognizer: Recognizer, detector: Detector, images: Sequence[Image],
                         threshold: float = 0.5, names: Sequence[str] | None = None) -> np.ndarray:
    """(R, D) embeddings of the largest face of each reference image; NoReferenceFace names an image
    without one (`names`: how to call them, e.g. file names; default "reference image N")."""
    found = []
    for index, image in enumerate(images):
        faces = find_faces(image, detector, SelectOptions(threshold=threshold, order=LARGEST)).selected
        name = names[index] if names is not None else f"reference image {index}"
        embedding = embed_faces(recognizer, image, faces)
        if not faces or not np.isfinite(embedding).all():
            raise NoReferenceFace(f"{name}: no face found to compare with; give a photo of the person in which "
                                  "the face is clearly visible, with some margin around it")
        found.append(embedding)
    if not found:
        raise NoReferenceFace("no reference image was given")
    return np.concatenate(found)


def reference_similarities(check: IdentityCheck, image: Image, faces: Sequence[Face]) -> np.ndarray:
    """Each face's similarity to its nearest reference face (NaN for a face that cannot be aligned)."""
    if not faces:
        return np.zeros((0,), np.float32)
    embeddings = embed_faces(check.recognizer, image, faces)
    if embeddings.shape[1] != check.references.shape[1]:
        raise ValueError(f"the reference embeddings have {check.references.shape[1]} values but "
                         f"{check.recognizer.name} gives {embeddings.shape[1]}; embed the references with it")
    return (embeddings @ check.references.T).max(axis=1)


def matching_faces(check: IdentityCheck | None, image: Image, faces: Sequence[Face]) -> list[Face]:
    """The faces that look like a reference (all of them when there is no reference)."""
    if check is None or check.references is None:
        return list(faces)
    similar = reference_similarities(check, image, faces) >= check.reference_threshold
    return [face for face, keep in zip(faces, similar) if keep]


TRACK_SAMPLES = 5  # frames a track is judged on against the references


def track_samples(faces: Sequence[Sequence[Face]], samples: int = TRACK_SAMPLES) -> dict[int, list[Face]]:
    """Per frame index, the faces a clip's tracks are judged on: up to `samples` frames of each
    track, spread over it, so one frame's poor view of a face does not decide."""
    seen: dict[int | None, list[tuple[int, Face]]] = {}
    for index, each in enumerate(faces):
        for face in each:
            seen.setdefault(face.track, []).append((index, face))
    picked: dict[int, list[Face]] = {}
    for visits in seen.values():
        for i in sorted({int(round(i)) for i in np.linspace(0, len(visits) - 1, min(samples, len(visits)))}):
            picked.setdefault(visits[i][0], []).append(visits[i][1])
    return picked


def tracks_like_references(check: IdentityCheck, faces: Sequence[Sequence[Face]], frames: Iterable[Image],
                           samples: int = TRACK_SAMPLES) -> set[int | None]:
    """The tracks of a clip's faces (per frame) whose sampled faces (track_samples) look like a
    reference on average; faces that could not be aligned (NaN) are left out of the average.
    `frames` are read in order, and no further than the last sampled one: a decoded video's frames
    need not be held."""
    picked = track_samples(faces, samples)
    last = max(picked, default=-1)
    similarities: dict[int | None, list[float]] = {}
    for index, frame in enumerate(frames):
        if index in picked:
            for face, value in zip(picked[index], reference_similarities(check, frame, picked[index])):
                similarities.setdefault(face.track, []).append(float(value))
        if index >= last:
            break
    kept = set()
    for track, values in similarities.items():
        finite = [v for v in values if np.isfinite(v)]
        if finite and np.mean(finite) >= check.reference_threshold:
            kept.add(track)
    return kept


def matching_tracks(check: IdentityCheck | None, frames: Sequence[Image],
                    faces: Sequence[Sequence[Face]], samples: int = TRACK_SAMPLES) -> list[list[Face]]:
    """A clip's faces kept by whole track (tracks_like_references), so the same person is restored
    in every frame. All faces without a reference."""
    if check is None or check.references is None:
        return [list(each) for each in faces]
    kept = tracks_like_references(check, faces, frames, samples)
    return [[face for face in each if face.track in kept] for each in faces]


def identity_scores(recognizer: Recognizer, before: Image, after: Image, faces: Sequence[Face]) -> np.ndarray:
    """Per face, the cosine similarity of its embeddings in `before` and in `after` (same pixels)."""
    return cosines(embed_faces(recognizer, before, faces), embed_faces(recognizer, after, faces))


def cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two sets of unit embeddings."""
    if not len(first):
        return np.zeros((0,), np.float32)
    return np.clip((first * second).sum(axis=1), -1.0, 1.0)
