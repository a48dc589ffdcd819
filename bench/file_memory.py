"""Peak memory of `gpen restore` on one large image file, per pixel, measured in a fresh process.

    .venv/bin/python bench/file_memory.py --side 8000 --kind u16-rgba   # 8000x8000 16-bit RGBA PNG
    .venv/bin/python bench/file_memory.py --kind u8-rgb --cli OTHER_TREE/gpen_cli.py   # another version
    .venv/bin/python bench/file_memory.py --kind u8-rgb --format jpg   # a JPEG in and out (the DCT copy)

The image is black with the astronaut photo (--share of the side, 0.25: its face is a twentieth
of the side) in its top-left corner; the
random-weight 64 px fixture model restores it. The peak RSS of the command (ru_maxrss from wait4)
less that of the same command on a 64x64 image (the interpreter, torch, the models) is what the
image costs; divided by the pixels, the bytes per pixel. Prints one JSON line; --json saves it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fixture_files import S64_MODEL_FILE  # noqa: E402

KINDS = ("u8-rgb", "u16-rgba", "u16-grey")


def make_image(side: int, kind: str, share: float = 0.25) -> np.ndarray:
    import skimage.data

    part = max(16, int(side * share))
    face = cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR), (part, part),
                      interpolation=cv2.INTER_LINEAR)
    if kind == "u16-grey":
        face = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    elif kind == "u16-rgba":
        face = cv2.cvtColor(face, cv2.COLOR_BGR2BGRA)
    image = np.zeros((side, side) + face.shape[2:], np.uint16 if kind.startswith("u16") else np.uint8)
    image[:part, :part] = face.astype(np.uint16) * 257 if kind.startswith("u16") else face
    return image


def peak_rss(cli: Path, source: Path, target: Path) -> tuple[float, float, str]:
    """(peak RSS in bytes, seconds, stdout) of one `gpen restore` run."""
    env = {**os.environ, "PYTHONPATH": str(cli.parent), "OMP_NUM_THREADS": "2"}
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, str(cli), "restore", str(source), "--model", str(S64_MODEL_FILE),
                                 "-o", str(target), "--mask", "box"], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=cli.parent)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        said = out.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        sys.exit(f"gpen restore failed ({proc.returncode}): {said[-2000:]}")
    return usage.ru_maxrss * 1024.0, time.perf_counter() - started, said.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=8000)
    parser.add_argument("--kind", choices=KINDS, default="u16-rgba")
    parser.add_argument("--share", type=float, default=0.25, help="the astronaut photo's share of the side")
    parser.add_argument("--format", choices=("png", "jpg"), default="png",
                        help="the file type in and out (jpg: 8-bit RGB only, quality 90)")
    parser.add_argument("--cli", type=Path, default=ROOT / "gpen_cli.py", help="the gpen_cli.py to measure")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if args.format == "jpg" and args.kind != "u8-rgb":
        parser.error("--format jpg takes --kind u8-rgb")
    quality = [cv2.IMWRITE_JPEG_QUALITY, 90] if args.format == "jpg" else []
    with tempfile.TemporaryDirectory() as folder:
        folder, ext = Path(folder), args.format
        cv2.imwrite(str(folder / f"small.{ext}"), make_image(64, args.kind), quality)
        cv2.imwrite(str(folder / f"large.{ext}"), make_image(args.side, args.kind, args.share), quality)
        base, _, _ = peak_rss(args.cli.resolve(), folder / f"small.{ext}", folder / f"small-out.{ext}")
        peak, seconds, said = peak_rss(args.cli.resolve(), folder / f"large.{ext}", folder / f"large-out.{ext}")
        file_mb = (folder / f"large.{ext}").stat().st_size / 2 ** 20
    pixels = args.side * args.side
    result = {"side": args.side, "kind": args.kind, "format": args.format, "share": args.share, "file_mb": round(file_mb, 1), "baseline_mb": round(base / 2 ** 20),
              "peak_mb": round(peak / 2 ** 20), "bytes_per_pixel": round((peak - base) / pixels, 1),
              "seconds": round(seconds, 1), "said": said.splitlines()[-1:]}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
