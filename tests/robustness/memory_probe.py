"""Peak memory of one pipeline call, measured in a fresh interpreter (run by the robustness tests).

    python memory_probe.py large  u8|f32   # one 8192x8192 photo with a face
    python memory_probe.py frames N        # N 384x384 video frames with a face each

Prints one JSON line. The peak RSS (VmHWM) is reset through /proc/self/clear_refs right
before the call, so `peak_mb - before_mb` is what the call itself needed at its worst and
`after_mb - before_mb` what its results keep.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fixture_files
torch.set_num_threads(1)
cv2.setNumThreads(1)

from fixture_files import S64_MODEL_FILE, load_fixture_model  # noqa: E402
from gpen_pipeline import DEFAULT_DETECTOR, EnhanceOptions, PasteOptions, enhance_images, load_detector  # noqa: E402


def status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


def large_photo(kind: str) -> list[np.ndarray]:
    side = 8192
    image = np.zeros((side, side, 3), np.uint8)
    image[:side // 2, :side // 2] = cv2.resize(astronaut(), (side // 2, side // 2), interpolation=cv2.INTER_LINEAR)
    if kind == "f32":
        image = image.astype(np.float32) / np.float32(255)
    return [image]


def frames(count: int) -> list[np.ndarray]:
    face = cv2.resize(astronaut(), (384, 384), interpolation=cv2.INTER_AREA)
    return [np.roll(face, (i % 7) - 3, axis=1) for i in range(count)]


def main() -> None:
    scenario, arg = sys.argv[1], sys.argv[2]
    model = load_fixture_model(S64_MODEL_FILE)
    detector = load_detector(DEFAULT_DETECTOR, device="cpu")
    images = large_photo(arg) if scenario == "large" else frames(int(arg))
    calls: list[tuple[int, int]] = []
    input_mb = sum(i.nbytes for i in images) / 2 ** 20
    reset_peak()
    before = status_mb("VmRSS")
    started = time.perf_counter()
    results = enhance_images(images, model, detector, EnhanceOptions(paste=PasteOptions(mask_mode="box")),
                             progress=lambda done, total: calls.append((done, total)))
    seconds = time.perf_counter() - started
    peak, after = status_mb("VmHWM"), status_mb("VmRSS")
    kept_mb = sum(r.image.nbytes + r.mask.nbytes for r in results) / 2 ** 20
    print(json.dumps({
        "input_mb": input_mb, "results_mb": kept_mb, "before_mb": before, "peak_mb": peak, "after_mb": after,
        "seconds": seconds, "faces": [len(r.faces) for r in results], "progress": calls,
        "same_shape": all(r.image.shape == i.shape and r.image.dtype == i.dtype for r, i in zip(results, images)),
    }))


if __name__ == "__main__":
    main()
