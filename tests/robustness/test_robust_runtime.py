"""What happens while it runs: Cancel mid-batch, out-of-memory, and downloads that go wrong
through the command line and install.py (the library cases are in tests/test_download.py)."""
from __future__ import annotations

import dataclasses
import hashlib
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from gpen_pipeline import EnhanceOptions, PasteOptions, enhance_images
from gpen_pipeline.restore import RestoreOutOfMemory
from restore_arrays import restore_crops

import comfy_harness as harness  # noqa: E402
import robustness_support as support
from helpers.http_model_server import ModelServer, Route

MODEL = "GPEN-robust-64.pth"


# --------------------------------------------------------------------------- interrupt


class Interrupted(Exception):
    pass


def test_api_interrupt_stops_between_chunks_and_leaves_the_inputs_alone(s64_model, detector):
    import cv2

    face = cv2.resize(support.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    frames = [np.hstack([np.roll(face, i, axis=1), face]) for i in range(10)]  # two faces a frame
    digest = hashlib.sha256(b"".join(f.tobytes() for f in frames)).hexdigest()
    progress, checks = [], []

    def check():
        checks.append(len(progress))
        if progress and progress[-1] > len(frames):  # Cancel pressed once the first chunk of faces is done
            raise Interrupted

    with pytest.raises(Interrupted):
        enhance_images(frames, s64_model, detector, EnhanceOptions(paste=PasteOptions(mask_mode="box")),
                       progress=lambda done, total: progress.append(done), check_interrupt=check)
    # Progress counts the 10 detections, then the first chunk of 16 faces; Cancel stops before the next step.
    assert progress == list(range(1, 11)) + [10 + 16]
    assert len(checks) == 10 + 2  # asked before every image's detection, the chunk, and the first paste
    assert hashlib.sha256(b"".join(f.tobytes() for f in frames)).hexdigest() == digest


@pytest.fixture(scope="module")
def frames_input(comfy):
    """A 12-frame animated PNG in ComfyUI's input folder: LoadImage makes it an IMAGE batch."""
    import cv2
    from PIL import Image

    face = cv2.resize(support.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    frames = [Image.fromarray(np.roll(face, i, axis=1)) for i in range(12)]
    frames[0].save(comfy.base / "input" / "robust-frames.png", save_all=True, append_images=frames[1:],
                   duration=40)
    return "robust-frames.png"


def restore_graph(image_name: str) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
            "2": harness.gpen_one_node(MODEL, mask_mode="box", device="cpu", precision="fp32"),
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def chain_graph(image_name: str) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
            **harness.gpen_chain(MODEL, mask_mode="box", device="cpu", precision="fp32"),
            "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}}}


@pytest.mark.parametrize("graph, node, at", [(restore_graph, "GPENFaceRestore", 14),
                                             (chain_graph, "GPENRestoreFaces", 2)])
def test_cancel_mid_batch_stops_promptly_and_the_next_prompt_runs(comfy, frames_input, graph, node, at):
    """Cancel is pressed when the progress bar reaches `at`: during the restoring of the faces
    (after the 12 detections in the one-node restore; early in the Restore Faces node)."""
    calls = []
    watched = "2" if node == "GPENFaceRestore" else "6"

    from comfy_execution.utils import get_executing_context

    def hook(value, total, preview, node_id=None):
        context = get_executing_context()  # 0.3.75 bars do not carry their node id themselves
        node_id = node_id or (context.node_id if context else None)
        calls.append((node_id, value, total))
        if node_id == watched and value >= at and not comfy.mm.processing_interrupted():
            comfy.mm.interrupt_current_processing(True)  # what the Cancel button does
            calls.append(("interrupt", value, total))

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        result = comfy.run(graph(frames_input))
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    assert result["status"] == "interrupted", result
    pressed = next(i for i, c in enumerate(calls) if c[0] == "interrupt")
    assert calls[pressed + 1:] == [], calls[pressed:]  # stopped before the next chunk of faces
    assert calls[pressed][1] < calls[pressed][2]  # ...which was well before the end
    preview = "3" if node == "GPENFaceRestore" else "8"
    assert preview not in result["outputs"]  # nothing half-done was shown
    # The server goes on: the flag is cleared and the same graph now runs to the end.
    after = comfy.run(graph(frames_input))
    assert after["status"] == "success", after["error"]
    assert len(after["outputs"][preview]["images"]) == 12


# --------------------------------------------------------------------------- out of memory


class OutOfMemoryAbove:
    """The real network behind a memory limit: batches larger than `limit` faces raise the
    exception ComfyUI uses for a CUDA out-of-memory (torch's OutOfMemoryError)."""

    def __init__(self, network, limit: int, error: type[BaseException]):
        self.network, self.limit, self.error = network, limit, error
        self.batches: list[int] = []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.batches.append(batch.shape[0])
        if batch.shape[0] > self.limit:
            raise self.error(f"CUDA out of memory. Tried to allocate {batch.shape[0] * 512} MiB (simulated)")
        return self.network(batch)


def behind_a_limit(model, limit: int, error: type[BaseException]):
    """`model` whose network is OutOfMemoryAbove `limit`, and that network (it counts the batches)."""
    network = OutOfMemoryAbove(model.network, limit, error)
    return dataclasses.replace(model, network=network), network


def crops(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(n)]


def test_out_of_memory_shrinks_the_batch_and_gives_the_same_faces(s64_model, comfy):
    faces = crops(10)
    model, limited = behind_a_limit(s64_model, 3, comfy.mm.OOM_EXCEPTION)
    out = restore_crops(model, faces, batch_size=10)
    reference = restore_crops(s64_model, faces, batch_size=1)
    # Batch size changes float rounding in the network (~3e-6), so at most one level in uint8.
    assert len(out) == 10 and all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(out, reference))
    assert limited.batches[:3] == [10, 5, 2] and max(b for b in limited.batches if b <= 3) <= 3


def test_out_of_memory_at_one_face_is_a_clear_error_comfy_treats_as_oom(s64_model, comfy):
    with pytest.raises(RestoreOutOfMemory, match="even with one face per batch") as info:
        restore_crops(behind_a_limit(s64_model, 0, comfy.mm.OOM_EXCEPTION)[0], crops(4), batch_size=4)
    # ComfyUI's executor frees its models and adds its OOM advice for exactly this exception type.
    assert isinstance(info.value, comfy.mm.OOM_EXCEPTION)
    assert "\n" not in str(info.value)


def test_node_restores_through_out_of_memory_and_then_reports_it(comfy):
    from gpen_pipeline.face import Face

    loader = comfy.nodes.NODE_CLASS_MAPPINGS["GPENLoadModel"]()
    handle = loader.load(MODEL, "cpu", "fp32")["result"][0]
    photo = support.astronaut()
    face = Face(support.ASTRONAUT_BOX, 0.99, support.ASTRONAUT_LANDMARKS)
    faces = comfy.common.DetectedFaces(((face,) * 6,), (512, 512))
    image = torch.from_numpy(photo[None].astype(np.float32) / 255)
    node = comfy.nodes.NODE_CLASS_MAPPINGS["GPENRestoreFaces"]()

    limited = dataclasses.replace(handle, model=behind_a_limit(handle.model, 1, comfy.mm.OOM_EXCEPTION)[0])
    restored = node.restore(limited, image, faces, batch_size=4)["result"][0]
    plain = node.restore(handle, image, faces, batch_size=4)["result"][0]
    assert len(restored[0]) == 6
    assert all((a.restored.int() - b.restored.int()).abs().max() <= 1 for a, b in zip(restored[0], plain[0]))

    hopeless = dataclasses.replace(handle, model=behind_a_limit(handle.model, 0, comfy.mm.OOM_EXCEPTION)[0])
    with pytest.raises(comfy.mm.OOM_EXCEPTION, match="even with one face per batch"):
        node.restore(hopeless, image, faces, batch_size=4)
    assert node.restore(handle, image, faces, batch_size=4)["result"][0][0]  # and it works again


# --------------------------------------------------------------------------- downloads


PAYLOAD = np.random.default_rng(11).bytes(300_000)


@pytest.fixture(scope="module")
def model_server():
    with ModelServer() as server:
        yield server


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def run_install(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(support.ROOT / "install.py"), *args], capture_output=True, text=True,
                          env=support.clean_env(), cwd=support.ROOT, timeout=timeout)


