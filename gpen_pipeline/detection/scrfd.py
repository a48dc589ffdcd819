"""insightface SCRFD (`det_10g.onnx` of buffalo_l, `scrfd_10g_bnkps.onnx` of
antelopev2), run with onnxruntime and decoded here, the way insightface's
`SCRFD.detect(img, input_size=(640, 640))` does it: the image is letterboxed
(top-left, zero padding) into the network input, normalised (x - 127.5) / 128
in RGB; each stride has anchor centres at (col, row) * stride (2 anchors per
position for 3 strides, 1 for 5); boxes and keypoints are distances from the
centre times the stride; scores >= threshold; NMS 0.4 with insightface's +1
pixel areas. insightface itself is not needed.

Keypoint order is insightface's: image-left eye, image-right eye, nose, image-left
mouth corner, image-right mouth corner (insightface's `norm_crop` maps them onto
the ArcFace template in that order), the pack's order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from gpen_arch.onnx_model import onnx_session

from .common import (Detector, DetectorWeightsInvalid, RawDetections, empty_detections,
                     find_weights, missing_weights_error, nms, session_device)

FILE_NAMES = ("det_10g.onnx", "scrfd_10g_bnkps.onnx")
SUBDIRS = ("", "models/buffalo_l", "models/antelopev2", "buffalo_l", "antelopev2")
DEFAULT_INPUT_SIZE = (640, 640)  # (width, height), for models with a dynamic input
NMS_IOU = 0.4
# number of outputs -> (strides, anchors per position, has keypoints)
LAYOUTS = {
    6: ((8, 16, 32), 2, False),
    9: ((8, 16, 32), 2, True),
    10: ((8, 16, 32, 64, 128), 1, False),
    15: ((8, 16, 32, 64, 128), 1, True),
}


@dataclass(frozen=True)
class ScrfdModel:
    session: object
    input_name: str
    input_size: tuple[int, int]  # (width, height) of the letterbox
    strides: tuple[int, ...]
    anchors: int


def load(model_dirs: Sequence[str | os.PathLike], device: str | None = None) -> Detector:
    path, searched = find_weights(FILE_NAMES, model_dirs, SUBDIRS)
    if path is None:
        raise missing_weights_error(
            "scrfd", "det_10g.onnx", searched,
            "It is the detector of insightface's buffalo_l model pack (buffalo_l.zip from "
            "https://github.com/deepinsight/insightface/releases, model-zoo); the antelopev2 pack "
            "names it scrfd_10g_bnkps.onnx. Unpack it so the file lies in <folder>/models/buffalo_l/ "
            "(ComfyUI: models/insightface/models/buffalo_l/).")
    try:
        session = onnx_session(str(path), device)
    except Exception as exc:
        raise DetectorWeightsInvalid(f"onnxruntime cannot open {path}: {exc}") from exc
    model = _describe(session, path)
    return Detector(name="scrfd", model=model, source=str(path), device=session_device(session), runner=run)


def _describe(session, path) -> ScrfdModel:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if not inputs or len(inputs[0].shape) != 4:
        raise DetectorWeightsInvalid(f"{path}: expected an NCHW image input, got {[i.shape for i in inputs]}")
    layout = LAYOUTS.get(len(outputs))
    if layout is None:
        raise DetectorWeightsInvalid(
            f"{path} has {len(outputs)} outputs; an SCRFD detector has 6, 9, 10 or 15 (is it a detector?)")
    strides, anchors, has_kps = layout
    if not has_kps:
        raise DetectorWeightsInvalid(
            f"{path} is an SCRFD detector without keypoint outputs ({len(outputs)} outputs); face "
            f"alignment needs the 5 landmarks. Use det_10g.onnx from buffalo_l (9 outputs).")
    for index, output in enumerate(outputs):
        width = (1, 4, 10)[index // len(strides)]
        last = output.shape[-1] if output.shape else None
        if len(output.shape) not in (2, 3) or (isinstance(last, int) and last != width):
            raise DetectorWeightsInvalid(
                f"{path}: output {index} ({output.name}) has shape {output.shape}, expected [N, {width}]")
    height, width = inputs[0].shape[2:4]
    fixed = all(isinstance(v, int) and v > 0 for v in (height, width))
    return ScrfdModel(session=session, input_name=inputs[0].name,
                      input_size=(width, height) if fixed else DEFAULT_INPUT_SIZE,
                      strides=strides, anchors=anchors)


def letterbox(rgb: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """The image resized into the top-left of a zero `size` (w, h) canvas, as insightface does."""
    width, height = size
    im_ratio = float(rgb.shape[0]) / rgb.shape[1]
    if im_ratio > float(height) / width:
        new_h, new_w = height, max(1, int(height / im_ratio))
    else:
        new_w, new_h = width, max(1, int(width * im_ratio))
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(rgb, (new_w, new_h))
    return canvas, float(new_h) / rgb.shape[0]


def _centres(rows: int, cols: int, stride: int, anchors: int) -> np.ndarray:
    centres = np.stack(np.mgrid[:rows, :cols][::-1], axis=-1).astype(np.float32) * stride
    return np.repeat(centres.reshape(-1, 2), anchors, axis=0)


def run(model: ScrfdModel, rgb: np.ndarray, threshold: float) -> RawDetections:
    canvas, det_scale = letterbox(rgb, model.input_size)
    blob = ((canvas.astype(np.float32) - 127.5) * (1.0 / 128.0)).transpose(2, 0, 1)[None]
    outs = model.session.run(None, {model.input_name: np.ascontiguousarray(blob)})
    outs = [o[0] if o.ndim == 3 else o for o in outs]
    n = len(model.strides)
    height, width = blob.shape[2:]
    scores_all, boxes_all, kps_all = [], [], []
    for level, stride in enumerate(model.strides):
        scores = outs[level].reshape(-1)
        centres = _centres(height // stride, width // stride, stride, model.anchors)
        if scores.shape[0] != centres.shape[0]:
            raise RuntimeError(f"SCRFD stride {stride} gave {scores.shape[0]} scores for "
                               f"{centres.shape[0]} anchors")
        pos = np.flatnonzero(scores >= threshold)
        dist = outs[level + n].reshape(-1, 4)[pos] * stride
        kps = outs[level + 2 * n].reshape(-1, 10)[pos] * stride
        c = centres[pos]
        boxes_all.append(np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1))
        kps_all.append(c[:, None, :] + kps.reshape(-1, 5, 2))
        scores_all.append(scores[pos])
    scores = np.concatenate(scores_all)
    if scores.size == 0:
        return empty_detections()
    boxes = np.concatenate(boxes_all) / det_scale
    points = np.concatenate(kps_all) / det_scale
    finite = np.isfinite(boxes).all(1) & np.isfinite(points).all((1, 2)) & np.isfinite(scores)
    boxes, points, scores = boxes[finite], points[finite], scores[finite]
    keep = nms(boxes, scores, NMS_IOU, offset=1.0)
    return boxes[keep], scores[keep], points[keep]
