"""Photo files that lose nothing: a restored JPEG is its source with only the faces' blocks
replaced (tables, subsampling, ICC, EXIF, XMP, comments and orientation kept), PNG/TIFF/WebP keep
their bit depth and metadata, and odd metadata never fails a restore.

Each case restores a real photo with the random 64 px fixture GPEN and the bundled detector,
through the pieces of gpen_pipeline.file_restore.restore_file (read_pixels, enhance_pixels,
write_restored), so that the test knows which pixels the restore wrote.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from gpen_pipeline import jpeg_files
from gpen_pipeline.file_restore import enhance_pixels, restore_file
from gpen_pipeline.image_files import read_pixels
from gpen_pipeline.photo_files import write_restored

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
COMMENT = b"scanned by hand"
SUBSAMPLING = {"4:4:4": 0, "4:2:0": 2}
# A 4:2:0 decoder's "fancy" upsampling blends each chroma sample with its neighbour: a replaced
# 16x16 chroma block changes one more pixel around it.
REACH = {"4:4:4": 8 + 1, "4:2:0": 16 + 2 + 1}


def jpeg_with_metadata(path: Path, rgb: np.ndarray, subsampling: str, orientation: int = 1) -> Path:
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x010F] = "GPEN test camera"
    exif[0x0112] = orientation
    image.save(path, quality=90, subsampling=SUBSAMPLING[subsampling], icc_profile=ICC, exif=exif.tobytes(),
               comment=COMMENT, xmp=XMP)
    return path


def restored(source: Path, target: Path, model, detector, warn=None):
    """restore_file's steps, returning the upright map of the pixels the restore wrote."""
    decoded = read_pixels(source)
    result = enhance_pixels(decoded.pixels.copy(), model, detector)
    assert result.faces == 1
    write_restored(source, target, decoded, result.pixels, result.changed, warn)
    written = np.zeros(decoded.pixels.shape[:2], np.uint8)
    for change in result.changed:
        written[change.box.slices] |= change.where
    return written


def stored_pixels(path: Path) -> np.ndarray:
    """A JPEG's pixels as it stores them (no EXIF turn), decoded by OpenCV's libjpeg."""
    return cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION).astype(np.int16)


def near(written: np.ndarray, reach: int) -> np.ndarray:
    return cv2.dilate(written, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0


@pytest.fixture(scope="module")
def restored_jpegs(tmp_path_factory, s64_model, detector, astronaut):
    """(source, output, written map) of the astronaut as a 4:4:4 and a 4:2:0 JPEG with metadata."""
    folder = tmp_path_factory.mktemp("jpegs")
    made = {}
    for kind in SUBSAMPLING:
        source = jpeg_with_metadata(folder / f"in-{kind[-1]}.jpg", astronaut, kind)
        target = folder / f"out-{kind[-1]}.jpg"
        made[kind] = source, target, restored(source, target, s64_model, detector)
    return made


needs_jpeglib = pytest.mark.skipif(not jpeg_files.DCT_COPY, reason="jpeglib is not installed")


@needs_jpeglib
@pytest.mark.parametrize("kind", list(SUBSAMPLING))
def test_untouched_blocks_decode_identically(restored_jpegs, kind):
    source, target, written = restored_jpegs[kind]
    differ = (stored_pixels(source) != stored_pixels(target)).any(axis=2)
    assert differ[written > 0].any()  # the face did change
    assert not differ[~near(written, REACH[kind])].any()
    assert differ.sum() < 1.5 * near(written, REACH[kind]).sum()


@needs_jpeglib
@pytest.mark.parametrize("kind", list(SUBSAMPLING))
def test_untouched_blocks_are_the_sources_coefficients(restored_jpegs, kind):
    import jpeglib

    source, target, written = restored_jpegs[kind]
    before, after = jpeglib.read_dct(str(source)), jpeglib.read_dct(str(target))
    scale = 2 if kind == "4:2:0" else 1
    for component, side in (("Y", 8), ("Cb", 8 * scale), ("Cr", 8 * scale)):
        a, b = getattr(before, component), getattr(after, component)
        assert a.shape == b.shape
        # A block away from every written pixel (more than one sample of its component) is copied.
        far = ~near(written, scale)
        rows, columns = a.shape[:2]
        padded = np.zeros((rows * side, columns * side), bool)
        padded[:far.shape[0], :far.shape[1]] = far
        padded[far.shape[0]:], padded[:, far.shape[1]:] = True, True
        untouched = padded.reshape(rows, side, columns, side).all(axis=(1, 3))
        assert 0 < untouched.sum() < untouched.size
        np.testing.assert_array_equal(a[untouched], b[untouched])


@pytest.mark.parametrize("kind", list(SUBSAMPLING))
def test_tables_subsampling_and_metadata_survive(restored_jpegs, kind):
    source, target, _ = restored_jpegs[kind]
    with Image.open(source) as before, Image.open(target) as after:
        assert after.quantization == before.quantization
        assert JpegImagePlugin.get_sampling(after) == SUBSAMPLING[kind]
        assert after.info["icc_profile"] == ICC
        assert after.info["exif"] == before.info["exif"]
        assert after.info["xmp"] == XMP
        assert after.info["comment"] == COMMENT


def test_output_size_stays_close_to_the_input(restored_jpegs):
    for source, target, _ in restored_jpegs.values():
        assert 0.8 < target.stat().st_size / source.stat().st_size < 1.1


@needs_jpeglib
def test_a_sideways_jpeg_is_stored_as_it_came_with_its_orientation(tmp_path, s64_model, detector, astronaut):
    stored = np.ascontiguousarray(np.rot90(astronaut))  # orientation 6 shows it upright
    source = jpeg_with_metadata(tmp_path / "phone.jpg", stored, "4:2:0", orientation=6)
    written = restored(source, tmp_path / "out.jpg", s64_model, detector)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.getexif()[0x0112] == 6
        assert out.size == (stored.shape[1], stored.shape[0])
    differ = (stored_pixels(source) != stored_pixels(tmp_path / "out.jpg")).any(axis=2)
    written_stored = np.ascontiguousarray(np.rot90(written))
    assert differ[written_stored > 0].any()
    assert not differ[~near(written_stored, REACH["4:2:0"])].any()


def test_a_jpeg_without_faces_stays_byte_identical(tmp_path, s64_model, detector):
    import skimage.data

    source = jpeg_with_metadata(tmp_path / "cup.jpg", skimage.data.coffee(), "4:4:4")
    result = restore_file(source, tmp_path / "out.jpg", s64_model, detector)
    assert result.faces == 0 and result.copied
    assert (tmp_path / "out.jpg").read_bytes() == source.read_bytes()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_16_bit_png_stays_16_bit_with_its_icc_and_text(tmp_path, s64_model, detector, astronaut):
    pixels = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    encoded = cv2.imencode(".png", pixels)[1].tobytes()
    extra = png_chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(ICC)) + png_chunk(b"tEXt", b"Author\x00Ada")
    source = tmp_path / "deep.png"
    source.write_bytes(encoded[:33] + extra + encoded[33:])  # after the signature and IHDR
    result = restore_file(source, tmp_path / "out.png", s64_model, detector)
    assert result.faces == 1
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == pixels.shape
    with Image.open(tmp_path / "out.png") as image:
        assert image.info["icc_profile"] == ICC
        assert image.info["Author"] == "Ada"