# name: (route, catalogue file, words in the one error line)
CLI_DOWNLOADS = {
    "server-error": (Route(body=b"internal error", status=500), "GPEN-BFR-256.pth", "HTTP 500"),
    "wrong-size": (Route(body=PAYLOAD), "GPEN-BFR-512.pth", "wrong or changed file"),
    "stalls": (Route(body=PAYLOAD, stall_after=50_000), "GPEN-BFR-256.pth", "timed out"),
}


@pytest.fixture(scope="module")
def cli_downloads(model_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("downloads")
    for case, (route, name, _) in CLI_DOWNLOADS.items():
        model_server.serve(f"/{case}/{name}", route)

    def run(case: str):
        _, name, _ = CLI_DOWNLOADS[case]
        return support.run_cli("download", name, "--dir", root / case, "--url-base",
                               f"{model_server.url_base}/{case}", "--timeout", "1.5", timeout=60)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(CLI_DOWNLOADS, pool.map(run, CLI_DOWNLOADS)))
    return root, results


@pytest.mark.parametrize("case", sorted(CLI_DOWNLOADS))
def test_cli_download_failure_is_one_line_and_leaves_no_file(cli_downloads, case):
    root, results = cli_downloads
    support.assert_cli_error(results[case], CLI_DOWNLOADS[case][1], CLI_DOWNLOADS[case][2])
    assert leftovers(root / case) == []


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.parametrize("tool", ["cli", "install"])
def test_ctrl_c_during_a_download_leaves_no_file(model_server, tmp_path, tool):
    model_server.serve(f"/ctrl-c-{tool}/GPEN-BFR-256.pth", Route(body=PAYLOAD, stall_after=100_000))
    folder = tmp_path / "models"
    base = f"{model_server.url_base}/ctrl-c-{tool}"
    if tool == "cli":
        command = [sys.executable, str(support.ROOT / "gpen_cli.py"), "download", "GPEN-BFR-256.pth",
                   "--dir", str(folder), "--url-base", base]
    else:
        command = [sys.executable, str(support.ROOT / "install.py"), "--download", "--model", "GPEN-BFR-256.pth",
                   "--models-dir", str(folder), "--url-base", base, "--requirements", str(tmp_path / "none.txt")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=support.clean_env(), cwd=support.ROOT)
    try:
        wait_for(lambda: (folder / "GPEN-BFR-256.pth.part").exists())
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out + err
    assert "Traceback" not in err and "interrupted" in (out + err)
    assert leftovers(folder) == []


