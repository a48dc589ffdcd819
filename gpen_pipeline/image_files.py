"""Image files in and out, kept as the file holds them.

A file is decoded to its own pixels (`Decoded.pixels`): uint8 or uint16, grey (HxW), BGR or BGRA
(OpenCV's order), turned upright by its EXIF orientation as ComfyUI's LoadImage turns it. Those
pixels are never made float as a whole: the pipeline sees a uint8 RGB copy for finding faces
(`detection_view`) and the pipeline's RGB of the face regions only (`rgb_region`, `put_back`;
regions.py). Writing keeps the grey, the bit depth and the alpha wherever the format has them,
and goes through gpen_arch.files, so a target is replaced only by a complete file.
"""
from __future__ import annotations

import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import cv2
import numpy as np

from gpen_arch.files import write_bytes

from .geometry import Roi

# What a caller is told of a file that decodes with a warning (a truncated JPEG, a bad PNG chunk).
Warn = Callable[[str], None]
T = TypeVar("T")

# OpenCV refuses larger images before decoding them (its CV_IO_MAX_IMAGE_* defaults).
_MAX_PIXELS = int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30))
_MAX_SIDE = 1 << 20
# Rows converted at a time, so no conversion needs a whole-image temporary.
_BLOCK_VALUES = 1 << 20
_SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")
_NO_ALPHA_SUFFIXES = (".jpg", ".jpeg", ".bmp")


class ImageFileError(ValueError):
    """An image file that cannot be read or written; the message names it and says why."""


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # upright; uint8 or uint16; HxW grey, HxWx3 BGR or HxWx4 BGRA
    frames: int = 1  # frames or pages in the file; only the first is decoded
    orientation: int = 1  # the EXIF orientation applied to make the pixels upright (1: stored upright)

    @property
    def turned(self) -> bool:
        """The pixels are not stored this way in the file."""
        return self.orientation != 1


@dataclass(frozen=True)
class Changed:
    """Pixels a restore may have written: those set in `where` (bool, the box's shape) of `box`."""
    box: Roi
    where: np.ndarray


def read_pixels(path: Path, warn: Warn | None = None) -> Decoded:
    """Decode an image file as it holds its pixels, upright. Raises ImageFileError saying why not."""
    if not path.is_file():
        raise ImageFileError(f"cannot read image {path}: not a file")
    size, bytes_per_pixel, orientation, frames = _header(path)
    if size is not None:
        _check_decodable(path, size, bytes_per_pixel)
    data = np.fromfile(str(path), np.uint8)
    try:
        image, said = _decode(data) if data.size else (None, "")
    except cv2.error as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise ImageFileError(f"cannot read image {path}: OpenCV failed to decode it ({first.strip()[:200]})") from exc
    except MemoryError as exc:
        raise ImageFileError(f"cannot read image {path}: not enough memory to decode it") from exc
    del data
    if image is None:
        detail = f" ({said})" if said else ""
        raise ImageFileError(f"cannot read image {path}: not an image file OpenCV can decode{detail}")
    if said and warn is not None:
        warn(f"{path.name}: the decoder warned: {said}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.dtype not in (np.uint8, np.uint16) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise ImageFileError(f"cannot read image {path}: {image.dtype} pixels in {channels} channel(s) are not "
                             "supported; save it as 8- or 16-bit grey, RGB or RGBA")
    upright = _upright(image, orientation)
    return Decoded(upright, frames, orientation if upright is not image else 1)


def detection_view(pixels: np.ndarray) -> np.ndarray:
    """The whole image as HxWx3 RGB uint8, for finding faces: 3 bytes a pixel, made a block of rows
    at a time (16 bits are rounded to 8 as the pipeline rounds [0, 1] floats)."""
    h, w = pixels.shape[:2]
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, _BLOCK_VALUES // max(1, w * 3))
    for y in range(0, h, rows):
        out[y:y + rows] = _rgb(_as_u8(pixels[y:y + rows]))
    return out


