import errno
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import fixture_files

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """tests/fixtures/gpen: the official code's recorded inputs and outputs, and the fixture models."""
    return fixture_files.FIXTURES


@pytest.fixture(scope="session")
def s64_model():
    """The 64 px fixture model, loaded once and shared: a test that changes its model loads its own
    (fixture_files.load_fixture_model)."""
    return fixture_files.load_fixture_model(fixture_files.S64_MODEL_FILE)


@pytest.fixture(scope="session")
def s256_model():
    """The 256 px fixture model, loaded once and shared like `s64_model`."""
    return fixture_files.load_fixture_model(fixture_files.S256_MODEL_FILE)


@pytest.fixture(scope="session")
def narrow_parser(tmp_path_factory):
    """The official fixtures' random ParseNet (the released architecture, narrower), found as facexlib's file."""
    from gpen_pipeline.parsing import load_parser

    folder = tmp_path_factory.mktemp("parser")
    shutil.copy(fixture_files.FIXTURES / "parsenet_narrow.pth", folder / "parsing_parsenet.pth")
    return load_parser("parsenet", [folder])


@pytest.fixture(scope="session")
def detector():
    """The bundled default face detector, loaded once for every test that takes it."""
    from gpen_pipeline import DEFAULT_DETECTOR, load_detector

    return load_detector(DEFAULT_DETECTOR, device="cpu")


@pytest.fixture(scope="session")
def astronaut():
    """skimage's astronaut (512x512 RGB uint8), read-only: a test that writes into its input fails."""
    import numpy as np
    import skimage.data

    photo = np.ascontiguousarray(skimage.data.astronaut())
    photo.setflags(write=False)
    return photo


@pytest.fixture(autouse=True)
def no_remote_network(monkeypatch):
    """No test reaches beyond this machine: only loopback servers the tests start may be reached."""
    real_connect = socket.socket.connect

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"network access attempted: {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB file system (a tmpfs) for the full-disk and read-only cases; skipped where
    mounting is not permitted (not root, no mount command)."""
    disk = tmp_path / "small_disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.fixture
def disk_fills_up(monkeypatch, tmp_path):
    """disk_fills_up(room): from now on, writes (os.write) to files under tmp_path fit `room` more
    bytes and then fail with ENOSPC, as on a full disk. For the in-process cases, where no real
    file system can be filled (small_disk covers it for real where mounting is allowed)."""
    real_write = os.write

    def fill(room: int) -> None:
        left = [room]

        def write(fd, data):
            if not os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
                return real_write(fd, data)
            if left[0] <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written = real_write(fd, memoryview(data).cast("B")[:left[0]])
            left[0] -= written
            return written

        monkeypatch.setattr(os, "write", write)

    return fill


@pytest.fixture(scope="session")
def arcface_file(tmp_path_factory) -> Path:
    """A small random ArcFace-layout recognition model (tests/helpers/recognizer_onnx.py), named as
    insightface's buffalo_l pack names it, in <folder>/models/buffalo_l/ as users unpack it."""
    from helpers.recognizer_onnx import make_arcface_onnx

    folder = tmp_path_factory.mktemp("insightface")
    return make_arcface_onnx(folder / "models" / "buffalo_l" / "w600k_r50.onnx")


@pytest.fixture(scope="session")
def recognizer(arcface_file):
    from gpen_pipeline.recognition import load_recognizer

    return load_recognizer(arcface_file, device="cpu")


@pytest.fixture(scope="session")
def two_people():
    """Two different people side by side (scikit-image's astronaut left, matplotlib's Grace Hopper
    right), 1100x600 RGB uint8, read-only, and the box (x0, y0, x1, y1) each photo was put in."""
    import cv2
    import matplotlib.cbook
    import numpy as np
    import skimage.data

    hopper = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    hopper = cv2.resize(cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB), (512, 600), interpolation=cv2.INTER_AREA)
    scene = np.full((600, 1100, 3), 90, np.uint8)
    scene[44:556, 20:532] = skimage.data.astronaut()
    scene[:, 560:1072] = hopper
    scene.setflags(write=False)
    return scene, {"astronaut": (20, 44, 532, 556), "hopper": (560, 0, 1072, 600)}
