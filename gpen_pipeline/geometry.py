"""Where a face crop lands in a target image: the crop -> target map, its box, what it samples.

Small numpy computations on a few numbers; the pixels are moved by cut.py and paste.py.
Pixel centres sit at integer coordinates throughout, as in OpenCV.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import masks
from .align import compose_affine
from .face import AlignedFace


@dataclass(frozen=True)
class Roi:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def overlaps(self, other: "Roi") -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def within(self, outer: "Roi") -> tuple[slice, slice]:
        """This box's slices inside `outer` (which contains it)."""
        return slice(self.y0 - outer.y0, self.y1 - outer.y0), slice(self.x0 - outer.x0, self.x1 - outer.x0)

    def union(self, other: "Roi | None") -> "Roi":
        if other is None:
            return self
        return Roi(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))


def crop_to_target(aligned: AlignedFace, crop_size: int, target_hw: tuple[int, int]) -> np.ndarray:
    """(2,3) map from a `crop_size` crop of `aligned` to the pixels of a target image.

    The target may be a resized copy of the image the face was aligned on;
    pixel centres are matched (x_t = s*(x+0.5)-0.5), as resizers do.
    """
    h_t, w_t = target_hw
    h_s, w_s = aligned.image_size or target_hw
    sx, sy = w_t / w_s, h_t / h_s
    to_target = np.array([[sx, 0.0, 0.5 * (sx - 1.0)], [0.0, sy, 0.5 * (sy - 1.0)]])
    k = aligned.size / crop_size
    from_crop = np.array([[k, 0.0, 0.5 * (k - 1.0)], [0.0, k, 0.5 * (k - 1.0)]])
    return compose_affine(to_target, compose_affine(aligned.inverse, from_crop))


def footprint(inverse: np.ndarray, crop_size: int, h: int, w: int) -> Roi | None:
    """The box of an HxW image that a `crop_size` crop placed by `inverse` (crop -> image) can touch,
    with a margin for the interpolation taps; None when it misses the image."""
    corners = np.array([[-0.5, -0.5, 1], [crop_size - 0.5, -0.5, 1],
                        [-0.5, crop_size - 0.5, 1], [crop_size - 0.5, crop_size - 0.5, 1]])
    pts = corners @ inverse.T
    x0 = int(np.clip(np.floor(pts[:, 0].min()) - 2, 0, w))
    x1 = int(np.clip(np.ceil(pts[:, 0].max()) + 3, 0, w))
    y0 = int(np.clip(np.floor(pts[:, 1].min()) - 2, 0, h))
    y1 = int(np.clip(np.ceil(pts[:, 1].max()) + 3, 0, h))
    return Roi(x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def inside_source(aligned: AlignedFace, crop_size: int, target_hw: tuple[int, int]) -> np.ndarray | None:
    """Crop-space 0/1 map of pixels sampled wholly from inside the source image; None when all are."""
    h, w = aligned.image_size or target_hw
    k = aligned.size / crop_size
    inv = aligned.inverse

    def sampled_inside(coords: np.ndarray) -> np.ndarray:
        gx, gy = np.meshgrid(coords, coords)
        x = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
        y = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
        eps = 1e-3
        return (x >= -eps) & (x <= w - 1 + eps) & (y >= -eps) & (y <= h - 1 + eps)

    grid = (np.arange(crop_size, dtype=np.float64) + 0.5) * k - 0.5
    # The crop's sample points fill a parallelogram: when its four corners are inside the image, all are.
    if sampled_inside(grid[[0, -1]]).all():
        return None
    inside = sampled_inside(grid)
    return None if inside.all() else inside.astype(np.float32)


def face_box(face: AlignedFace, crop_size: int, target_hw: tuple[int, int]) -> tuple[Roi, np.ndarray] | None:
    """The box of the target a `crop_size` crop of `face` can touch and the (2,3) map crop -> box pixels;
    None when the face misses the target."""
    inverse = crop_to_target(face, crop_size, target_hw)
    roi = footprint(inverse, crop_size, *target_hw)
    if roi is None:
        return None
    return roi, inverse - np.array([[0, 0, roi.x0], [0, 0, roi.y0]], dtype=np.float64)


def face_size_in(face: AlignedFace, target_hw: tuple[int, int]) -> float:
    """The face's box size (its larger side) as it lands in the target, in pixels."""
    h_s, w_s = face.image_size or target_hw
    return max(face.face.width * target_hw[1] / w_s, face.face.height * target_hw[0] / h_s)


def is_small_in_target(face: AlignedFace, target_hw: tuple[int, int]) -> bool:
    """Whether the official recipe smooths this face: judged on its box as it lands in the target."""
    h_s, w_s = face.image_size or target_hw
    sx, sy = target_hw[1] / w_s, target_hw[0] / h_s
    return masks.is_small_face(face.face.width * sx, face.face.height * sy)
