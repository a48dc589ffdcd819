"""Image files in and out, as the pipeline takes images: RGB(A), uint8, or float32 in [0, 1] for
16-bit files (which are written back as 16 bits)."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

# What a caller is told of a file that decodes with a warning (a truncated JPEG, a bad PNG chunk).
Warn = Callable[[str], None]


class ImageFileError(ValueError):
    """An image file that cannot be read or written; the message names it and says why."""


def read_image(path: Path, warn: Warn | None = None) -> np.ndarray:
    """HxWx3 RGB or HxWx4 RGBA: uint8, or float32 in [0, 1] for 16-bit files. Grey files come as RGB."""
    data = np.fromfile(str(path), np.uint8) if path.is_file() else None
    image, said = _decode(data) if data is not None and data.size else (None, "")
    if image is None:
        detail = f" ({said})" if said else ""
        raise ImageFileError(f"cannot read image {path}: not an image file OpenCV can decode{detail}")
    if said and warn is not None:
        warn(f"{path.name}: the decoder warned: {said}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    else:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
    if image.dtype == np.uint16:
        image = image.astype(np.float32) / 65535.0
    elif image.dtype != np.uint8:
        raise ImageFileError(f"cannot read image {path}: {image.dtype} pixels are not supported")
    return image


def read_mask(path: Path, shape: tuple[int, int], warn: Warn | None = None) -> np.ndarray:
    """A mask image as HxW float32 in [0, 1] (the mean of its RGB), resized to `shape` (bilinear)."""
    image = read_image(path, warn)
    mask = image[..., :3].mean(axis=2, dtype=np.float32)
    if image.dtype == np.uint8:
        mask /= 255.0
    if mask.shape != tuple(shape):
        mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return mask


def write_image(path: Path, image: np.ndarray) -> None:
    """Write `image` (as read_image gives them) by the suffix of `path`: float images as 16 bits where
    the format has them (PNG, TIFF); alpha is dropped only where the format has none (JPEG, BMP)."""
    if image.dtype != np.uint8:
        scale = 65535.0 if path.suffix.lower() in (".png", ".tif", ".tiff") else 255.0
        image = np.clip(np.rint(image * scale), 0, scale).astype(np.uint16 if scale > 255 else np.uint8)
    code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
    if image.shape[2] == 4 and path.suffix.lower() in (".jpg", ".jpeg", ".bmp"):
        image, code = image[..., :3], cv2.COLOR_RGB2BGR
    ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(image, code))
    if not ok:
        raise ImageFileError(f"cannot write {path}: OpenCV has no encoder for '{path.suffix}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded.tofile(str(path))


def _decode(data: np.ndarray) -> tuple[np.ndarray | None, str]:
    """cv2.imdecode, with what libpng/libjpeg print straight to stderr caught and returned as one line."""
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        said = " ".join(sink.read().decode("utf-8", "replace").split())[:300]
    return image, said
