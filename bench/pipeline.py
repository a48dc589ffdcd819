"""Pipeline benchmark: where the time goes around the network, and frames per second.

Run from the repository root:

    .venv/bin/python bench/pipeline.py                 # random-weight GPEN-BFR-512
    .venv/bin/python bench/pipeline.py --frames 48     # + the 48-frame 1280x720 batch

1. A 1920x1080 image with three faces (built from real photos shipped in
   scikit-image and matplotlib): the find / align / restore / paste stages
   (and the crop cut inside restore), medians after a warm-up, and the overhead
   (everything but the network) as a share of the network's time.
2. A batch of 1280x720 frames with one face each through `enhance_images`, in a
   fresh process: faces per second and that process's peak RSS.
Both run on a worker thread, as nodes do in ComfyUI. Writes bench/results/pipeline.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gpen_arch import GPENModel  # noqa: E402
from gpen_pipeline import (DEFAULT_DETECTOR, EnhanceOptions, align_faces, enhance_images, find_faces,  # noqa: E402
                           load_detector, paste_back, restore_faces)
from gpen_pipeline.cut import as_tensor, cut_crops  # noqa: E402
from network import on_worker_thread, random_gpen  # noqa: E402


def photos() -> list[np.ndarray]:
    import matplotlib.cbook
    import skimage.data

    hopper = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return [skimage.data.astronaut(), cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB)]


def scene_1080p() -> np.ndarray:
    """Three faces of different sizes on a 1920x1080 canvas."""
    astronaut, hopper = photos()
    canvas = cv2.resize(cv2.GaussianBlur(hopper, (0, 0), 25), (1920, 1080))
    canvas[60:572, 80:592] = astronaut
    canvas[300:900, 700:1212] = hopper
    small = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)
    canvas[600:920, 1450:1770] = small[:, ::-1]
    return canvas


def frame_720p(index: int) -> np.ndarray:
    astronaut, _ = photos()
    frame = np.full((720, 1280, 3), 90, np.uint8)
    x = 100 + (index * 13) % 600
    frame[100:612, x:x + 512] = astronaut
    return frame


def median_time(fn, repeats: int):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def stage_split(model, detector, image, repeats: int) -> dict:
    """The four stages that every front end calls, timed one by one on the same image; the crop cut
    inside the restore stage is timed apart too, so that the network's share is its own."""
    options = EnhanceOptions()
    detect_s, found = median_time(lambda: find_faces(image, detector, options.select), repeats)
    align_s, (aligned, _) = median_time(lambda: align_faces(image, found.selected, model.size), repeats)
    pixels = as_tensor(image, model.device)
    cut_s, _ = median_time(lambda: cut_crops(pixels, [a.affine for a in aligned], model.size), repeats)
    restore_s, (restored,) = median_time(lambda: restore_faces(model, [image], [aligned]), max(1, repeats // 2))
    paste_s, _ = median_time(lambda: paste_back(image, restored, options.paste), repeats)
    network_s = restore_s - cut_s
    overhead = detect_s + align_s + cut_s + paste_s
    return {"faces": len(aligned), "detect_s": detect_s, "align_s": align_s, "cut_s": cut_s, "restore_s": restore_s,
            "paste_s": paste_s, "overhead_s": overhead, "overhead_over_network": overhead / network_s}


def peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024


def frames_per_second(model, detector, count: int) -> dict:
    frames = [frame_720p(i) for i in range(count)]
    done = []
    t = time.perf_counter()
    results = enhance_images(frames, model, detector, progress=lambda n, total: done.append(n))
    elapsed = time.perf_counter() - t
    faces = sum(len(r.faces) for r in results)
    frames_mb = sum(f.nbytes for f in frames) / 2**20
    return {"frames": count, "faces": faces, "seconds": elapsed, "faces_per_s": faces / elapsed,
            "progress_calls": len(done), "peak_rss_mb": peak_rss_mb(), "frames_mb": frames_mb,
            "target_peak_rss_mb": frames_mb + 1536}


def frames_in_child(args) -> dict:
    command = [sys.executable, __file__, "--frames-child", str(args.frames), "--size", str(args.size),
               "--threads", str(args.threads)] + (["--reuse-freed-memory"] if args.reuse_freed_memory else [])
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=0, help="also run a batch of this many 1280x720 frames")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "pipeline.json")
    parser.add_argument("--reuse-freed-memory", action="store_true",
                        help="apply the command line's allocator setting (gpen_cli.keep_freed_memory)")
    parser.add_argument("--frames-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reuse_freed_memory:
        from gpen_cli import keep_freed_memory

        keep_freed_memory()
    torch.set_num_threads(args.threads)
    model = GPENModel.of(random_gpen(args.size))
    detector = load_detector(DEFAULT_DETECTOR)
    if args.frames_child:
        print(json.dumps(on_worker_thread(frames_per_second, model, detector, args.frames_child)))
        return
    split = on_worker_thread(stage_split, model, detector, scene_1080p(), args.repeats)
    print(f"1920x1080, {split['faces']} faces, GPEN-{args.size}: detect {split['detect_s'] * 1e3:.0f} ms, "
          f"align {split['align_s'] * 1e3:.1f} ms, cut {split['cut_s'] * 1e3:.0f} ms, "
          f"restore {split['restore_s']:.2f} s, paste {split['paste_s'] * 1e3:.0f} ms; "
          f"overhead {split['overhead_over_network']:.1%} of the network")
    report = {"model_size": args.size, "threads": args.threads, "scene_1080p": split,
              "allocator": "reuse_freed_memory" if args.reuse_freed_memory else "default"}
    if args.frames:
        del model, detector  # the frame batch runs in a fresh process: its peak RSS is its own
        batch = frames_in_child(args)
        print(f"{batch['frames']} frames 1280x720: {batch['faces_per_s']:.2f} faces/s, "
              f"peak RSS {batch['peak_rss_mb']:.0f} MB (target: the frames' {batch['frames_mb']:.0f} MB + 1536 MB "
              f"= {batch['target_peak_rss_mb']:.0f} MB)")
        report["frames_720p"] = batch
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
