"""RetinaFace (biubug6 / facexlib layout): input preparation, anchor priors and
decoding in numpy. Shared by the bundled ONNX runner and the facexlib runner.

Landmark order of the model (checked on real photos): image-left eye,
image-right eye, nose tip, image-left mouth corner, image-right mouth corner,
the pack's order, so no reordering is needed.
"""
from __future__ import annotations

import numpy as np

from .common import RawDetections, empty_detections, nms

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCE = (0.1, 0.2)
MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
NMS_IOU = 0.4
PRE_NMS_TOP_K = 5000
KEEP_TOP_K = 750


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) float32: BGR minus the training mean, as facexlib feeds it."""
    x = np.empty((1, 3) + rgb.shape[:2], np.float32)
    for plane, (channel, mean) in enumerate(zip((2, 1, 0), MEAN_BGR)):  # one plane at a time: fast
        np.subtract(rgb[:, :, channel], mean, out=x[0, plane], dtype=np.float32)
    return x


def priors(height: int, width: int) -> np.ndarray:
    """(N, 4) float32 anchors [cx, cy, w, h], normalised by the input size, in the
    order the network emits them: per level, row, column, then min size."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        rows, cols = -(-height // step), -(-width // step)
        cy, cx = np.meshgrid((np.arange(rows) + 0.5) * step / height,
                             (np.arange(cols) + 0.5) * step / width, indexing="ij")
        level = np.empty((rows, cols, len(sizes), 4), np.float32)
        level[..., 0] = cx[..., None]
        level[..., 1] = cy[..., None]
        level[..., 2] = np.array(sizes, np.float32) / width
        level[..., 3] = np.array(sizes, np.float32) / height
        out.append(level.reshape(-1, 4))
    return np.concatenate(out)


def decode(loc: np.ndarray, conf: np.ndarray, landmarks: np.ndarray, height: int, width: int,
           threshold: float) -> RawDetections:
    """Network outputs (batch of 1) -> faces in input pixels, after threshold and NMS.

    loc (1, N, 4), conf (1, N, 2) softmaxed, landmarks (1, N, 10)."""
    anchors = priors(height, width)
    loc, conf, landmarks = loc.reshape(-1, 4), conf.reshape(-1, 2), landmarks.reshape(-1, 10)
    if not loc.shape[0] == conf.shape[0] == landmarks.shape[0] == anchors.shape[0]:
        raise RuntimeError(
            f"RetinaFace output has {loc.shape[0]}/{conf.shape[0]}/{landmarks.shape[0]} rows for a "
            f"{width}x{height} input, expected {anchors.shape[0]} (one per prior)")
    scores = conf[:, 1]
    idx = np.flatnonzero(scores > threshold)
    if idx.size == 0:
        return empty_detections()
    idx = idx[np.argsort(-scores[idx], kind="stable")][:PRE_NMS_TOP_K]
    a = anchors[idx].astype(np.float64)
    centre, size = a[:, :2], a[:, 2:]
    l = loc[idx].astype(np.float64)
    box_centre = centre + l[:, :2] * VARIANCE[0] * size
    box_size = size * np.exp(np.clip(l[:, 2:] * VARIANCE[1], -50.0, 50.0))
    scale = np.array([width, height], np.float64)
    boxes = np.concatenate([box_centre - box_size / 2, box_centre + box_size / 2], axis=1) * np.tile(scale, 2)
    points = (centre[:, None, :] + landmarks[idx].astype(np.float64).reshape(-1, 5, 2)
              * VARIANCE[0] * size[:, None, :]) * scale
    scores = scores[idx].astype(np.float64)
    finite = np.isfinite(boxes).all(1) & np.isfinite(points).all((1, 2)) & np.isfinite(scores)
    boxes, points, scores = boxes[finite], points[finite], scores[finite]
    keep = nms(boxes, scores, NMS_IOU)[:KEEP_TOP_K]
    return boxes[keep], scores[keep], points[keep]
