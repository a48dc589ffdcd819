"""Network benchmark: our PyTorch GPEN vs onnxruntime on the same exported weights.

Run from the repository root:

    .venv/bin/python bench/network.py                      # BFR-512, batch 1 and 4, + BFR-2048 peak RSS
    .venv/bin/python bench/network.py --sizes 512 1024 2048 --batches 1 4

onnxruntime runs two graphs of the same weights: ours (export_onnx: constant kernels, the
modulation applied to the activations) and, at batch 1, the official form (each face's kernels
modulated at run time, as in the GPEN-BFR-*.onnx files ReActor/FaceFusion users run).

Prints a table and writes bench/results/network.json. Ours and onnxruntime run
alternately, after a warm-up, and the medians are compared, because these
machines are noisy; the machine's dense-convolution rate is measured in the same
run so the time per face can be set against the floor. Both run on a worker
thread, as nodes do in ComfyUI (glibc gives such a thread its own memory arena,
which behaves differently from the main thread's).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gpen_arch import GPEN, GPENConfig, export_onnx  # noqa: E402

# Multiply-accumulates per face, counted on the official forward (notes: gpen-official.md §11).
GMAC = {256: 8.703, 512: 138.110, 1024: 173.310, 2048: 209.986}


def random_gpen(size: int, seed: int = 0) -> GPEN:
    """Random weights with every path active (the official init leaves some at zero)."""
    torch.manual_seed(seed)
    model = GPEN(GPENConfig(size)).eval().requires_grad_(False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("noise.weight"):
                p.normal_(0, 0.5)
            elif name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model


def conv_rate(threads: int, repeats: int = 5) -> float:
    """Achieved GMAC/s of a large dense 3x3 convolution (256->256 channels at 128x128)."""
    torch.set_num_threads(threads)
    x = torch.randn(1, 256, 128, 128)
    w = torch.randn(256, 256, 3, 3)
    macs = 256 * 256 * 9 * 128 * 128
    with torch.inference_mode():
        torch.nn.functional.conv2d(x, w, padding=1)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            torch.nn.functional.conv2d(x, w, padding=1)
            times.append(time.perf_counter() - t)
    return macs / min(times) / 1e9


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _official_modulated(layer, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A modulated convolution as the official code computes it for one face: the stored kernel
    times the style, demodulated by its own sum of squares, at run time."""
    conv = layer.conv
    style = conv.modulation(w) * conv.scale
    kernel = conv.kernel * style[0][None, :, None, None]
    if conv.demodulate:
        kernel = kernel * torch.rsqrt(kernel.pow(2).sum((1, 2, 3)) + 1e-8)[:, None, None, None]
    return conv.convolve(x, kernel * layer.gain)


def official_form_onnx(model: GPEN, path: Path) -> Path:
    """The network as the official code computes it, traced for one face: each modulated kernel made
    at run time from the stored weight and the face's style (the form of the GPEN-BFR-*.onnx files
    ReActor/FaceFusion users run, exports of the official module), not export_onnx's shared-weight
    form. export_onnx's graph with its modulation step swapped for the official one."""
    import warnings
    from unittest import mock

    from gpen_arch import export

    x = torch.zeros(1, 3, model.size, model.size)
    with torch.no_grad(), warnings.catch_warnings(), mock.patch.object(export, "_modulated", _official_modulated):
        warnings.simplefilter("ignore")
        torch.onnx.export(export._ExportGraph(model), (x,), str(path), input_names=["input"],
                          output_names=["output"], opset_version=17, dynamo=False)
    return path


def time_pair(model, session, batch: int, repeats: int) -> dict:
    x = torch.rand(batch, 3, model.size, model.size) * 2 - 1
    feed = {"input": x.numpy()}
    ours, theirs = [], []
    with torch.inference_mode():
        reference = model(x)
        ort_out = session.run(None, feed)[0]  # warm-up for both
        for i in range(repeats):
            # The same pause before each run (onnxruntime's spinning threads park; a run
            # straight after another one starts warmer), and each side goes first in turn.
            for name in (("ours", "ort") if i % 2 == 0 else ("ort", "ours")):
                time.sleep(0.5)
                t = time.perf_counter()
                model(x) if name == "ours" else session.run(None, feed)
                (ours if name == "ours" else theirs).append(time.perf_counter() - t)
    ours_s, ort_s = statistics.median(ours), statistics.median(theirs)
    return {
        "size": model.size, "batch": batch,
        "ours_s": ours_s, "ort_s": ort_s, "ratio_ours_over_ort": ours_s / ort_s,
        # The fastest runs are the least disturbed by other load: their ratio is the steadier figure.
        "best_ratio_ours_over_ort": min(ours) / min(theirs),
        "ours_s_per_face": ours_s / batch, "ort_s_per_face": ort_s / batch,
        "ours_gmac_per_s": GMAC.get(model.size, float("nan")) * batch / ours_s,
        "max_abs_diff": float((reference - torch.from_numpy(ort_out)).abs().max()),
        "ours_runs": ours, "ort_runs": theirs,
    }


def restore(model, x):
    with torch.inference_mode():  # per thread: entered on the thread that runs the model
        return model(x)