def test_a_lossless_webp_stays_lossless_with_its_metadata(tmp_path, s64_model, detector, astronaut):
    source = tmp_path / "in.webp"
    image = Image.fromarray(astronaut)
    exif = image.getexif()
    exif[0x010F] = "GPEN test camera"
    image.save(source, lossless=True, icc_profile=ICC, exif=exif.tobytes(), xmp=XMP)
    written = restored(source, tmp_path / "out.webp", s64_model, detector)
    data = (tmp_path / "out.webp").read_bytes()
    assert b"VP8L" in data and b"VP8 " not in data
    with Image.open(tmp_path / "out.webp") as out:
        assert out.info["icc_profile"] == ICC
        assert out.getexif()[0x010F] == "GPEN test camera"
        assert out.info["xmp"] == XMP
        shown = np.asarray(out.convert("RGB"))
    np.testing.assert_array_equal(shown[written == 0], astronaut[written == 0])


def test_a_jpeg_with_odd_metadata_restores_with_one_warning(tmp_path, s64_model, detector, astronaut):
    good = jpeg_with_metadata(tmp_path / "good.jpg", astronaut, "4:2:0").read_bytes()
    odd = b"\xff\xee\x00\x07Adobe"  # an Adobe segment too short to hold its fields: Pillow gives up
    source = tmp_path / "odd.jpg"
    source.write_bytes(good[:2] + odd + good[2:])
    said = []
    result = restore_file(source, tmp_path / "out.png", s64_model, detector, warn=said.append)
    assert result.faces == 1
    assert len(said) == 1 and said[0].startswith("odd.jpg: ") and "written without it" in said[0]
    assert cv2.imread(str(tmp_path / "out.png")).shape == astronaut.shape


def test_without_jpeglib_pillow_keeps_tables_and_metadata(tmp_path, s64_model, detector, astronaut, monkeypatch):
    monkeypatch.setattr(jpeg_files, "DCT_COPY", False)
    source = jpeg_with_metadata(tmp_path / "in.jpg", astronaut, "4:4:4", orientation=3)
    said = []
    restored(source, tmp_path / "out.jpg", s64_model, detector, warn=said.append)
    assert said == []
    with Image.open(source) as before, Image.open(tmp_path / "out.jpg") as after:
        assert after.quantization == before.quantization
        assert JpegImagePlugin.get_sampling(after) == 0
        assert after.info["icc_profile"] == ICC
        assert after.info["exif"] == before.info["exif"]  # its orientation (3) with it
        assert after.info["xmp"] == XMP and after.info["comment"] == COMMENT
    # Stored as the source is: turned by its tag, it shows the same picture.
    difference = np.abs(stored_pixels(tmp_path / "out.jpg") - stored_pixels(source))
    assert np.median(difference) <= 2


