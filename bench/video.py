"""Video benchmark: how much the face tracks' smoothing steadies the alignment, how closely it follows a
fast move, and the command line's memory on a long clip. Printed, and written to bench/results/video.json.

    .venv/bin/python bench/video.py                       # stability, lag, memory on 1000 frames of 1280x720
    .venv/bin/python bench/video.py --memory-frames 300   # a shorter clip for the memory part

1. Stability: skimage's astronaut drifting by a known sub-pixel motion (0.13, 0.07 px a frame, cubic
   resampling) with Gaussian sensor noise (sigma 3 levels) in every frame. The corners of the 512 px
   alignment crop, with the known motion taken out: their RMS frame-to-frame jitter and their RMS
   deviation (about their mean), each frame detected on its own vs tracked and smoothed. Then the
   faces restored (SMALL_GPEN) and the mean frame-to-frame change of the output inside the face (motion
   compensated by shifting each frame back by the known drift), against the same measure on the input:
   its own noise. Random weights draw much the same face whatever the crop, so this figure only means
   something with real weights (--model).
2. Lag: the astronaut still for 10 frames, then moving right 20 px a frame (whole pixels, no noise):
   the largest distance between a smoothed and a per-frame crop corner in each frame after the start.
3. Steadiness of the paste: the astronaut still, fresh noise (sigma 6) in every frame, each face
   'restored' into a smoothed copy of its crop, pasted with mask mode 'parse' (the official fixtures'
   narrow random ParseNet, whose parse maps change with the noise): the mean frame-to-frame change
   of the paste mask inside the face, without and with the track memory (gpen_pipeline/track_memory.py, smoothing 0.5).
4. Memory: `gpen_cli.py restore` on a 1280x720 H.264 clip with one moving face (SMALL_GPEN: a 512
   model takes hours for 1000 frames on a small CPU): the process's resident memory sampled through
   the run, frames per second and the time in the face stages against decode/encode.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
import torch  # noqa: E402

from gpen_arch import GPEN, GPENConfig  # noqa: E402
from gpen_pipeline import (DEFAULT_DETECTOR, EnhanceOptions, PasteOptions, TrackOptions,  # noqa: E402
                           enhance_images, find_clip_faces, load_detector)
from gpen_pipeline.align import aligned_record  # noqa: E402

# A GPEN-256 of the real layout with 1/16 of the channels and random weights: the pipeline's work around
# the network is what a video costs beyond it, and a full network would take hours on a small CPU.
SMALL_GPEN = GPENConfig(256, style_dim=64, n_mlp=2, channel_multiplier=1, narrow=0.0625)

DRIFT = np.array([0.13, 0.07])


def shifted(photo: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(photo, matrix, photo.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def corners(face, hw) -> np.ndarray:
    inverse = aligned_record(face, 512, hw).inverse
    return np.array([[0, 0, 1], [511, 0, 1], [0, 511, 1], [511, 511, 1]], float) @ inverse.T


def stability(detector, model_file: Path, frames: int, restored_frames: int) -> dict:
    photo = skimage.data.astronaut()
    rng = np.random.default_rng(1)
    clip = [np.clip(shifted(photo, *(DRIFT * t)) + rng.normal(0, 3, photo.shape), 0, 255).astype(np.uint8)
            for t in range(frames)]
    motion = DRIFT * np.arange(frames)[:, None]
    out = {}
    for name, smoothing in (("per_frame", 0.0), ("smoothed", TrackOptions().smoothing)):
        found = find_clip_faces(clip, detector, track=TrackOptions(smoothing=smoothing))
        place = np.array([corners(f.selected[0], photo.shape[:2]) for f in found]) - motion[:, None, :]
        steps = np.diff(place, axis=0)
        out[name] = {"jitter_px": float(np.sqrt((steps ** 2).sum(-1).mean())),
                     "deviation_px": float(np.sqrt(((place - place.mean(0)) ** 2).sum(-1).mean()))}
        model = _load(model_file)
        options = EnhanceOptions(paste=PasteOptions(mask_mode="box"))
        results = enhance_images(clip[:restored_frames], model, detector, options, faces=[each.selected for each in found[:restored_frames]])
        out[name]["output_change"] = _change([r.image for r in results], found[0].selected[0].box)
    out["input_change"] = _change(clip[:restored_frames], found[0].selected[0].box)
    out["jitter_ratio"] = out["per_frame"]["jitter_px"] / out["smoothed"]["jitter_px"]
    out["deviation_ratio"] = out["per_frame"]["deviation_px"] / out["smoothed"]["deviation_px"]
    return out


def _change(frames, box) -> float:
    """Mean absolute change between consecutive frames inside the face box, each shifted back by the drift."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    back = [shifted(np.asarray(f), *(-DRIFT * t)).astype(np.float32)[y0 + 4:y1 - 4, x0 + 4:x1 - 4]
            for t, f in enumerate(frames)]
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(back, back[1:])]))


