"""Contention benchmark: the GPEN-512 forward and onnxruntime with and without another 2-thread job.

Run from the repository root:

    .venv/bin/python bench/contention.py [--other torch|busy]   # writes bench/results/contention_OTHER.json

ComfyUI users run other work beside us. The other job here is what a second ComfyUI or a training
script would be: a process doing 2-thread torch matrix products without pause (--other torch), or
two plain busy processes (--other busy). Ours (2 threads) and
onnxruntime (2 threads, on our export of the same weights) take turns, idle and then beside the
other job, on a worker thread (as ComfyUI runs nodes) and on the main thread (as the command line
runs). Per runner: the median time, and its slowdown (beside the job / idle). Goal: our slowdown
within 1.2x onnxruntime's.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from gpen_arch import export_onnx  # noqa: E402
from network import on_worker_thread, ort_session, random_gpen, take_turns  # noqa: E402

OTHER_JOBS = {
    # Another torch program: OpenMP threads that compete for the same cores in the same way.
    "torch": ["-c", "import torch\ntorch.set_num_threads(2)\na = torch.randn(1024, 1024)\n"
                    "while True:\n    a = torch.tanh(a @ a)\n"],
    # Two plain busy processes (a browser, an encoder): no thread pool of their own. This one and one it starts.
    "busy": ["-c", "import multiprocessing as m\ndef spin():\n    while True: pass\n"
                   "if __name__ == '__main__':\n    m.Process(target=spin).start()\n    spin()\n"],
}
RUNNERS = ("ours", "onnxruntime")


def time_runners(model, session, repeats: int) -> dict[str, list[float]]:
    x = torch.rand(1, 3, model.size, model.size) * 2 - 1
    feed = {"input": x.numpy()}
    with torch.inference_mode():
        return take_turns({"ours": lambda: model(x), "onnxruntime": lambda: session.run(None, feed)}, repeats,
                          pause=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--other", choices=sorted(OTHER_JOBS), default="torch", help="the other job")
    parser.add_argument("--json", type=Path, help="default: bench/results/contention_OTHER.json")
    args = parser.parse_args()
    args.json = args.json or ROOT / "bench" / "results" / f"contention_{args.other}.json"
    torch.set_num_threads(2)
    model = random_gpen(args.size)
    threads = {"worker thread": lambda *a: on_worker_thread(time_runners, *a), "main thread": time_runners}
    with tempfile.TemporaryDirectory() as tmp:
        session = ort_session(export_onnx(model, Path(tmp) / "gpen.onnx"), threads=2)
        idle = {where: run(model, session, args.repeats) for where, run in threads.items()}
        other = subprocess.Popen([sys.executable, *OTHER_JOBS[args.other]], start_new_session=True)
        try:
            time.sleep(2.0)  # the other job is running at full speed
            busy = {where: run(model, session, args.repeats) for where, run in threads.items()}
        finally:
            os.killpg(other.pid, signal.SIGKILL)  # the job and any processes it started
            other.wait()
    out = {"size": args.size, "threads": 2, "other_job": args.other}
    for where in threads:
        rows = {}
        for name in RUNNERS:
            alone, beside = statistics.median(idle[where][name]), statistics.median(busy[where][name])
            rows[name] = {"idle_s": alone, "beside_other_job_s": beside, "slowdown": beside / alone,
                          "idle_runs": idle[where][name], "beside_runs": busy[where][name]}
            print(f"{where}, {name:12s} idle {alone:.2f} s, beside the other job ({args.other}) {beside:.2f} s: "
                  f"slowdown {beside / alone:.2f}")
        ratio = rows["ours"]["slowdown"] / rows["onnxruntime"]["slowdown"]
        print(f"{where}: our slowdown / onnxruntime's {ratio:.2f} (goal <= 1.2)")
        out[where] = {"runners": rows, "slowdown_over_onnxruntime": ratio}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
