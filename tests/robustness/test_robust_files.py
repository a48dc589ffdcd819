"""Files in and out of the command line, as a hostile user or an unlucky day hands them over: a full
or read-only disk, a hard link to the input, a phone photo turned by its EXIF tag, a folder with a
broken file, Ctrl-C in the middle of a folder, animations, 16-bit grey, images past the decoder's
limits and their memory.

Every file the pack writes goes to a temporary name beside its target and is renamed into place
only when complete (gpen_arch.files): a failed write keeps the previous file, leaves nothing
behind and says why in one sentence; a file that exists is complete, so a rerun skips it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import robustness_support as support
from fixture_files import S64_MODEL_FILE, S256_MODEL_FILE

ROOT = support.ROOT


def restore(source, target, *extra, timeout: float = 120):
    return support.run_cli("restore", source, "--model", S64_MODEL_FILE, "-o", target, "--mask", "box", *extra,
                           timeout=timeout)


def save(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb)
    return path


def png_bytes(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def coffee() -> np.ndarray:
    import skimage.data

    return skimage.data.coffee()  # a cup of coffee: no face


def leftovers(folder: Path) -> list[str]:
    """Temporary files a write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- a full or read-only disk


@pytest.mark.parametrize("photo", ["face", "faceless"])
def test_restore_onto_a_full_disk_keeps_the_previous_output_and_says_so(small_disk, tmp_path, photo):
    source = save(tmp_path / "in.png", support.astronaut() if photo == "face" else coffee())
    previous = png_bytes(support.faceless(64, 64))
    (small_disk / "in.png").write_bytes(previous)  # an earlier run's good output (~20 KB)
    done = restore(source, small_disk / "in.png", "--overwrite")  # the new one (~400 KB) does not fit
    line = support.assert_cli_error(done, "cannot write", "in.png", "the disk is full", "free some space")
    assert "requested" not in line and "written" not in line
    assert (small_disk / "in.png").read_bytes() == previous
    assert leftovers(small_disk) == []


@pytest.mark.parametrize("photo", ["face", "faceless"])
def test_a_new_output_on_a_full_disk_leaves_no_partial_file(small_disk, tmp_path, photo):
    source = save(tmp_path / "in.png", support.astronaut() if photo == "face" else coffee())
    done = restore(source, small_disk / "out.png")
    support.assert_cli_error(done, "cannot write", "out.png", "the disk is full")
    assert list(small_disk.iterdir()) == []


def test_convert_onto_a_full_disk_keeps_the_previous_file_and_says_so(small_disk):
    previous = b"an earlier conversion" * 100
    (small_disk / "small.safetensors").write_bytes(previous)
    done = support.run_cli("convert", S256_MODEL_FILE, "-o", small_disk / "small.safetensors")
    support.assert_cli_error(done, "cannot write", "small.safetensors", "the disk is full")
    assert "SafetensorError" not in done.stderr
    assert (small_disk / "small.safetensors").read_bytes() == previous
    assert leftovers(small_disk) == []


def test_a_json_report_onto_a_full_disk_is_one_line_and_exit_1(small_disk, tmp_path):
    source = save(tmp_path / "astronaut.png", support.astronaut())
    with pytest.raises(OSError), open(small_disk / "filler", "wb") as filler:
        filler.write(b"\0" * (1 << 20))
    with open(small_disk / "faces.json", "wb") as report:
        done = subprocess.run([sys.executable, str(ROOT / "gpen_cli.py"), "detect", str(source), "--json"],
                              stdout=report, stderr=subprocess.PIPE, text=True, env=support.clean_env(), cwd=ROOT,
                              timeout=120)
    support.assert_cli_error(done, "cannot write the standard output", "the disk is full")


def test_a_read_only_folder_is_said_in_words(small_disk, tmp_path):
    source = save(tmp_path / "astronaut.png", support.astronaut())
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    done = restore(source, small_disk / "out.png")
    support.assert_cli_error(done, "cannot write", "out.png", "read-only", "choose a folder you can write to")