def lag(detector) -> dict:
    photo = skimage.data.astronaut()
    canvas = np.full((512, 1024, 3), 90, np.uint8)
    clip = []
    for t in range(20):
        x = 20 * max(0, t - 10)
        frame = canvas.copy()
        frame[:, x:x + 512] = photo[:, : min(512, 1024 - x)]
        clip.append(frame)
    raw = find_clip_faces(clip, detector, track=TrackOptions(smoothing=0.0))
    smooth = find_clip_faces(clip, detector)
    hw = canvas.shape[:2]
    return {f"frame_{t - 10}": float(np.abs(corners(s.selected[0], hw) - corners(r.selected[0], hw)).max())
            for t, (r, s) in enumerate(zip(raw, smooth)) if t > 10}


def steadiness(detector, frames: int = 12) -> dict:
    import shutil

    from gpen_pipeline import RestoredFace, TrackMemory, align_faces, paste_back
    from gpen_pipeline.cut import as_tensor, cut_crops
    from gpen_pipeline.parsenet import ParseNetForward
    from gpen_pipeline.parsing import load_parser

    rng = np.random.default_rng(5)
    photo = skimage.data.astronaut()
    clip = [np.clip(photo + rng.normal(0.0, 6.0, photo.shape), 0, 255).astype(np.uint8) for _ in range(frames)]
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(ROOT / "tests" / "fixtures" / "gpen" / "parsenet_narrow.pth", Path(folder) / "parsing_parsenet.pth")
        exact = load_parser("parsenet", [folder], precision="fp32")
    # What a clip's masks would be parsed in bf16 (clips keep fp32: this row is why).
    fast = dataclasses.replace(exact, fast=ParseNetForward(exact.forward.weights, dtype=torch.bfloat16))
    options = PasteOptions(mask_mode="parse")
    results = {}
    for name, memory, parser in (("per_frame", None, exact), ("track_memory", TrackMemory.for_smoothing(0.5), exact),
                                 ("per_frame_bf16", None, fast)):
        masks = []
        for frame, found in zip(clip, find_clip_faces(clip, detector)):
            aligned, _ = align_faces(frame, found.selected, 256)
            crops = cut_crops(as_tensor(frame), [a.affine for a in aligned], 256)
            smooth = torch.nn.functional.avg_pool2d(crops.float(), 5, stride=1, padding=2, count_include_pad=False)
            faces = [RestoredFace(a, s.round().to(torch.uint8), c) for a, c, s in zip(aligned, crops, smooth)]
            pasted = paste_back(frame, faces, options, parser, memory=memory)
            if memory is not None:
                memory.next_frame()
            masks.append(pasted.mask.numpy())
        inside = masks[0] > 0
        results[name] = {"mask_change": float(np.mean([np.abs(b[inside] - a[inside]).mean()
                                                       for a, b in zip(masks, masks[1:])]))}
    return results


def memory(model_file: Path, frames: int, folder: Path) -> dict:
    photo = cv2.resize(skimage.data.astronaut(), (360, 360), interpolation=cv2.INTER_AREA)
    source = folder / "long.mp4"
    with av.open(str(source), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for t in range(frames):
            rgb = np.full((720, 1280, 3), 70, np.uint8)
            x = int(400 + 300 * np.sin(t / 40))
            rgb[180:540, x:x + 360] = photo
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = t
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    command = [sys.executable, str(ROOT / "gpen_cli.py"), "restore", str(source), "--model", str(model_file),
               "-o", str(folder / "restored.mp4"), "--mask", "box"]
    started = time.monotonic()
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []
    while run.poll() is None:
        status = Path(f"/proc/{run.pid}/status")
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            samples.append((time.monotonic() - started, int(fields["VmRSS"].split()[0]) / 1024))
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    stdout, stderr = run.communicate()
    if run.returncode:
        raise SystemExit(f"the command line failed: {stderr}")
    total = time.monotonic() - started
    # The sample nearest each twentieth of the run: a short run can end before a sample at its 95 %.
    twentieths = {f"rss_mb_at_{q}pct": round(min(samples, key=lambda sample: abs(sample[0] - total * q / 100))[1])
                  for q in range(5, 100, 5)}
    return {"frames": frames, "seconds": total, "peak_rss_mb": max(mb for _, mb in samples), **twentieths,
            "rss_mb_last": samples[-1][1], "cli_says": stdout.strip()}


def _load(model_file: Path):
    import gpen_arch

    return gpen_arch.load_model(model_file, device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="stability clip length")
    parser.add_argument("--restored-frames", type=int, default=40, help="frames restored for the output change")
    parser.add_argument("--memory-frames", type=int, default=1000)
    parser.add_argument("--model", type=Path, help="a GPEN file to use instead of SMALL_GPEN")
    args = parser.parse_args()
    torch.set_num_threads(2)
    detector = load_detector(DEFAULT_DETECTOR, device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model_file = args.model
        if model_file is None:
            model_file = folder / "GPEN-BFR-256.pth"
            torch.manual_seed(0)
            torch.save(GPEN(SMALL_GPEN).state_dict(), model_file)
        results = {"stability": stability(detector, model_file, args.frames, args.restored_frames),
                   "lag_px": lag(detector), "paste_steadiness": steadiness(detector)}
        print(json.dumps(results, indent=1), flush=True)
        results["memory"] = memory(model_file, args.memory_frames, folder)
    print(json.dumps(results["memory"], indent=1))
    out = ROOT / "bench" / "results" / "video.json"
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
