"""The records that flow through the pipeline.

A `Face` is what a detector found; an `AlignedFace` adds where its crop came
from; a `RestoredFace` adds the crop as cut and as restored. All are frozen:
a step that learns more returns a new record.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

# Landmark order everywhere in the pack: image-left eye, image-right eye,
# nose tip, image-left mouth corner, image-right mouth corner.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    score: float
    landmarks: np.ndarray = field(repr=False)  # (5, 2) float32, x/y in image pixels
    # Which face of a clip this is (tracking.py), the same number in every frame; None for a still image.
    track: int | None = None

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

    def moved(self, dx: float, dy: float) -> "Face":
        """The same face in a region of the image whose top-left corner is at (dx, dy)."""
        return replace(
            self,
            box=(self.box[0] - dx, self.box[1] - dy, self.box[2] - dx, self.box[3] - dy),
            landmarks=(self.landmarks - np.array([dx, dy], np.float32)).astype(np.float32),
        )

    def to_json(self) -> dict:
        out = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }
        if self.track is not None:
            out["track"] = self.track
        return out


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 when neither has an area."""
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class AlignedFace:
    face: Face
    size: int  # the crop is size x size
    affine: np.ndarray = field(repr=False)  # (2, 3): image -> crop
    inverse: np.ndarray = field(repr=False)  # (2, 3): crop -> image
    # (height, width) of the image the crop was taken from; paste-back scales
    # the transforms when the target is a resized copy of that image.
    image_size: tuple[int, int] | None = None


@dataclass(frozen=True, eq=False)
class RestoredFace:
    """One face after the network, on the device it was restored on."""
    aligned: AlignedFace
    restored: torch.Tensor = field(repr=False)  # (3, S, S) uint8 RGB
    original: torch.Tensor = field(repr=False)  # the crop as cut, same layout
    task: str = "restore"  # a colorized face must not be turned grey again when pasted
    # The output truncated to uint8 as the official code does (`restored` is rounded): what "official"
    # mode parses and pastes, so its parser sees the official picture. None: `restored` serves.
    truncated: torch.Tensor | None = field(default=None, repr=False)

    def restored_u8(self) -> np.ndarray:
        """The restored crop as SxSx3 uint8 RGB on the host."""
        return crops_to_numpy(self.restored)

    def for_mask_mode(self, mask_mode: str) -> torch.Tensor:
        """The (3, S, S) crop a paste in `mask_mode` uses: the truncated one in "official" mode."""
        return self.truncated if mask_mode == "official" and self.truncated is not None else self.restored


def crops_to_numpy(crop: torch.Tensor) -> np.ndarray:
    """(3, S, S) or (N, 3, S, S) uint8 tensor crops -> SxSx3 uint8 numpy crops on the host."""
    return np.ascontiguousarray(crop.detach().movedim(-3, -1).cpu().numpy())


def crops_from_numpy(crops: Sequence[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    """SxSx3 uint8 numpy crops -> an (N, 3, S, S) uint8 tensor on `device`."""
    return torch.from_numpy(np.stack(crops)).to(device).permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class PastedFace:
    """How one face went back into the image: the strength used (the sharpness limit or the identity
    guard may have lowered the one asked for, `lowered_by` says which: "sharpness" or "identity") and
    the identity kept, measured on the final image (None without a recognizer)."""
    face: Face  # in the pixels of the image pasted into
    strength: float
    asked: float
    identity: float | None = None
    lowered_by: str = ""

    @property
    def lowered(self) -> bool:
        return self.strength < self.asked

    def to_json(self) -> dict:
        return {**self.face.to_json(),
                "identity": None if self.identity is None or not np.isfinite(self.identity)
                else round(float(self.identity), 4),
                "strength": round(float(self.strength), 4), "strength_asked": round(float(self.asked), 4),
                "lowered": self.lowered, "lowered_by": self.lowered_by or None}