def test_install_server_error_fails_and_timeout_counts_as_offline(model_server, tmp_path):
    """install.py --download: an HTTP error and a stalled server both fail the download that was
    asked for (exit 1; without --download, as ComfyUI-Manager runs it, nothing is fetched), the
    stall with where to get the file and when to try again; neither leaves a file."""
    model_server.serve("/install-500/GPEN-BFR-256.pth", Route(body=b"oops", status=500))
    model_server.serve("/install-stall/GPEN-BFR-256.pth", Route(body=PAYLOAD, stall_after=10_000))
    common = ("--download", "--model", "GPEN-BFR-256.pth", "--requirements", str(tmp_path / "none.txt"),
              "--timeout", "1.5")
    with ThreadPoolExecutor(max_workers=2) as pool:
        failed, stalled = pool.map(lambda case: run_install(*common, "--models-dir", str(tmp_path / case),
                                                            "--url-base", f"{model_server.url_base}/{case}"),
                                   ["install-500", "install-stall"])
    assert failed.returncode == 1, failed.stdout + failed.stderr
    errors = [line for line in failed.stdout.splitlines() if "ERROR:" in line]
    assert len(errors) == 1 and "HTTP 500" in errors[0] and "Traceback" not in failed.stderr
    assert stalled.returncode == 1, stalled.stdout + stalled.stderr
    assert "timed out" in stalled.stdout and "get it from:" in stalled.stdout and "again once" in stalled.stdout
    assert leftovers(tmp_path / "install-500") == [] and leftovers(tmp_path / "install-stall") == []