@pytest.mark.parametrize("writer", ["image", "copy", "safetensors"])
def test_a_write_that_runs_out_of_space_keeps_the_previous_file(disk_fills_up, s64_model, tmp_path, writer):
    from gpen_arch import save_safetensors
    from gpen_arch.files import WriteError
    from gpen_pipeline.image_files import copy_file, write_image

    target = tmp_path / ("out.safetensors" if writer == "safetensors" else "out.png")
    target.write_bytes(b"the previous, good file")
    source = save(tmp_path / "in.png", coffee())
    disk_fills_up(4096)  # some of the new file fits, as on a real disk
    with pytest.raises(WriteError) as info:
        if writer == "image":
            write_image(target, cv2.imread(str(source)))
        elif writer == "copy":
            copy_file(source, target)
        else:
            save_safetensors(s64_model, target)
    assert str(info.value) == (f"cannot write {target}: the disk is full; the previous {target.name} is unchanged; "
                               "free some space and run again")
    assert target.read_bytes() == b"the previous, good file"
    assert leftovers(tmp_path) == []


def test_a_folder_run_stops_at_a_full_disk_with_one_sentence(disk_fills_up, tmp_path):
    import gpen_cli
    from gpen_arch.files import WriteError

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        save(folder / name, coffee())
    args = gpen_cli.build_parser().parse_args(["restore", str(folder), "--model", str(S64_MODEL_FILE),
                                               "-o", str(tmp_path / "out"), "--device", "cpu"])
    disk_fills_up(0)
    with pytest.raises(WriteError, match="the disk is full"):
        args.func(args)  # not reported per file and continued: every file would fail alike
    assert list((tmp_path / "out").iterdir()) == []


# --------------------------------------------------------------------------- identity, not names


def test_a_hard_link_to_the_input_is_refused_as_the_input(tmp_path):
    source = save(tmp_path / "in.png", support.astronaut())
    original = source.read_bytes()
    os.link(source, tmp_path / "out.png")
    done = restore(source, tmp_path / "out.png")
    support.assert_cli_error(done, "refusing to overwrite the input", "out.png")
    assert source.read_bytes() == original

    model = tmp_path / "model.pth"
    model.write_bytes(S64_MODEL_FILE.read_bytes())
    os.link(model, tmp_path / "model.safetensors")
    done = support.run_cli("convert", model, "-o", tmp_path / "model.safetensors")
    support.assert_cli_error(done, "same file")
    assert model.read_bytes() == S64_MODEL_FILE.read_bytes()


# --------------------------------------------------------------------------- EXIF orientation


def exif_file(path: Path, rgb: np.ndarray, orientation: int, **save_options) -> Path:
    from PIL import Image

    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), **save_options)
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_read_upright_as_pillow_shows_it(tmp_path, orientation):
    from PIL import Image, ImageOps

    from gpen_pipeline.image_files import read_pixels

    rgb = np.random.default_rng(orientation).integers(0, 256, (5, 8, 3), dtype=np.uint8)
    path = exif_file(tmp_path / "turned.png", rgb, orientation)
    with Image.open(path) as image:
        shown = np.asarray(ImageOps.exif_transpose(image))
    decoded = read_pixels(path)
    np.testing.assert_array_equal(decoded.pixels[..., ::-1], shown)
    assert decoded.turned == (orientation != 1)


def test_a_sideways_phone_photo_is_restored_upright_like_comfyui(tmp_path):
    upright = support.grace_hopper()  # 600 high, 512 wide
    path = exif_file(tmp_path / "phone.jpg", np.ascontiguousarray(np.rot90(upright)), 6, quality=95)
    faces = support.run_cli("detect", path, "--json")
    assert faces.returncode == 0, faces.stderr
    (face,) = json.loads(faces.stdout)
    eyes_y, mouth_y = np.mean([p[1] for p in face["landmarks"][:2]]), np.mean([p[1] for p in face["landmarks"][3:]])
    assert eyes_y < mouth_y - 30  # found upright, as ComfyUI's LoadImage shows it
    done = restore(path, tmp_path / "out.png")
    assert done.returncode == 0 and "1 face(s)" in done.stdout, done.stderr
    out = cv2.cvtColor(cv2.imread(str(tmp_path / "out.png")), cv2.COLOR_BGR2RGB)
    assert out.shape == upright.shape
    assert np.abs(out[500:].astype(int) - upright[500:]).mean() < 3  # the same picture, the same way up