def take_turns(runs: dict, repeats: int, pause: float = 0.3) -> dict[str, list[float]]:
    """Seconds of each named callable, timed `repeats` times after one warm-up each, taking turns
    (the order reversed every other round), with the same pause before every run."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for i in range(repeats):
        for name in (list(runs) if i % 2 == 0 else list(reversed(runs))):
            time.sleep(pause)
            started = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - started)
    return times


def on_worker_thread(fn, *args):
    """fn(*args) on a fresh thread, as ComfyUI runs its nodes; returns its result."""
    result = {}

    def target():
        try:
            result["value"] = fn(*args)
        except BaseException as err:  # re-raised on the caller's thread
            result["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def peak_rss_child(size: int, threads: int) -> None:
    """Runs in a fresh process: one forward at `size`, prints the peak RSS in MB.

    Read from VmHWM: getrusage's ru_maxrss survives exec on Linux and would report
    the parent's peak."""
    torch.set_num_threads(threads)
    model = random_gpen(size)
    weights_mb = sum(p.numel() * 4 for p in model.state_dict().values()) / 2**20
    on_worker_thread(restore, model, torch.rand(1, 3, size, size) * 2 - 1)
    status = Path("/proc/self/status").read_text()
    peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024
    print(json.dumps({"size": size, "peak_rss_mb": peak, "weights_mb": weights_mb}))


def measure_peak_rss(size: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--rss-child", str(size), "--threads", str(threads)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rss-sizes", type=int, nargs="*", default=[2048])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "network.json")
    parser.add_argument("--reuse-freed-memory", action="store_true",
                        help="apply the command line's allocator setting (gpen_cli.keep_freed_memory)")
    parser.add_argument("--max-batch-pixels", type=int, default=2048 * 2048,
                        help="skip a size and batch whose batch x size x size exceeds this")
    parser.add_argument("--official-form", action=argparse.BooleanOptionalAction, default=True,
                        help="also time onnxruntime on the official-form graph, batch 1")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reuse_freed_memory:
        from gpen_cli import keep_freed_memory

        if not keep_freed_memory():
            parser.error("--reuse-freed-memory needs glibc")
    if args.rss_child:
        peak_rss_child(args.rss_child, args.threads)
        return

    torch.set_num_threads(args.threads)
    rate = conv_rate(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{args.threads} threads, torch {torch.__version__}, "
          f"allocator: {'reusing freed memory (CLI)' if args.reuse_freed_memory else 'default (ComfyUI)'}")
    print(f"dense 3x3 convolution: {rate:.1f} GMAC/s")
    rows, rss = [], []

    def save() -> None:  # after every row: a run cut short still leaves what it measured
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "threads": args.threads, "torch": torch.__version__},
            "allocator": "reuse_freed_memory" if args.reuse_freed_memory else "default",
            "dense_conv_gmac_per_s": rate, "forward": rows, "peak_rss": rss,
        }, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            model = random_gpen(size)
            t = time.perf_counter()
            path = export_onnx(model, Path(tmp) / f"gpen{size}.onnx")
            export_s = time.perf_counter() - t
            session = ort_session(path, args.threads)
            for batch in args.batches:
                if batch * size * size > args.max_batch_pixels:
                    print(f"GPEN-{size} batch {batch}: skipped, onnxruntime needs more memory than this "
                          f"(--max-batch-pixels {args.max_batch_pixels}; at 2048 px batch 4 it was killed at 24 GB)")
                    continue
                row = on_worker_thread(time_pair, model, session, batch, args.repeats)
                row["onnx_export_s"] = export_s
                row["graph"] = "export_onnx (shared weights)"
                row["floor_s_per_face"] = GMAC.get(size, float("nan")) / rate
                rows.append(row)
                save()
                print(f"GPEN-{size} batch {batch}: ours {row['ours_s_per_face']:.2f} s/face, onnxruntime "
                      f"{row['ort_s_per_face']:.2f} s/face, ratio {row['ratio_ours_over_ort']:.2f} "
                      f"(fastest runs: {row['best_ratio_ours_over_ort']:.2f}), "
                      f"{row['ours_gmac_per_s']:.1f} GMAC/s ({row['ours_gmac_per_s'] / rate:.0%} of the dense rate), "
                      f"max |diff| {row['max_abs_diff']:.1e}")
            del session
            if args.official_form:
                session = ort_session(official_form_onnx(model, Path(tmp) / f"gpen{size}_official.onnx"),
                                      args.threads)
                row = {**on_worker_thread(time_pair, model, session, 1, args.repeats), "graph": "official form"}
                rows.append(row)
                save()
                print(f"GPEN-{size} batch 1, onnxruntime on the official-form graph: ours "
                      f"{row['ours_s_per_face']:.2f} s/face, onnxruntime {row['ort_s_per_face']:.2f} s/face, "
                      f"ratio {row['ratio_ours_over_ort']:.2f} (fastest runs: {row['best_ratio_ours_over_ort']:.2f}), "
                      f"max |diff| {row['max_abs_diff']:.1e}")
                del session
            del model
    for size in args.rss_sizes:
        rss.append(measure_peak_rss(size, args.threads))
        print(f"GPEN-{size} fp32 forward: peak RSS {rss[-1]['peak_rss_mb']:.0f} MB "
              f"(weights {rss[-1]['weights_mb']:.0f} MB)")
    save()
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
