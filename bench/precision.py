"""Precision benchmark: GPEN in fp32, bf16 and fp16 at several batch sizes on one device.

Run from the repository root (on a machine with a GPU it picks the GPU):

    .venv/bin/python bench/precision.py                          # BFR-512, batch 1/8/16
    .venv/bin/python bench/precision.py --device cpu --size 256 --batches 1 2 --precisions fp32 bf16

For every precision and batch: faces per second (median of several timed runs after
a warm-up, the device synchronised around each) and the error against the fp32
output on the same input: the largest absolute difference and the same divided by
the largest fp32 magnitude (the relative error the performance issue's target uses).
Writes bench/results/precision_<device>.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from gpen_arch import DTYPES  # noqa: E402
from network import GMAC, random_gpen  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_runs(model, x: torch.Tensor, repeats: int) -> tuple[torch.Tensor, list[float]]:
    """The output of a warm-up run, then `repeats` timed runs (seconds)."""
    with torch.inference_mode():
        out = model(x)
        synchronize(x.device)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            synchronize(x.device)
            times.append(time.perf_counter() - t)
    return out, times


def errors(out: torch.Tensor, reference: torch.Tensor) -> dict:
    diff = (out.float() - reference).abs()
    peak = float(reference.abs().max())
    return {"max_abs_err": float(diff.max()), "mean_abs_err": float(diff.mean()),
            "rel_err": float(diff.max()) / peak if peak > 0 else float("nan"),
            "finite": bool(torch.isfinite(out).all())}


def precision_rows(size: int, device: torch.device, precisions, batches, repeats: int) -> list[dict]:
    """One row per (precision, batch): faces/s and the error against fp32 on the same faces."""
    base = random_gpen(size)
    rows = []
    for batch in batches:
        torch.manual_seed(batch)
        x = (torch.rand(batch, 3, size, size) * 2 - 1).to(device)
        reference = None
        for name in ["fp32"] + [p for p in precisions if p != "fp32"]:
            model = copy.deepcopy(base).to(device=device, dtype=DTYPES[name])  # from the fp32 weights each time
            out, times = timed_runs(model, x, repeats)
            out = out.float()
            if reference is None:
                reference = out
            seconds = statistics.median(times)
            row = {"size": size, "device": str(device), "precision": name, "batch": batch, "seconds": seconds,
                   "faces_per_s": batch / seconds, "gmac_per_s": GMAC.get(size, float("nan")) * batch / seconds,
                   "runs": times, **errors(out, reference)}
            if name in precisions:
                rows.append(row)
                print(f"GPEN-{size} {name} batch {batch:>2} on {device}: {row['faces_per_s']:8.2f} faces/s, "
                      f"error vs fp32 {row['max_abs_err']:.1e} max abs, {row['rel_err']:.1e} relative"
                      + ("" if row["finite"] else ", NOT FINITE"))
            del model, out
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else None,
                        help="cuda, cpu, mps... (default: cuda when there is one)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--precisions", nargs="+", choices=list(DTYPES), default=["fp32", "bf16", "fp16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.device is None:
        print("precision: no GPU here; skipped (--device cpu runs it on the CPU, slowly in fp16)")
        return
    device = torch.device(args.device)
    print(f"device: {describe(device)}, torch {torch.__version__}")
    rows = precision_rows(args.size, device, args.precisions, args.batches, args.repeats)
    path = args.json or ROOT / "bench" / "results" / f"precision_{device.type}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"device": describe(device), "torch": torch.__version__, "rows": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
