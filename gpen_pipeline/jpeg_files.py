"""A restored JPEG written as a copy of its source in the DCT domain, so only the faces change.

Decoding a JPEG and encoding it again changes every pixel a little (a second quantisation) and
often the chroma subsampling. Here the source's quantised DCT coefficients are kept as they are,
with its quantisation tables, sampling factors and every APPn and COM segment (JFIF, EXIF with
its orientation, XMP, ICC profile, comments) but an MPO's index of the images after the first,
which are not written. Only the 8x8 blocks (per component, in its own
sampling grid) that hold restored pixels are replaced, by the blocks of the restored pixels
encoded with the source's own tables. A block is replaced when a restored pixel lies in it or
within one sample of that component of it, so restored pixels at a block edge are decoded from
restored neighbours too.

What decodes differently is then the replaced blocks, plus one pixel around a subsampled
component's blocks, where a decoder's "fancy" upsampling blends a chroma sample with its
neighbour. Everything else decodes to exactly the source's pixels.

jpeglib (libjpeg's coefficient interface) does the reading and writing. Where it cannot be
imported, DCT_COPY is False and callers re-encode the whole picture (photo_files).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .geometry import Roi
from .image_files import Changed, library_said

try:
    import jpeglib
except Exception:  # noqa: BLE001 - ImportError, or its C library failing to load (OSError)
    jpeglib = None

# The switch between the DCT copy and a whole re-encode; tests turn it off to take the other path.
DCT_COPY = jpeglib is not None
# APPn and COM segments jpeglib keeps (its MAX_MARKER): a file with more is re-encoded instead.
_MAX_SEGMENTS = 50
_JFIF = b"JFIF\x00"


class NoDctCopy(Exception):
    """This source cannot be copied in the DCT domain; the message says why, as a clause."""


def restored_jpeg(source: Path, stored: np.ndarray, changed: Sequence[Changed]) -> list[bytes | memoryview]:
    """The JPEG file `source` with the blocks that `changed` touches encoded from `stored` (its
    pixels as the file stores them, not turned upright: HxW grey or HxWx3 BGR uint8; `changed` in
    the same coordinates), as chunks for gpen_arch.files.write_bytes. Raises NoDctCopy where this
    cannot be done."""
    if not DCT_COPY:
        raise NoDctCopy("jpeglib is not installed")
    with open(source, "rb") as file:
        header = file.read(1 << 20)
    if _segment_count(header) > _MAX_SEGMENTS:
        raise NoDctCopy(f"it has more than {_MAX_SEGMENTS} metadata segments")
    with tempfile.TemporaryDirectory(prefix="gpen-jpeg-") as folder:
        original = _read(source)
        _check(original, stored)
        samples = np.asarray(original.samp_factor, np.int64).reshape(-1, 2)  # (vertical, horizontal) each
        coefficients = [original.Y, original.Cb, original.Cr][:len(samples)]
        most = samples.max(axis=0)
        if np.any(most % samples):
            raise NoDctCopy(f"its sampling factors {samples.tolist()} are not whole ratios")
        mcu = 8 * most
        for change in changed:
            crop = _aligned(change.box, most, mcu, stored.shape[:2])
            encoded = _encode(stored[crop.slices], original, Path(folder) / "region.jpg")
            where = np.zeros((crop.y1 - crop.y0, crop.x1 - crop.x0), np.uint8)
            where[change.box.within(crop)] = change.where
            for blocks, new, sampling in zip(coefficients, [encoded.Y, encoded.Cb, encoded.Cr], samples):
                scale = most // sampling
                touched = _touched_blocks(where, scale)
                y0, x0 = crop.y0 // (8 * scale[0]), crop.x0 // (8 * scale[1])
                target = blocks[y0:y0 + touched.shape[0], x0:x0 + touched.shape[1]]
                np.copyto(target, new, where=touched[..., None, None])
        jfif = [m for m in original.markers if m.content.startswith(_JFIF)]
        # An MPF index points at images after the first one's end, which the copy does not carry.
        original.markers = [m for m in original.markers if not m.content.startswith((_JFIF, b"MPF\x00"))]
        written = _write(original, Path(folder) / "out.jpg", [])
        # Huffman tables as the source has them: libjpeg's standard ones where it used those, else
        # tables made for the picture (an optimised or progressive source), so the size stays close.
        if not _huffman_tables(header) <= _huffman_tables(written):
            written = _write(original, Path(folder) / "out.jpg", ["OPTIMIZE_CODING"])
        return _with_jfif(written, jfif[0].content if jfif else None)


def _write(original, path: Path, flags: list[str]) -> bytes:
    _, said = library_said(lambda: original.write_dct(str(path), flags=flags))
    if not path.is_file() or path.stat().st_size == 0:
        raise NoDctCopy(f"libjpeg could not write the copy ({said or 'no reason given'})")
    return path.read_bytes()


def _read(source: Path):
    try:
        original, _ = library_said(lambda: jpeglib.read_dct(str(source)))
        library_said(original.load)
    except (OSError, ValueError) as exc:
        raise NoDctCopy(f"libjpeg cannot read its coefficients ({' '.join(str(exc).split())[:200]})") from exc
    return original


def _check(original, stored: np.ndarray) -> None:
    space = getattr(original.jpeg_color_space, "name", str(original.jpeg_color_space))
    components = 3 if space == "JCS_YCbCr" else 1 if space == "JCS_GRAYSCALE" else 0
    if not components:
        raise NoDctCopy(f"its colour space is {space}, not YCbCr or grey")
    if (stored.ndim == 3) != (components == 3):
        raise NoDctCopy("the restored faces are in colour and the file is grey")
    if stored.shape[:2] != (original.height, original.width):
        raise NoDctCopy("its coefficients are not the size of its decoded pixels")


def _aligned(box: Roi, grow: np.ndarray, mcu: np.ndarray, hw: tuple[int, int]) -> Roi:
    """`box` grown by `grow` (rows, columns) and out to the grid of whole MCUs, within the image."""
    (gy, gx), (my, mx), (h, w) = grow, mcu, hw
    y0, x0 = max(0, box.y0 - gy) // my * my, max(0, box.x0 - gx) // mx * mx
    y1, x1 = min(h, -(-(box.y1 + gy) // my) * my), min(w, -(-(box.x1 + gx) // mx) * mx)
    return Roi(int(x0), int(y0), int(x1), int(y1))


def _touched_blocks(where: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Which blocks of a component sampled every `scale` (rows, columns) pixels hold a set pixel of
    `where` or lie within one of its samples of one."""
    sy, sx = int(scale[0]), int(scale[1])
    grown = cv2.dilate(where, np.ones((2 * sy + 1, 2 * sx + 1), np.uint8))
    fy, fx = 8 * sy, 8 * sx
    rows, columns = -(-grown.shape[0] // fy), -(-grown.shape[1] // fx)
    padded = np.zeros((rows * fy, columns * fx), bool)
    padded[:grown.shape[0], :grown.shape[1]] = grown > 0
    return padded.reshape(rows, fy, columns, fx).any(axis=(1, 3))


def _encode(pixels: np.ndarray, original, path: Path):
    """Coefficients of `pixels` encoded as `original` is: its tables, its sampling."""
    spatial = pixels[..., None] if pixels.ndim == 2 else np.ascontiguousarray(pixels[..., ::-1])
    image = jpeglib.from_spatial(np.ascontiguousarray(spatial))
    image.samp_factor = original.samp_factor
    library_said(lambda: image.write_spatial(str(path), qt=original.qt, quant_tbl_no=original.quant_tbl_no))
    encoded = jpeglib.read_dct(str(path))
    library_said(encoded.load)
    return encoded


def _with_jfif(data: bytes, jfif: bytes | None) -> list[bytes | memoryview]:
    """libjpeg's output with its own JFIF segment replaced by the source's (its density), or
    dropped where the source had none (a camera's EXIF file)."""
    own = data[2:4] == b"\xff\xe0" and data[6:11] == _JFIF
    rest = memoryview(data)[4 + int.from_bytes(data[4:6], "big") if own else 2:]
    kept = b"" if jfif is None else b"\xff\xe0" + (len(jfif) + 2).to_bytes(2, "big") + jfif
    return [data[:2], kept, rest]


def _segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of the segments before the first scan of a JPEG's bytes."""
    found, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        kind = data[at + 1]
        if kind == 0xDA:  # start of scan: the header is all before it
            break
        if kind == 0xFF:  # fill byte
            at += 1
            continue
        end = at + 2 + int.from_bytes(data[at + 2:at + 4], "big")
        found.append((kind, data[at + 4:end]))
        at = end
    return found


def _segment_count(data: bytes) -> int:
    """APPn and COM segments of a JPEG's header."""
    return sum(0xE0 <= kind <= 0xEF or kind == 0xFE for kind, _ in _segments(data))


def _huffman_tables(data: bytes) -> set[bytes]:
    """The Huffman tables of a JPEG's header, each as its class and id, code counts and values."""
    tables = set()
    for kind, payload in _segments(data):
        at = 0
        while kind == 0xC4 and at + 17 <= len(payload):
            end = at + 17 + sum(payload[at + 1:at + 17])
            tables.add(payload[at:end])
            at = end
    return tables
