import socket
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