def rgb_region(pixels: np.ndarray) -> np.ndarray:
    """A region of the file's pixels as the pipeline takes it: HxWx3 RGB, uint8, or float32 in [0, 1]
    for 16 bits. Alpha stays in the file's pixels, which the pipeline never changes anyway."""
    rgb = _rgb(pixels)
    if rgb.dtype == np.uint16:
        rgb = rgb.astype(np.float32)
        rgb /= 65535.0
    return rgb


def put_back(pixels: np.ndarray, rgb: np.ndarray, where: np.ndarray) -> None:
    """Write the pipeline's RGB (as `rgb_region` gives it) into the file's pixels where `where` is set.
    A grey file takes the first channel: faces pasted into it are grey (their channels are equal)."""
    if pixels.dtype == np.uint16:
        rgb = np.clip(np.rint(rgb * 65535.0), 0, 65535).astype(np.uint16)
    if pixels.ndim == 2:
        np.copyto(pixels, rgb[..., 0], where=where)
    else:
        np.copyto(pixels[..., :3], rgb[..., ::-1], where=where[..., None])


def as_colour(pixels: np.ndarray) -> np.ndarray:
    """A grey image as BGR, for pasting coloured faces into it (a colorized face, keep_gray off)."""
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels


def read_mask(path: Path, shape: tuple[int, int], warn: Warn | None = None) -> np.ndarray:
    """A mask image as HxW float32 in [0, 1] (the mean of its colours), resized to `shape` (bilinear)."""
    pixels = read_pixels(path, warn).pixels
    colour = pixels if pixels.ndim == 2 else pixels[..., :3]
    mask = colour.astype(np.float32) if colour.ndim == 2 else colour.mean(axis=2, dtype=np.float32)
    mask /= 65535.0 if pixels.dtype == np.uint16 else 255.0
    if mask.shape != tuple(shape):
        mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return mask


def write_image(path: Path, pixels: np.ndarray) -> None:
    """Encode a file's pixels (as `read_pixels` gives them) by the suffix of `path` and write them
    (see `encode_image`). The target is replaced only once the new file is complete."""
    write_bytes(path, encode_image(path, pixels))


def encode_image(path: Path, pixels: np.ndarray) -> np.ndarray:
    """A file's pixels encoded by the suffix of `path`, with OpenCV's defaults: 16 bits where the
    format has them (PNG, TIFF), else rounded to 8; alpha dropped only where the format has none
    (JPEG, BMP)."""
    suffix = path.suffix.lower()
    pixels = fit_format(path, pixels)
    try:
        ok, encoded = cv2.imencode(suffix, pixels)
    except cv2.error as exc:
        ok, encoded = False, exc
    if not ok:
        raise ImageFileError(f"cannot write {path}: OpenCV cannot encode this image as '{path.suffix}'")
    return encoded


def fit_format(path: Path, pixels: np.ndarray) -> np.ndarray:
    """The pixels as the format of `path` can hold them: 16 bits rounded to 8 where it has no 16
    bits, alpha dropped where it has none."""
    suffix = path.suffix.lower()
    if pixels.dtype == np.uint16 and suffix not in _SIXTEEN_BIT_SUFFIXES:
        pixels = _as_u8(pixels)
    if pixels.ndim == 3 and pixels.shape[2] == 4 and suffix in _NO_ALPHA_SUFFIXES:
        pixels = pixels[..., :3]
    return pixels


def copy_file(source: Path, target: Path) -> None:
    """`source` byte for byte at `target`, replaced only once complete (images without faces)."""
    write_bytes(target, _chunks(source))


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    try:
        with open(path, "rb") as src:
            while chunk := src.read(size):
                yield chunk
    except OSError as exc:  # a read error: not to be reported as a write error of the target
        raise ImageFileError(f"cannot read image {path}: {exc.strerror or exc}") from exc


