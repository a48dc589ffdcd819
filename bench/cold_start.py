"""Cold start: how long a fresh process takes from launch to its first restored face.

Run from the repository root:

    .venv/bin/python bench/cold_start.py            # GPEN-BFR-512 layout, random weights

A random GPEN of the size asked is saved to a temporary .pth (flushed to disk, then read once by an
untimed run, as a model file used before is found), then each fresh process times: importing torch
and the pack, reading the file's tensors with torch.load (the floor for loading it), gpen_arch.load_model
in its two parts (reading and building the network, then GPEN.prepare, which load_model runs by default:
the work the first call on the CPU would otherwise do), the first call and two steady calls. Writes
bench/results/cold_start.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time
start = time.perf_counter()
import torch
sys.path.insert(0, {root!r})
import gpen_arch
torch.set_num_threads({threads})
imported = time.perf_counter()
state = torch.load({path!r}, weights_only=True)
read = time.perf_counter()
del state
model = gpen_arch.load_model({path!r}, prepare=False)
built = time.perf_counter()
model.network.prepare()
loaded = time.perf_counter()
x = torch.zeros(1, 3, model.size, model.size)
calls = []
for _ in range(3):
    t = time.perf_counter(); model(x); calls.append(time.perf_counter() - t)
print(json.dumps({{"import_s": imported - start, "read_s": read - imported, "build_s": built - read,
                  "prepare_s": loaded - built, "load_s": loaded - read, "first_call_s": calls[0],
                  "steady_call_s": min(calls[1:]),
                  "compiler_imported": any(m.startswith(("torch._dynamo", "sympy")) for m in sys.modules)}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "cold_start.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    import torch
    from network import random_gpen

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / f"GPEN-BFR-{args.size}.pth")
        torch.save(random_gpen(args.size).state_dict(), path)
        # The file just written is still being flushed to disk by the kernel, which took the CPU from
        # the first runs (first calls of 1.9-2.8 s against 1.3 s): it is written out before any run.
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        code = _CHILD.format(root=str(ROOT), path=path, threads=args.threads)
        runs = []
        for index in range(args.runs + 1):  # the first: untimed, so every timed run finds the file cached
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            if index:
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for run in runs:
        print(f"import {run['import_s']:.2f} s, read {run['read_s']:.2f} s, load_model {run['load_s']:.2f} s: read "
              f"and build {run['build_s']:.2f} s ({run['build_s'] / run['read_s']:.2f}x the read) + prepare "
              f"{run['prepare_s']:.2f} s; first call {run['first_call_s']:.2f} s, steady {run['steady_call_s']:.2f} s "
              f"({run['first_call_s'] / run['steady_call_s']:.2f}x); load_model and first call "
              f"{run['load_s'] + run['first_call_s']:.2f} s; compiler or sympy imported: {run['compiler_imported']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"size": args.size, "threads": args.threads, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
