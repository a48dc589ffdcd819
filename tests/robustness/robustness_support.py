"""Shared helpers of the robustness suite: fixture files, real face photos, the CLI as a
subprocess, stand-in detectors for landmarks no real detector gives, and checks that the
pixels nobody asked to change did not change."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- real photos


def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


def grace_hopper() -> np.ndarray:
    import cv2
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def group_photo() -> np.ndarray:
    """insightface's t1.jpg: six people, 1280x886."""
    import cv2
    import insightface

    path = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def faceless(height: int = 96, width: int = 128) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), 0.5 + 0.25 * np.sin(x / 9.0)], -1)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


# Eyes, nose and mouth corners of the astronaut read by hand (512x512 photo).
ASTRONAUT_LANDMARKS = np.array([[203, 101.5], [246, 103.5], [223, 127], [203, 141.5], [243, 141.5]], np.float32)
ASTRONAUT_BOX = (180.0, 60.0, 270.0, 180.0)


# --------------------------------------------------------------------------- stand-in detector


def fixed_detector(faces: Sequence[tuple[tuple[float, ...], float, np.ndarray]], width: int):
    """A detector returning the given (box, score, landmarks) in the pixels of a `width`-wide image.

    Only for landmarks no real detector produces (coincident, collinear, 10 px faces placed
    exactly); runners see the resized working copy, so the pixels are scaled to it."""
    from gpen_pipeline.detection import Detector

    def runner(_model, work, threshold):
        scale = work.shape[1] / width
        kept = [f for f in faces if f[1] > threshold]
        boxes = np.array([f[0] for f in kept], np.float64).reshape(-1, 4) * scale
        scores = np.array([f[1] for f in kept], np.float64)
        points = np.array([f[2] for f in kept], np.float64).reshape(-1, 5, 2) * scale
        return boxes, scores, points

    return Detector(name="fixed", model=None, source="test", device="cpu", runner=runner)


# --------------------------------------------------------------------------- checks


def identity_model(size: int):
    """A stand-in GPEN that returns the crops it is given: what is pasted back must match the photo."""
    from gpen_arch import GPENModel

    return GPENModel(lambda batch: batch.clone(), size, None)


def assert_untouched_outside(result_image: np.ndarray, original: np.ndarray, mask: np.ndarray) -> None:
    """Same shape and dtype, and every pixel under a zero mask bit for bit (NaN equal to NaN)."""
    assert result_image.shape == original.shape and result_image.dtype == original.dtype
    outside = mask == 0
    np.testing.assert_array_equal(result_image[outside], original[outside])


def tile(images: Sequence[np.ndarray], columns: int, cell: int) -> np.ndarray:
    """Images resized to cell x cell and laid out in a grid (uint8 RGB)."""
    import cv2

    rows = -(-len(images) // columns)
    out = np.zeros((rows * cell, columns * cell, 3), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        out[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = cv2.resize(image, (cell, cell),
                                                                             interpolation=cv2.INTER_AREA)
    return out


# --------------------------------------------------------------------------- subprocesses


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in {"GPEN_MODEL_URL_BASE", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                        "all_proxy", "ALL_PROXY"}}
    env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "NO_PROXY": "127.0.0.1,localhost"})
    env.update(extra)
    return env


def run_cli(*args, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """`python gpen_cli.py ARGS` as a user runs it."""
    return subprocess.run([sys.executable, str(ROOT / "gpen_cli.py"), *map(str, args)], capture_output=True,
                          text=True, env=clean_env(**env), cwd=ROOT, timeout=timeout)


def assert_cli_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit status non-zero, exactly one line on stderr, no traceback, every needle in it."""
    assert done.returncode != 0, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def measure_memory(scenario: str, *args: str, timeout: float = 120) -> dict:
    """Run `memory_probe.py SCENARIO` in a fresh interpreter; its JSON line (peak RSS figures in MiB)."""
    done = subprocess.run([sys.executable, str(HERE / "memory_probe.py"), scenario, *args], capture_output=True,
                          text=True, env=clean_env(), cwd=ROOT, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