def _header(path: Path) -> tuple[tuple[int, int] | None, int, int, int]:
    """(width, height) or None, bytes per decoded pixel, EXIF orientation and frame count, from the
    file's header (Pillow reads no pixel to tell them); (None, 0, 1, 1) for what Pillow cannot open."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    # Pillow's decompression-bomb guard would refuse what OpenCV decodes; _check_decodable is ours.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore")
            # The base class's getexif: PNG's own would decode the whole image to look past the pixels.
            orientation = Image.Image.getexif(image).get(0x0112, 1)
            frames = getattr(image, "n_frames", 1)
            bands = len(image.getbands())
            depth = 2 if image.mode in ("I", "F") or "16" in image.mode else 1
            return image.size, bands * depth, orientation if orientation in range(1, 9) else 1, frames
    except Exception:  # noqa: BLE001 - Pillow raises many kinds; OpenCV then has its say
        return None, 0, 1, 1
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _check_decodable(path: Path, size: tuple[int, int], bytes_per_pixel: int) -> None:
    width, height = size
    if width * height <= _MAX_PIXELS and max(width, height) <= _MAX_SIDE:
        return
    # The decoder holds two copies while it decodes, then the image and a 3-byte copy for finding faces.
    bytes_per_pixel = max(bytes_per_pixel, 1)
    need = width * height * max(2 * bytes_per_pixel, bytes_per_pixel + 3) / 2 ** 30 + 1
    raise ImageFileError(
        f"cannot read image {path}: {width}x{height} ({width * height / 1e9:.2f} gigapixels) is beyond "
        f"OpenCV's decoder limits ({_MAX_PIXELS / 1e9:.2f} gigapixels, {_MAX_SIDE} pixels a side); split the "
        f"image, or raise the limit with the environment variable OPENCV_IO_MAX_IMAGE_PIXELS if at least "
        f"{need:.0f} GiB of memory is free")


# How the pixels stored in a file follow from the upright ones, per EXIF orientation: rows
# flipped, columns flipped, then transposed (Pillow's exif_transpose undoes it).
_STORED = {2: (False, True, False), 3: (True, True, False), 4: (True, False, False), 5: (False, False, True),
           6: (False, True, True), 7: (True, True, True), 8: (True, False, True)}


def _upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels as the EXIF orientation says they are shown: `to_stored` undone (transposed back,
    then unflipped)."""
    if orientation not in _STORED:
        return image
    rows, columns, transpose = _STORED[orientation]
    image = image.swapaxes(0, 1) if transpose else image
    return np.ascontiguousarray(image[::-1 if rows else 1, ::-1 if columns else 1])


def to_stored(array: np.ndarray, orientation: int) -> np.ndarray:
    """Upright pixels (or a mask) turned back the way a file of this EXIF orientation stores them:
    a view, undoing what `read_pixels` did."""
    rows, columns, transpose = _STORED.get(orientation, (False, False, False))
    array = array[::-1 if rows else 1, ::-1 if columns else 1]
    return array.swapaxes(0, 1) if transpose else array


def stored_box(box: Roi, hw: tuple[int, int], orientation: int) -> Roi:
    """A box of the upright image of size `hw` in the pixels the file stores (see `to_stored`)."""
    rows, columns, transpose = _STORED.get(orientation, (False, False, False))
    h, w = hw
    y0, y1 = (h - box.y1, h - box.y0) if rows else (box.y0, box.y1)
    x0, x1 = (w - box.x1, w - box.x0) if columns else (box.x0, box.x1)
    return Roi(y0, x0, y1, x1) if transpose else Roi(x0, y0, x1, y1)


def _as_u8(pixels: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 rounded (x / 257, half up, as [0, 1] floats round), a block of rows at a time."""
    if pixels.dtype == np.uint8:
        return pixels
    out = np.empty(pixels.shape, np.uint8)
    rows = max(1, _BLOCK_VALUES // max(1, pixels[0].size))
    for y in range(0, pixels.shape[0], rows):
        out[y:y + rows] = (pixels[y:y + rows].astype(np.uint32) + 128) // 257
    return out


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """HxWx3 RGB of a grey, BGR or BGRA image, same dtype."""
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def _decode(data: np.ndarray) -> tuple[np.ndarray | None, str]:
    """cv2.imdecode, with what libpng/libjpeg print straight to stderr caught and returned as one line."""
    return library_said(lambda: cv2.imdecode(data, cv2.IMREAD_UNCHANGED))


def library_said(call: Callable[[], T]) -> tuple[T, str]:
    """call(), and what a C library it calls printed straight to stderr meanwhile, as one line."""
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            result = call()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        said = " ".join(sink.read().decode("utf-8", "replace").split())[:300]
    return result, said
