"""Writing a restored photo so that it loses nothing the source held.

JPEG to JPEG: a copy of the source in the DCT domain with the restored blocks replaced
(jpeg_files), stored the way the source stores it (its EXIF orientation kept), so every block
away from the faces is the source's. Without jpeglib, or for a JPEG it cannot copy (CMYK, say),
the whole picture is encoded again by Pillow with the source's quantisation tables, subsampling
and metadata, still stored as the source is. Any other pair of formats: the upright pixels,
with the ICC profile, EXIF (orientation 1), XMP and comments that the target format can hold
(photo_metadata). Every file goes through gpen_arch.files: complete, or not there at all.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from gpen_arch.files import write_bytes

from . import jpeg_files
from .image_files import Changed, Decoded, Warn, fit_format, stored_box, to_stored
from .photo_metadata import encode_with_metadata, read_metadata, upright_exif

_JPEG = (".jpg", ".jpeg")


def write_restored(source: Path, target: Path, decoded: Decoded, pixels: np.ndarray,
                   changed: Sequence[Changed], warn: Warn | None = None) -> None:
    """Write `pixels` (the restored `decoded.pixels`, upright) to `target`, keeping what `source`
    holds besides its pixels; `changed` says where the restore wrote."""
    if target.suffix.lower() not in _JPEG or not _is_jpeg(source):
        metadata = upright_exif(read_metadata(source, warn))
        write_bytes(target, encode_with_metadata(target, pixels, metadata, warn))
        return
    stored = to_stored(fit_format(target, pixels), decoded.orientation)  # a view: only the faces' boxes are copied
    if jpeg_files.DCT_COPY:
        hw = pixels.shape[:2]
        moved = [Changed(stored_box(change.box, hw, decoded.orientation), to_stored(change.where, decoded.orientation))
                 for change in changed]
        try:
            write_bytes(target, jpeg_files.restored_jpeg(source, stored, moved))
            return
        except jpeg_files.NoDctCopy as why:
            if warn is not None:
                warn(f"{source.name}: encoded again with its own tables, not copied block by block, as {why}")
    write_bytes(target, encode_with_metadata(target, np.ascontiguousarray(stored), read_metadata(source, warn), warn))


def _is_jpeg(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(3) == b"\xff\xd8\xff"