def test_a_jpeg_written_as_png_keeps_icc_exif_and_xmp_and_is_upright(tmp_path, s64_model, detector, astronaut):
    stored = np.ascontiguousarray(np.rot90(astronaut))
    source = jpeg_with_metadata(tmp_path / "phone.jpg", stored, "4:4:4", orientation=6)
    restored(source, tmp_path / "out.png", s64_model, detector)
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (astronaut.shape[1], astronaut.shape[0])  # upright
        assert out.info["icc_profile"] == ICC
        exif = out.getexif()
        assert exif[0x010F] == "GPEN test camera" and exif[0x0112] == 1
        assert out.info.get("XML:com.adobe.xmp", "").encode() == XMP
        assert out.info["Comment"] == COMMENT.decode()


def test_a_png_written_as_jpeg_keeps_its_icc_profile(tmp_path, s64_model, detector, astronaut):
    source = tmp_path / "in.png"
    Image.fromarray(astronaut).save(source, icc_profile=ICC)
    restored(source, tmp_path / "out.jpg", s64_model, detector)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.info["icc_profile"] == ICC
        assert out.format == "JPEG"


def test_an_8_bit_tiff_keeps_its_icc_and_xmp(tmp_path, s64_model, detector, astronaut):
    source = tmp_path / "in.tif"
    Image.fromarray(astronaut).save(source, icc_profile=ICC, tiffinfo={700: XMP}, compression="tiff_lzw")
    restored(source, tmp_path / "out.tif", s64_model, detector)
    with Image.open(tmp_path / "out.tif") as out:
        assert out.info["icc_profile"] == ICC
        assert out.tag_v2[700] == XMP
        assert out.info["compression"] == "tiff_lzw"


def test_a_cmyk_jpegs_profile_is_not_put_on_rgb_pixels(tmp_path, s64_model, detector, astronaut):
    source = tmp_path / "print.jpg"
    cmyk_profile = bytearray(ICC)
    cmyk_profile[16:20] = b"CMYK"  # what a print shop's profile says it is for
    Image.fromarray(astronaut).convert("CMYK").save(source, quality=90, icc_profile=bytes(cmyk_profile))
    said = []
    result = restore_file(source, tmp_path / "out.jpg", s64_model, detector, warn=said.append)
    assert result.faces == 1
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "RGB" and "icc_profile" not in out.info
    assert any("ICC profile is for CMYK pixels" in line for line in said)


def test_a_16_bit_colour_tiff_stays_16_bit_with_its_icc_and_xmp(tmp_path, s64_model, detector, astronaut):
    import tifffile

    source = tmp_path / "deep.tif"
    tifffile.imwrite(source, astronaut.astype(np.uint16) * 257, photometric="rgb", iccprofile=ICC,
                     extratags=[(700, 1, len(XMP), XMP, True)])
    result = restore_file(source, tmp_path / "out.tif", s64_model, detector)
    assert result.faces == 1
    with tifffile.TiffFile(tmp_path / "out.tif") as out:
        page = out.pages[0]
        assert page.dtype == np.uint16 and page.shape == astronaut.shape
        assert page.tags[34675].value == ICC
        assert bytes(page.tags[700].value) == XMP
    restored_pixels = cv2.imread(str(tmp_path / "out.tif"), cv2.IMREAD_UNCHANGED)
    assert restored_pixels.dtype == np.uint16
    assert (restored_pixels[..., ::-1] != astronaut.astype(np.uint16) * 257).any()


@needs_jpeglib
def test_an_mpo_is_written_as_its_first_image_without_a_dangling_index(tmp_path, s64_model, detector, astronaut):
    source = tmp_path / "pair.jpg"
    Image.fromarray(astronaut).save(source, "MPO", save_all=True, append_images=[Image.fromarray(astronaut[::-1])])
    said = []
    result = restore_file(source, tmp_path / "out.jpg", s64_model, detector, warn=said.append)
    assert result.faces == 1 and any("only the first is restored" in line for line in said)
    data = (tmp_path / "out.jpg").read_bytes()
    assert b"MPF\x00" not in data and data.count(b"\xff\xd8") == 1
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.format == "JPEG" and getattr(out, "n_frames", 1) == 1


@needs_jpeglib
def test_a_grey_jpeg_stays_grey_and_keeps_its_far_blocks(tmp_path, s64_model, detector, astronaut):
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    source = tmp_path / "grey.jpg"
    Image.fromarray(grey).save(source, quality=85, comment=COMMENT)
    written = restored(source, tmp_path / "out.jpg", s64_model, detector)
    with Image.open(source) as before, Image.open(tmp_path / "out.jpg") as after:
        assert after.mode == "L" and after.quantization == before.quantization
        assert after.info["comment"] == COMMENT
    differ = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE) != cv2.imread(str(tmp_path / "out.jpg"), cv2.IMREAD_GRAYSCALE)
    assert differ[written > 0].any()
    assert not differ[~near(written, REACH["4:4:4"])].any()
