"""Each track's face smoothed over time, so the alignment crop stops shaking with the detector's jitter.

A detector finds the five landmarks a pixel or two off, differently in every frame; the crop follows
them, and the network draws a slightly different face each time: flicker. Each track's box and
landmarks go through an exponential smoother whose gain rises with the change, as a One-Euro
filter's cutoff rises with speed: a change within the detector's jitter (the similarity between the
smoothed and the found landmarks moving a face-sized square's corners by under JITTER of the face's
size) gets the strength's small gain; one FOLLOW times larger is followed at once. The smoother runs
forward and backward over the track and the two are averaged (as a Kalman smoother completes its
filter): their lags on a steady motion are equal and opposite, so a pan or drift is followed without
lag, and a face that moves fast is followed in the frame it moves.

The strength s in [0, 1] sets the gain for jitter: 0.02 ** s (1 at 0: no smoothing). A clip of
identical frames gives identical faces, and a single image is never smoothed.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from .face import Face

# Changes within this fraction of the face's size (the square root of its box area) count as jitter...
JITTER = 0.02
# ... and from this many times that on they are followed in full.
FOLLOW = 3.0


def _points(face: Face) -> np.ndarray:
    """The box corners and the landmarks as one (7, 2) array."""
    return np.vstack([np.asarray(face.box, np.float64).reshape(2, 2), np.asarray(face.landmarks, np.float64)])


def _moved(before: np.ndarray, after: np.ndarray, size: float) -> float:
    """How far the corners of a face-sized square move under the similarity that best takes the
    landmarks `before` onto `after`. Judged on the landmarks, which the alignment follows, and on
    their common motion: a real move shifts, turns or scales all five, jitter moves each its own way."""
    centre_before, centre_after = before.mean(axis=0), after.mean(axis=0)
    p, q = before - centre_before, after - centre_after
    spread = max(float((p ** 2).sum()), 1e-9)
    a = float((p * q).sum()) / spread
    b = float((p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum()) / spread
    half = size / 2.0
    corners = np.array([[-half, -half], [half, -half], [-half, half], [half, half]])
    moved = corners @ np.array([[a - 1.0, b], [-b, a - 1.0]]) + (centre_after - centre_before)
    return float(np.sqrt((moved ** 2).sum(axis=1)).max())


def _one_way(points: np.ndarray, sizes: np.ndarray, gain: float) -> np.ndarray:
    """The adaptive exponential smoother over (frames, 7, 2) points, in the order given."""
    out = np.empty_like(points)
    state = out[0] = points[0]
    for index in range(1, len(points)):
        measured = points[index]
        miss = _moved(state[2:], measured[2:], sizes[index]) / (JITTER * sizes[index])
        t = np.clip((miss - 1.0) / (FOLLOW - 1.0), 0.0, 1.0)
        state = out[index] = state + (gain + (1.0 - gain) * t * t * (3.0 - 2.0 * t)) * (measured - state)
    return out


def smooth_track(faces: Sequence[Face], strength: float) -> list[Face]:
    """One track's faces, frame after frame, smoothed; faces the smoother leaves as they are come back
    as the very same records."""
    if strength <= 0 or len(faces) < 2:
        return list(faces)
    points = np.stack([_points(face) for face in faces])
    sizes = np.sqrt(np.maximum([face.area for face in faces], 1.0))
    gain = 0.02 ** float(strength)
    smoothed = (_one_way(points, sizes, gain) + _one_way(points[::-1], sizes[::-1], gain)[::-1]) / 2.0
    out = []
    for face, found, state in zip(faces, points, smoothed):
        if np.array_equal(state, found):
            out.append(face)  # bit for bit: a still clip's faces never move
        else:
            out.append(replace(face, box=tuple(float(v) for v in state[:2].ravel()),
                               landmarks=state[2:].astype(np.float32)))
    return out


def smooth_tracks(frames: Sequence[Sequence[Face]], strength: float) -> list[list[Face]]:
    """Every tracked face of a clip (frames in order, faces with track ids) smoothed along its track."""
    tracks: dict[int, list[tuple[int, int]]] = {}
    for frame, faces in enumerate(frames):
        for slot, face in enumerate(faces):
            tracks.setdefault(face.track, []).append((frame, slot))
    out = [list(faces) for faces in frames]
    for places in tracks.values():
        smoothed = smooth_track([frames[frame][slot] for frame, slot in places], strength)
        for (frame, slot), face in zip(places, smoothed):
            out[frame][slot] = face
    return out
