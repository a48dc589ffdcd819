"""What a photo file holds besides its pixels, read without decoding them, and written again.

`read_metadata` takes from the source, through Pillow's header parsing, the ICC profile, EXIF,
XMP and comment, a JPEG's quantisation tables and chroma subsampling, a TIFF's compression, and a PNG's ancillary chunks as they are (colour, text, physical size).
`encode_with_metadata` encodes restored pixels for a target format and puts back what that
format can hold. A piece that cannot be read is left out with one sentence to `warn`; it never
fails a restore.
"""
from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .image_files import ImageFileError, Warn, encode_image, fit_format

_EXIF_HEADER = b"Exif\x00\x00"
_XMP_KEY = "XML:com.adobe.xmp"
# A PNG's ancillary chunks that stay true of its pixels whatever the encoder (not sBIT, bKGD,
# tRNS or PLTE, which depend on how the encoder stores the colours).
_PNG_KEPT = {b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"pHYs", b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}
_PNG_COLOUR = {b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP"}  # must come before the pixels
_TIFF_COMPRESSIONS = {"raw", "tiff_lzw", "tiff_deflate", "tiff_adobe_deflate", "packbits"}
_ORIENTATION = 0x0112


@dataclass(frozen=True)
class PhotoMetadata:
    format: str | None = None  # Pillow's name of the source's format ("JPEG", "PNG", ...)
    icc: bytes | None = None
    exif: bytes | None = None  # with the "Exif\0\0" header, as Pillow gives and takes it
    xmp: bytes | None = None
    comment: bytes | None = None
    png_chunks: tuple[tuple[bytes, bytes], ...] = ()  # (type, data) of a PNG source, in file order
    quantization: dict | None = None  # a JPEG's tables, as Pillow's `quantization`
    subsampling: int = -1  # a JPEG's, as Pillow's get_sampling (-1: not one Pillow can write)
    compression: str | None = None  # a TIFF's, as Pillow names it


def read_metadata(path: Path, warn: Warn | None = None) -> PhotoMetadata:
    """What `path` holds besides its pixels; what cannot be read is left out, and `warn` told."""
    from PIL import Image, JpegImagePlugin

    lost: list[str] = []

    def take(what: str, read):
        try:
            return read()
        except Exception:  # noqa: BLE001 - a malformed segment of any kind: keep the rest
            lost.append(what)
            return None

    found = PhotoMetadata()
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore")  # Pillow's own about odd segments: `lost` says what matters
            info = image.info
            found = PhotoMetadata(
                format=image.format,
                icc=take("ICC profile", lambda: _bytes(info.get("icc_profile"))),
                exif=take("EXIF", lambda: _exif(info, image)),
                xmp=take("XMP", lambda: _bytes(info.get("xmp") or info.get(_XMP_KEY) or _tiff_xmp(image))),
                comment=take("comment", lambda: _bytes(info.get("comment"))),
                quantization=take("quantisation tables", lambda: dict(getattr(image, "quantization", None) or {})
                                  or None),
                subsampling=(take("chroma subsampling", lambda: JpegImagePlugin.get_sampling(image))
                             if image.format == "JPEG" else -1),
                compression=info.get("compression") if image.format == "TIFF" else None)
    except Exception:  # noqa: BLE001 - Pillow cannot open it (OpenCV could): nothing to keep
        lost.append("metadata")
    if found.format == "PNG":
        chunks = take("PNG chunks", lambda: _png_chunks(path))
        found = replace(found, png_chunks=tuple(chunks or ()))
        late_exif = next((data for kind, data in found.png_chunks if kind == b"eXIf"), None)
        if found.exif is None and late_exif:  # after the pixels, where Pillow looks only by decoding them
            found = replace(found, exif=_EXIF_HEADER + late_exif)
    if lost and warn is not None:
        warn(f"{path.name}: its {', '.join(lost)} could not be read, so the output is written without it")
    return found


def encode_with_metadata(path: Path, pixels: np.ndarray, metadata: PhotoMetadata,
                         warn: Warn | None = None) -> bytes | np.ndarray | list:
    """Pixels (as image_files.read_pixels gives them) encoded for the format of `path`, with what
    of `metadata` that format holds, as gpen_arch.files.write_bytes takes them (one buffer, or
    chunks: a large PNG is not copied to add its chunks). The EXIF orientation is written as it
    is in `metadata`."""
    suffix = path.suffix.lower()
    pixels = fit_format(path, pixels)
    space = b"GRAY" if pixels.ndim == 2 else b"RGB "
    if metadata.icc and metadata.icc[16:20] != space:  # a CMYK JPEG's profile, or grey made colour
        if warn is not None:
            warn(f"{path.name}: the source's ICC profile is for {metadata.icc[16:20].decode('latin-1').strip()} "
                 f"pixels, not these, so it is not written")
        metadata = replace(metadata, icc=None)
    if suffix == ".png":
        return _png(encode_image(path, pixels), metadata)
    if suffix in (".jpg", ".jpeg"):
        return _pillow(pixels, "JPEG", **_jpeg_options(metadata))
    if suffix == ".webp":
        return _pillow(pixels, "WEBP", lossless=True, exact=True, **_common(metadata))
    if suffix in (".tif", ".tiff"):
        if pixels.dtype == np.uint16 and pixels.ndim == 3:  # Pillow cannot write it: OpenCV's, with tags added
            if warn is not None and metadata.exif:
                warn(f"{path.name}: 16-bit colour TIFF is written without the source's EXIF")
            return _tiff_with_tags(encode_image(path, pixels).tobytes(), metadata)
        options = _common(metadata)
        xmp = options.pop("xmp", None)
        compression = metadata.compression if metadata.compression in _TIFF_COMPRESSIONS else "tiff_lzw"
        return _pillow(pixels, "TIFF", compression=compression, tiffinfo={700: xmp} if xmp else {}, **options)
    return encode_image(path, pixels)


def upright_exif(metadata: PhotoMetadata) -> PhotoMetadata:
    """`metadata` for pixels written upright: an EXIF orientation other than 1 set to 1."""
    if not metadata.exif:
        return metadata
    exif = _with_orientation(metadata.exif, 1)
    chunks = tuple((kind, _with_orientation(_EXIF_HEADER + data, 1)[len(_EXIF_HEADER):] if kind == b"eXIf" else data)
                   for kind, data in metadata.png_chunks)
    return replace(metadata, exif=exif, png_chunks=chunks)


def _common(metadata: PhotoMetadata) -> dict:
    options = {"icc_profile": metadata.icc, "exif": metadata.exif, "xmp": metadata.xmp}
    return {key: value for key, value in options.items() if value}


def _jpeg_options(metadata: PhotoMetadata) -> dict:
    options = _common(metadata)
    if metadata.comment:
        options["comment"] = metadata.comment
    if metadata.quantization:
        options["qtables"] = metadata.quantization
        if metadata.subsampling >= 0:
            options["subsampling"] = metadata.subsampling
    else:
        options["quality"] = 95  # OpenCV's default, which the pack wrote with before
    return options


def _pillow(pixels: np.ndarray, kind: str, **options) -> bytes:
    from PIL import Image

    if pixels.ndim == 3:
        pixels = pixels[..., [2, 1, 0, 3][:pixels.shape[2]]]
    image = Image.fromarray(np.ascontiguousarray(pixels))
    out = io.BytesIO()
    try:
        image.save(out, kind, **options)
    except (OSError, ValueError) as exc:
        raise ImageFileError(f"cannot encode the image as {kind}: {exc}") from exc
    return out.getvalue()


def _png(encoded: np.ndarray, metadata: PhotoMetadata) -> list:
    """OpenCV's PNG with the source's chunks (a PNG's own, or those made of another format's
    ICC, EXIF, XMP and comment) after its header; colour chunks before the pixels, as PNG asks."""
    chunks = list(metadata.png_chunks) if metadata.format == "PNG" else _png_chunks_of(metadata)
    header_end = 8 + 8 + 13 + 4  # signature, then IHDR
    extra = b"".join(_chunk(kind, data) for kind, data in chunks)
    return [encoded[:header_end], extra, encoded[header_end:]]


def _tiff_with_tags(encoded: bytes, metadata: PhotoMetadata) -> bytes:
    """A TIFF with the ICC profile (tag 34675) and XMP (tag 700) added to its first IFD: the IFD is
    written again after the file's end with them, so every offset already in the file stays true."""
    added = {tag: (kind, data) for tag, kind, data in ((34675, 7, metadata.icc), (700, 1, metadata.xmp)) if data}
    order = {b"II": "<", b"MM": ">"}.get(encoded[:2])
    if not added or order is None or struct.unpack(order + "H", encoded[2:4])[0] != 42:
        return encoded
    first = struct.unpack(order + "I", encoded[4:8])[0]
    count = struct.unpack(order + "H", encoded[first:first + 2])[0]
    entries = {struct.unpack(order + "H", encoded[at:at + 2])[0]: encoded[at:at + 12]
               for at in range(first + 2, first + 2 + 12 * count, 12)}
    following = encoded[first + 2 + 12 * count:first + 6 + 12 * count]
    out = bytearray(encoded)
    for tag, (kind, data) in added.items():
        out += b"\x00" * (len(out) & 1)  # values start on a word boundary
        entries[tag] = struct.pack(order + "HHII", tag, kind, len(data), len(out))
        out += data
    out += b"\x00" * (len(out) & 1)
    out[4:8] = struct.pack(order + "I", len(out))
    out += struct.pack(order + "H", len(entries)) + b"".join(entries[tag] for tag in sorted(entries)) + following
    return bytes(out)


def _png_chunks_of(metadata: PhotoMetadata) -> list[tuple[bytes, bytes]]:
    chunks = []
    if metadata.icc:
        chunks.append((b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(metadata.icc)))
    if metadata.exif:
        chunks.append((b"eXIf", metadata.exif[len(_EXIF_HEADER):] if metadata.exif.startswith(_EXIF_HEADER)
                       else metadata.exif))
    if metadata.xmp:
        chunks.append((b"iTXt", _XMP_KEY.encode() + b"\x00\x00\x00\x00\x00" + metadata.xmp))
    if metadata.comment:
        chunks.append((b"tEXt", b"Comment\x00" + metadata.comment.replace(b"\x00", b"")))  # PNG text is Latin-1
    return chunks


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """The kept ancillary chunks of a PNG file, read chunk by chunk, skipping over the pixels."""
    chunks = []
    with open(path, "rb") as file:
        file.seek(8)
        while header := file.read(8):
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            if kind == b"IEND":
                break
            if kind in _PNG_KEPT:
                data = file.read(size)
                if len(data) < size:
                    break
                chunks.append((kind, data))
                file.seek(4, 1)
            else:
                file.seek(size + 4, 1)
    # Colour chunks first: the copy puts them all before the pixels.
    return sorted(chunks, key=lambda chunk: chunk[0] not in _PNG_COLOUR)


def _exif(info: dict, image) -> bytes | None:
    exif = info.get("exif")
    if not exif:
        from PIL import Image

        # The base class's getexif: PNG's own decodes the whole image to look past the pixels.
        found = Image.Image.getexif(image)
        exif = found.tobytes() if len(found) else None
    if exif and not exif.startswith(_EXIF_HEADER):
        exif = _EXIF_HEADER + exif
    return _bytes(exif)


def _tiff_xmp(image) -> bytes | None:
    return image.tag_v2.get(700) if image.format == "TIFF" else None


def _with_orientation(exif: bytes, orientation: int) -> bytes:
    """EXIF bytes (with the "Exif\0\0" header) with IFD0's orientation changed in place: all
    else, maker notes and their offsets included, stays byte for byte."""
    tiff = len(_EXIF_HEADER) if exif.startswith(_EXIF_HEADER) else 0
    order = {b"II": "<", b"MM": ">"}.get(exif[tiff:tiff + 2])
    if order is None:
        return exif
    ifd = tiff + struct.unpack(order + "I", exif[tiff + 4:tiff + 8])[0]
    if ifd + 2 > len(exif):
        return exif
    for index in range(struct.unpack(order + "H", exif[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(exif):
            break
        tag, kind = struct.unpack(order + "HH", exif[entry:entry + 4])
        if tag == _ORIENTATION and kind == 3:
            return exif[:entry + 8] + struct.pack(order + "H", orientation) + exif[entry + 10:]
    return exif


def _bytes(value) -> bytes | None:
    if value is None or value == b"" or value == "":
        return None
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)
