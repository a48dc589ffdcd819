"""The records that flow through the pipeline.

A `Face` is what a detector found; an `AlignedFace` adds where its crop came
from. Both are frozen: a step that learns more returns a new record.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

# Landmark order everywhere in the pack: image-left eye, image-right eye,
# nose tip, image-left mouth corner, image-right mouth corner.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    score: float
    landmarks: np.ndarray = field(repr=False)  # (5, 2) float32, x/y in image pixels

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def scaled(self, factor: float) -> "Face":
        """The same face in an image resized by `factor`."""
        return replace(
            self,
            box=tuple(float(v) * factor for v in self.box),
            landmarks=(self.landmarks * factor).astype(np.float32),
        )

    def to_json(self) -> dict:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }


@dataclass(frozen=True)
class AlignedFace:
    face: Face
    size: int  # the crop is size x size
    affine: np.ndarray = field(repr=False)  # (2, 3): image -> crop
    inverse: np.ndarray = field(repr=False)  # (2, 3): crop -> image
    # (height, width) of the image the crop was taken from; paste-back scales
    # the transforms when the target is a resized copy of that image.
    image_size: tuple[int, int] | None = None