def test_a_sideways_phone_jpeg_restored_as_jpeg_keeps_its_tag_profile_and_far_pixels(tmp_path):
    from PIL import Image, ImageCms, JpegImagePlugin

    pytest.importorskip("jpeglib")  # without it the output is encoded again (tests/test_photo_files.py)
    upright = support.grace_hopper()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = exif_file(tmp_path / "phone.jpg", np.ascontiguousarray(np.rot90(upright)), 6, quality=90,
                     icc_profile=icc, subsampling=2)
    done = restore(path, tmp_path / "out.jpg")
    assert done.returncode == 0 and "1 face(s)" in done.stdout, done.stderr
    with Image.open(path) as before, Image.open(tmp_path / "out.jpg") as after:
        assert after.getexif()[0x0112] == 6 and after.size == before.size  # stored sideways, shown upright
        assert after.info["icc_profile"] == icc and after.quantization == before.quantization
        assert JpegImagePlugin.get_sampling(after) == 2
    stored = [cv2.imread(str(p), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) for p in (path, tmp_path / "out.jpg")]
    differ = (stored[0] != stored[1]).any(axis=2)
    assert differ.any()
    # Stored column j is the upright photo's row j: the face is in its upper rows, the jacket below.
    assert not differ[:, 400:].any()


def test_a_sideways_photo_without_faces_comes_back_byte_for_byte_with_its_tag(tmp_path):
    path = exif_file(tmp_path / "cup.jpg", np.ascontiguousarray(np.rot90(coffee())), 6, quality=95)
    done = restore(path, tmp_path / "out.jpg")
    assert done.returncode == 0 and "0 face(s)" in done.stdout, done.stderr
    assert (tmp_path / "out.jpg").read_bytes() == path.read_bytes()  # shown upright, as the restored ones


# --------------------------------------------------------------------------- folders: go on, resume


def test_a_folder_run_goes_on_past_a_broken_file_and_a_rerun_resumes(tmp_path):
    folder, out = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    save(folder / "a-astronaut.png", support.astronaut())
    (folder / "b-broken.png").write_bytes(png_bytes(support.astronaut())[:5000])
    save(folder / "c-coffee.png", coffee())
    first = restore(folder, out)
    assert first.returncode == 1
    assert "b-broken.png: skipped: cannot read image" in first.stderr
    assert "1 image(s) failed: b-broken.png" in first.stderr.splitlines()[-1]
    assert "Traceback" not in first.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a-astronaut.png", "c-coffee.png"]
    done = {p.name: p.stat().st_ino for p in out.iterdir()}

    (out / "c-coffee.png").unlink()  # as if the first run had been stopped before it
    second = restore(folder, out)
    assert second.returncode == 1 and "1 of 3 outputs already there, kept" in second.stdout
    assert (out / "a-astronaut.png").stat().st_ino == done["a-astronaut.png"]  # not redone
    assert (out / "c-coffee.png").exists()

    third = restore(folder, out, "--overwrite")
    assert third.returncode == 1 and (out / "a-astronaut.png").stat().st_ino != done["a-astronaut.png"]


def test_ctrl_c_in_a_folder_run_leaves_only_complete_files_and_the_rerun_finishes(tmp_path):
    folder, out = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    names = [f"{i}.png" for i in range(8)]
    for name in names:
        save(folder / name, support.astronaut())
    process = subprocess.Popen([sys.executable, str(ROOT / "gpen_cli.py"), "restore", str(folder), "--model",
                                str(S64_MODEL_FILE), "-o", str(out), "--mask", "box"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=support.clean_env(), cwd=ROOT)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(p.suffix == ".png" for p in out.iterdir())):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    finished = sorted(p.name for p in out.iterdir())
    assert leftovers(out) == [] and 0 < len(finished) < len(names)
    assert all(cv2.imread(str(out / name)).shape == (512, 512, 3) for name in finished)  # each one whole

    rerun = restore(folder, out)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} of {len(names)} outputs already there, kept" in rerun.stdout
    assert sorted(p.name for p in out.iterdir()) == names


