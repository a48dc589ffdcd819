"""Face tracks across the frames of a clip: the same face keeps the same number in every frame.

    link_tracks   per-frame detections -> the same faces with a track id (box overlap + landmark distance,
                  each track's position predicted from its last motion, so faces that cross keep their ids)
    bridge_gaps   a face missed for at most `max_gap` frames is put back, interpolated from its neighbours
    track_clip    the whole step for a clip: link, number the tracks in the selection's order, select
                  whole tracks, bridge the gaps, smooth each track (smoothing.py)

Tracks are numbered the way a still image's faces are (track 0 is the largest face of the clip in the
default order), so a selection's `indices` pick the same people in every frame.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .face import Face, box_iou
from .options import SelectOptions, TrackOptions
from .selection import LARGEST, select_faces
from .smoothing import smooth_tracks

# Frames a face may be missed and still be joined to its track (and drawn in those frames).
# A detection joins a track only when its landmarks lie within this fraction of the face's size of where
# the track is expected, or the boxes overlap at least this much.
_NEAR = 0.5
_MIN_IOU = 0.3


@dataclass
class _Live:
    """A track while it is being linked: its last face, when it was seen, and its motion per frame."""
    face: Face
    frame: int
    velocity: np.ndarray  # (7, 2): per-frame motion of the two box corners and the five landmarks

    def expected(self, frame: int) -> np.ndarray:
        return _points(self.face) + self.velocity * (frame - self.frame)


def _points(face: Face) -> np.ndarray:
    """The box corners and the landmarks as one (7, 2) array: what moves when the face moves."""
    box = np.asarray(face.box, dtype=np.float64).reshape(2, 2)
    return np.vstack([box, np.asarray(face.landmarks, dtype=np.float64)])


def _cost(expected: np.ndarray, face: Face) -> float | None:
    """How far `face` is from where a track is expected (smaller is nearer); None when it cannot be it."""
    points = _points(face)
    size = max(np.sqrt(max(face.area, 1.0)), 1.0)
    distance = float(np.sqrt(((points[2:] - expected[2:]) ** 2).sum(axis=1)).mean()) / size
    overlap = box_iou(expected[:2].ravel(), points[:2].ravel())
    if distance > _NEAR and overlap < _MIN_IOU:
        return None
    return distance + (1.0 - overlap)


def link_tracks(frames: Sequence[Sequence[Face]], max_gap: int = TrackOptions.max_gap) -> list[list[Face]]:
    """Every frame's faces with a track id, numbered by first appearance. A track missed for more than
    `max_gap` frames ends; a face seen after that starts a new one."""
    live: dict[int, _Live] = {}
    linked: list[list[Face]] = []
    next_id = 0
    for frame, faces in enumerate(frames):
        pairs = sorted((cost, track, index) for track, state in live.items()
                       for index, face in enumerate(faces)
                       if (cost := _cost(state.expected(frame), face)) is not None)
        owner: dict[int, int] = {}
        for _, track, index in pairs:  # nearest pairs first: each track and each face taken once
            if track not in owner.values() and index not in owner:
                owner[index] = track
        out = []
        for index, face in enumerate(faces):
            track = owner.get(index)
            if track is None:
                track, next_id = next_id, next_id + 1
                live[track] = _Live(face, frame, np.zeros((7, 2)))
            else:
                state = live[track]
                state.velocity = (_points(face) - _points(state.face)) / (frame - state.frame)
                state.face, state.frame = face, frame
            out.append(replace(face, track=track))
        linked.append(out)
        for track in [t for t, state in live.items() if frame - state.frame > max_gap]:
            del live[track]
    return linked


def bridge_gaps(frames: Sequence[Sequence[Face]], max_gap: int = TrackOptions.max_gap,
                evidence: Sequence[Sequence[Face]] | None = None) -> list[list[Face]]:
    """Tracked faces with every gap of at most `max_gap` frames filled by linear interpolation between
    the frames on either side (the score is the lower of the two); each frame's faces by track.

    evidence: per frame, the detector's weaker candidates (below the selection's threshold). When
    given, a missed frame is filled only where one of them overlaps the interpolated box: a face the
    detector was unsure of (blur, a turn), not a frame where the face is gone (a cut, a faceless
    image in a batch), which would get a face drawn where there is none."""
    seen: dict[int, list[tuple[int, Face]]] = {}
    for frame, faces in enumerate(frames):
        for face in faces:
            seen.setdefault(face.track, []).append((frame, face))
    out = [list(faces) for faces in frames]
    for visits in seen.values():
        for (start, before), (end, after) in zip(visits, visits[1:]):
            if not 1 < end - start <= max_gap + 1:
                continue
            for frame in range(start + 1, end):
                t = (frame - start) / (end - start)
                box = tuple(float((1 - t) * a + t * b) for a, b in zip(before.box, after.box))
                landmarks = ((1 - t) * before.landmarks + t * after.landmarks).astype(np.float32)
                if evidence is not None and not any(box_iou(box, weak.box) >= _MIN_IOU for weak in evidence[frame]):
                    continue
                out[frame].append(Face(box, min(before.score, after.score), landmarks, before.track))
    return [sorted(faces, key=lambda f: f.track) for faces in out]


def _representative(faces: Sequence[Face]) -> Face:
    """One face standing for a whole track when tracks are ordered and selected: its mean place and size."""
    box = tuple(float(v) for v in np.mean([f.box for f in faces], axis=0))
    landmarks = np.mean([f.landmarks for f in faces], axis=0).astype(np.float32)
    return Face(box, float(np.mean([f.score for f in faces])), landmarks, faces[0].track)


def track_clip(detected: Sequence[Sequence[Face]], select: SelectOptions = SelectOptions(),
               options: TrackOptions = TrackOptions(),
               evidence: Sequence[Sequence[Face]] | None = None) -> list[tuple[list[Face], list[Face]]]:
    """(every tracked face, the selected ones) for each frame of a clip, from each frame's detections.

    Tracks are numbered as a still image's faces are, by the selection's order of each track's mean
    face (min_size too: tracks too small come last); `indices` and `max_count` pick whole tracks, so
    "largest" is the largest face of the clip. Gaps are bridged (where `evidence` shows a weaker
    candidate, see bridge_gaps) and each track smoothed."""
    linked = link_tracks(detected, options.max_gap)
    by_track: dict[int, list[Face]] = {}
    for faces in linked:
        for face in faces:
            by_track.setdefault(face.track, []).append(face)
    stand_ins = [_representative(faces) for faces in by_track.values()]
    order = "large-small" if select.order == LARGEST else select.order
    numbered = [f.track for f in select_faces(stand_ins, order=order, min_size=select.min_size)]
    numbered += [f.track for f in select_faces(stand_ins, order=order) if f.track not in numbered]
    number = {track: rank for rank, track in enumerate(numbered)}
    chosen = [number[f.track] for f in select_faces(stand_ins, order=select.order, indices=select.indices or None,
                                                    min_size=select.min_size, max_count=select.max_count)]
    renumbered = [[replace(face, track=number[face.track]) for face in faces] for faces in linked]
    tracked = smooth_tracks(bridge_gaps(renumbered, options.max_gap, evidence), options.smoothing)
    out = []
    for faces in tracked:
        mine = {face.track: face for face in faces}
        out.append((faces, [mine[track] for track in chosen if track in mine]))
    return out
