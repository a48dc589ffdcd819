"""Faces given as boxes by another detector: each box's five landmarks from our detector, run
on the box and its surroundings.

GPEN needs the five landmarks to align a face; a box alone does not say where the eyes are. So
each box is searched on its own (the box and half its size around it, which the detector sees
enlarged to its working size, so even a small face is found), with a low threshold since the box
already says a face is there, and the face whose landmarks centre lies in the box (the largest
overlap first) is the one kept, with our box and score. A box in which no face is found is given
back as missed, not guessed at: a face aligned from a box's proportions alone restores badly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .detection import Detector, detect_faces
from .face import Face, box_iou

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels

_AROUND = 0.5  # of the box's longer side, searched beyond each side


@dataclass(frozen=True)
class BoxedFaces:
    faces: tuple[Face, ...]  # one per box where a face was found, in the order of the boxes
    missed: tuple[Box, ...] = ()  # boxes without a face


def faces_in_boxes(detector: Detector, image: np.ndarray, boxes: Sequence[Box], threshold: float) -> BoxedFaces:
    """The face in each of `boxes` of `image` (HxWx3 RGB uint8 as detect_faces takes it), found
    above `threshold`. Two boxes on the same face give it once."""
    h, w = image.shape[:2]
    faces: list[Face] = []
    missed: list[Box] = []
    for box in boxes:
        x1, y1, x2, y2 = (float(v) for v in box)
        reach = _AROUND * max(x2 - x1, y2 - y1)
        left, top = int(np.clip(np.floor(x1 - reach), 0, w)), int(np.clip(np.floor(y1 - reach), 0, h))
        right, bottom = int(np.clip(np.ceil(x2 + reach), 0, w)), int(np.clip(np.ceil(y2 + reach), 0, h))
        inside = x2 > x1 and y2 > y1 and right > left and bottom > top
        found = detect_faces(detector, image[top:bottom, left:right], threshold) if inside else []
        centred = [face.moved(-left, -top) for face in found if _centre_in(face.moved(-left, -top), (x1, y1, x2, y2))]
        if not centred:
            missed.append((x1, y1, x2, y2))
            continue
        best = max(centred, key=lambda face: box_iou(face.box, (x1, y1, x2, y2)))
        if not any(_same(best, face) for face in faces):
            faces.append(best)
    return BoxedFaces(tuple(faces), tuple(missed))


def _centre_in(face: Face, box: Box) -> bool:
    cx, cy = face.landmarks.mean(axis=0)
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def _same(a: Face, b: Face) -> bool:
    """The same face found from two boxes: its landmarks within a tenth of its size."""
    size = max(a.width, a.height, 1.0)
    return float(np.abs(a.landmarks - b.landmarks).max()) < 0.1 * size