# --------------------------------------------------------------------------- frames, grey, depth


@pytest.mark.parametrize("name", ["animated.gif", "animated.webp", "pages.tif"])
def test_a_file_of_several_frames_says_only_the_first_is_restored(tmp_path, name):
    from PIL import Image

    photo = support.astronaut()
    frames = [Image.fromarray(photo), Image.fromarray(np.ascontiguousarray(photo[:, ::-1]))]
    frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:])
    target = tmp_path / ("out.tif" if name.endswith(".tif") else "out.png")
    done = restore(tmp_path / name, target)
    assert done.returncode == 0, done.stderr
    assert f"{name}: 2 frames or pages: only the first is restored and written" in done.stderr
    with Image.open(target) as written:
        assert getattr(written, "n_frames", 1) == 1


def test_a_16_bit_grey_png_stays_16_bit_grey(tmp_path):
    grey = cv2.cvtColor(support.astronaut(), cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    grey += np.random.default_rng(1).integers(0, 257, grey.shape).astype(np.uint16)
    save(tmp_path / "grey.png", grey)
    done = restore(tmp_path / "grey.png", tmp_path / "out.png")
    assert done.returncode == 0, done.stderr
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == grey.shape and out.dtype == np.uint16
    changed = out != grey
    assert 0.005 < changed.mean() < 0.2
    ys, xs = np.nonzero(changed)
    assert xs.min() > 100 and xs.max() < 380 and ys.max() < 300  # the face only


# --------------------------------------------------------------------------- size and memory


def test_an_image_beyond_the_decoders_limits_is_one_clear_line(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)  # 50000x50000 8-bit RGB
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                                        + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    done = restore(tmp_path / "huge.png", tmp_path / "out.png")
    line = support.assert_cli_error(done, "huge.png", "50000x50000", "beyond OpenCV's decoder limits",
                                    "OPENCV_IO_MAX_IMAGE_PIXELS")
    assert "unexpected" not in line and "Assertion" not in line


def test_file_pixels_restored_by_region_match_the_whole_image_result(s256_model, detector):
    """Two faces of different sizes: the file path (uint8 BGR, region by region) gives the pixels
    the whole-image pipeline gives."""
    from gpen_pipeline import EnhanceOptions, PasteOptions, enhance_image
    from gpen_pipeline.file_restore import enhance_pixels

    photo = support.astronaut()
    pair = np.full((512, 900, 3), 90, np.uint8)
    pair[96:416, 20:340], pair[:, 388:] = cv2.resize(photo, (320, 320), interpolation=cv2.INTER_AREA), photo
    for mode in ("official", "box"):
        options = EnhanceOptions(paste=PasteOptions(mask_mode=mode, color_match=True))
        whole = enhance_image(pair, s256_model, detector, options)
        by_region = enhance_pixels(cv2.cvtColor(pair, cv2.COLOR_RGB2BGR), s256_model, detector, options)
        assert len(whole.faces) == by_region.faces == 2
        np.testing.assert_array_equal(cv2.cvtColor(by_region.pixels, cv2.COLOR_BGR2RGB), whole.image)


def test_a_16_bit_rgba_png_costs_a_few_bytes_a_pixel_not_a_float_copy(tmp_path):
    """3000x3000 16-bit RGBA with one face: the previous release peaked 88 bytes a pixel above the
    command's own baseline (float copies of the whole image); now the decoder's two copies (16)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from file_memory import make_image, peak_rss

    cli = ROOT / "gpen_cli.py"
    cv2.imwrite(str(tmp_path / "small.png"), make_image(64, "u16-rgba"))
    cv2.imwrite(str(tmp_path / "large.png"), make_image(3000, "u16-rgba"))
    base, _, _ = peak_rss(cli, tmp_path / "small.png", tmp_path / "small-out.png")
    peak, _, said = peak_rss(cli, tmp_path / "large.png", tmp_path / "large-out.png")
    assert "1 face(s) restored" in said
    assert (peak - base) / 3000 ** 2 < 24, (peak - base) / 3000 ** 2
