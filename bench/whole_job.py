"""Whole-job benchmark: our enhance_image against the ReActor-style glue, on the same faces.

    .venv/bin/python bench/whole_job.py        # prints the table, writes bench/results/whole_job.json

The glue is what ReActor runs for GPEN-BFR-512.onnx: facexlib's FaceRestoreHelper (its cv2 warps
and its inverse-affine paste with its own box mask) around onnxruntime on the official-form graph
(each face's kernels modulated at run time, network.official_form_onnx). Its own RetinaFace would
need weights downloaded (a random one finds nothing), so it is given the faces our detector found:
both sides detect with the same detector and restore the same faces; ours is enhance_image with a
box mask and our torch GPEN-512, the same random weights. Each side runs in its own process (its
peak resident memory is its own), both processes twice, in turn; medians of their runs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gpen_arch import GPENModel  # noqa: E402
from gpen_pipeline import (DEFAULT_DETECTOR, EnhanceOptions, PasteOptions, enhance_image, find_faces,  # noqa: E402
                           load_detector)
from network import official_form_onnx, ort_session, random_gpen  # noqa: E402
from pipeline import frame_720p, peak_rss_mb, scene_1080p  # noqa: E402

SCENES = {"720p, one face": lambda: frame_720p(0), "1080p, three faces": scene_1080p}


def glue(onnx_path: Path, weights: Path, threads: int):
    """A function image -> image doing the ReActor-style job."""
    import cv2
    from facexlib.utils.face_restoration_helper import FaceRestoreHelper

    session = ort_session(onnx_path, threads)
    detector = load_detector(DEFAULT_DETECTOR, device="cpu")
    helper = FaceRestoreHelper(1, face_size=512, crop_ratio=(1, 1), det_model="retinaface_resnet50",
                               save_ext="png", use_parse=False, device="cpu", model_rootpath=str(weights))

    def run(rgb: np.ndarray) -> np.ndarray:
        helper.clean_all()
        helper.read_image(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        helper.all_landmarks_5 = [face.landmarks for face in find_faces(rgb, detector).selected]
        helper.align_warp_face()
        for crop in helper.cropped_faces:
            x = (crop[:, :, ::-1].astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
            out = session.run(None, {"input": np.ascontiguousarray(x)})[0][0]
            face = np.clip((out.transpose(1, 2, 0) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
            helper.add_restored_face(np.ascontiguousarray(face[:, :, ::-1]))
        helper.get_inverse_affine(None)
        return cv2.cvtColor(helper.paste_faces_to_input_image().astype(np.uint8), cv2.COLOR_BGR2RGB)

    return run


def ours(threads: int):
    model = GPENModel.of(random_gpen(512))
    detector = load_detector(DEFAULT_DETECTOR, device="cpu")
    options = EnhanceOptions(paste=PasteOptions(mask_mode="box"))
    return lambda rgb: enhance_image(rgb, model, detector, options).image


def child(args) -> None:
    """Runs one side in this process and prints its figures as JSON."""
    torch.set_num_threads(args.threads)
    run = glue(args.onnx, args.weights, args.threads) if args.side == "glue" else ours(args.threads)
    figures = {}
    with torch.inference_mode():
        for name, make in SCENES.items():
            image = make()
            run(image)  # warm-up
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                run(image)
                times.append(time.perf_counter() - started)
            figures[name] = times
    print(json.dumps({"times": figures, "peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "whole_job.json")
    parser.add_argument("--side", choices=("ours", "glue"), help=argparse.SUPPRESS)
    parser.add_argument("--onnx", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args)
        return
    from facexlib.detection.retinaface import RetinaFace
    from facexlib.parsing.parsenet import ParseNet

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        official_form_onnx(random_gpen(512), folder / "gpen512.onnx")
        # A random RetinaFace and ParseNet where facexlib looks for their files (the helper loads both,
        # even without use_parse), so that it builds offline; neither takes part in the job.
        torch.save(RetinaFace(network_name="resnet50", half=False, device="cpu").state_dict(),
                   folder / "detection_Resnet50_Final.pth")
        torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(), folder / "parsing_parsenet.pth")
        runs: dict[str, list[dict]] = {"ours": [], "glue": []}
        for _ in range(2):
            for side in ("ours", "glue"):
                out = subprocess.run([sys.executable, __file__, "--side", side, "--onnx", str(folder / "gpen512.onnx"),
                                      "--weights", str(folder), "--repeats", str(args.repeats),
                                      "--threads", str(args.threads)], capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"the {side} side failed:\n{out.stderr[-3000:]}")
                runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = {}
    for name in SCENES:
        row = {side: statistics.median([t for run in runs[side] for t in run["times"][name]]) for side in runs}
        row["ratio_ours_over_glue"] = row["ours"] / row["glue"]
        table[name] = row
        print(f"{name}: ours {row['ours']:.2f} s, ReActor-style glue {row['glue']:.2f} s: ratio "
              f"{row['ratio_ours_over_glue']:.2f}")
    memory = {side: max(run["peak_rss_mb"] for run in runs[side]) for side in runs}
    print(f"peak resident memory: ours {memory['ours']:.0f} MB, glue {memory['glue']:.0f} MB")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"threads": args.threads, "scenes": table, "peak_rss_mb": memory,
                                     "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
