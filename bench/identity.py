"""Identity benchmark: what scoring a face costs beside restoring it with GPEN-BFR-512 on this machine.

Run from the repository root:

    .venv/bin/python bench/identity.py              # writes bench/results/identity.json

No real recognition weights are at hand, so a random-weight IResNet-50 of insightface's ArcFace-R50
layout (the network of w600k_r50.onnx: layers 3-4-14-3 of 64-512 channels on 112x112, a 25088 -> 512
projection; about 43.6 M parameters) is exported to ONNX and run the way the pack runs the real file
(recognition.load_recognizer, onnxruntime on the CPU). On one 512x512 photo with one face, timed
alternately on a worker thread (medians): the GPEN-512 network alone, the identity score of the face
(two ArcFace crops cut and embedded: before and after), and the whole of enhance_image without a
recognizer, with one, and with the guard searching (a floor no restoration reaches).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import skimage.data  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from gpen_arch import GPENModel  # noqa: E402
from gpen_pipeline import DEFAULT_DETECTOR, EnhanceOptions, detect_faces, enhance_image, load_detector  # noqa: E402
from gpen_pipeline.identity import IdentityCheck, identity_scores, load_recognizer  # noqa: E402
from network import on_worker_thread, random_gpen  # noqa: E402


class Block(nn.Module):
    """insightface's IBasicBlock: BN, 3x3 conv, BN, PReLU, 3x3 conv (strided), BN, plus the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.PReLU(cout), nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


def iresnet50() -> nn.Module:
    layers, widths = (3, 4, 14, 3), (64, 128, 256, 512)
    blocks, cin = [], 64
    for count, width in zip(layers, widths):
        for index in range(count):
            blocks.append(Block(cin, width, 2 if index == 0 else 1))
            cin = width
    return nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64), *blocks,
                         nn.BatchNorm2d(512), nn.Flatten(), nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512)).eval()


def export_arcface_r50(path: Path) -> int:
    """Write the random IResNet-50 as ONNX (input `input.1`, dynamic batch); its parameter count."""
    torch.manual_seed(0)
    net = iresnet50()
    torch.onnx.export(net, torch.zeros(1, 3, 112, 112), str(path), input_names=["input.1"], output_names=["embedding"],
                      dynamic_axes={"input.1": {0: "N"}, "embedding": {0: "N"}}, opset_version=13, dynamo=False)
    return sum(p.numel() for p in net.parameters())


def alternate(runs: dict, repeats: int) -> dict:
    """Seconds of each named callable, run in turn `repeats` times after one warm-up each."""
    times = {name: [] for name in runs}
    for name, run in runs.items():
        run()
    for _ in range(repeats):
        for name, run in runs.items():
            time.sleep(0.3)
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def measure(repeats: int) -> dict:
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w600k_r50.onnx"
        parameters = export_arcface_r50(path)
        recognizer = load_recognizer(path, device="cpu")
        model = GPENModel.of(random_gpen(512))
        detector = load_detector(DEFAULT_DETECTOR, device="cpu")
        photo = skimage.data.astronaut()
        faces = detect_faces(detector, photo)
        restored = enhance_image(photo, model, detector).image
        x = torch.rand(1, 3, 512, 512) * 2 - 1

        def network():
            with torch.inference_mode():
                model(x)

        scored, guarded = IdentityCheck(recognizer), IdentityCheck(recognizer, min_identity=0.999)
        times = alternate({
            "gpen512_network_s": network,
            "identity_score_s": lambda: identity_scores(recognizer, photo, restored, faces),
            "enhance_s": lambda: enhance_image(photo, model, detector, EnhanceOptions()),
            "enhance_scored_s": lambda: enhance_image(photo, model, detector, identity=scored),
            "enhance_guarded_s": lambda: enhance_image(photo, model, detector, identity=guarded),
        }, repeats)
    medians = {name: statistics.median(values) for name, values in times.items()}
    best = {name: min(values) for name, values in times.items()}
    return {"recognizer_parameters": parameters, "faces": len(faces), "threads": torch.get_num_threads(),
            **medians,
            "identity_share_of_gpen512": medians["identity_score_s"] / medians["gpen512_network_s"],
            # The fastest runs are the least disturbed by other load: their ratio is the steadier figure.
            "best_identity_share_of_gpen512": best["identity_score_s"] / best["gpen512_network_s"],
            "scored_overhead_share": medians["enhance_scored_s"] / medians["enhance_s"] - 1,
            "guarded_overhead_share": medians["enhance_guarded_s"] / medians["enhance_s"] - 1,
            "runs": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = on_worker_thread(measure, args.repeats)
    out = ROOT / "bench" / "results" / "identity.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ArcFace-R50 layout, {result['recognizer_parameters'] / 1e6:.1f} M parameters, random weights")
    print(f"GPEN-512 network          {result['gpen512_network_s']:.3f} s/face")
    print(f"identity score (2 embeds) {result['identity_score_s'] * 1000:.0f} ms/face = "
          f"{result['identity_share_of_gpen512']:.1%} of GPEN-512 (fastest runs: "
          f"{result['best_identity_share_of_gpen512']:.1%}; goal < 5 %)")
    print(f"enhance_image             {result['enhance_s']:.3f} s; scored {result['enhance_scored_s']:.3f} s "
          f"(+{result['scored_overhead_share']:.1%}); guard searching {result['enhance_guarded_s']:.3f} s "
          f"(+{result['guarded_overhead_share']:.1%})")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
