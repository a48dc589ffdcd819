"""How far a face parsed at 256 (logits resized to 512), or in bfloat16, pastes like one parsed at 512 in float32.

Run from the repository root:

    .venv/bin/python bench/parser_masks.py

Real photos (samples/astronaut.jpg, skimage's astronaut and camera, matplotlib's
Grace Hopper) are resized so that each detected face's box lands at a range of
sizes; each face's aligned 512 crop is parsed at 512 and at 256 by two random
ParseNets (the test fixture's narrow one, and one of the released widths, as no
trained weights may be shipped here), and in bfloat16 at 512 (what mask modes
other than `official` run where bf16 is fast), and its parse-mode mask is pasted
with the crop's colours inverted (so that every pixel the masks disagree on
shows). Reported per face size: label agreement in the crop, IoU of the pasted
masks (> 0.5) and the share of pasted pixels whose value differs by more than
one grey level; as the instrument's own noise, the same face cut half a pixel
off and parsed at 512 in float32. Writes bench/results/parser_masks.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gpen_pipeline import DEFAULT_DETECTOR, align_faces, find_faces, load_detector  # noqa: E402
from gpen_pipeline.cut import as_tensor, cut_crops  # noqa: E402
from gpen_pipeline.face import crops_to_numpy  # noqa: E402
from gpen_pipeline.masks import paste_masks  # noqa: E402
from gpen_pipeline.parsenet import ParseNetForward, parsenet_weights  # noqa: E402
from gpen_pipeline.parsing import (PARSE_SIZE, SMALL_PARSE_SIZE, WEIGHT_FILES, FaceParser, load_parser,  # noqa: E402
                                   parse_labels, region_mask)
from gpen_pipeline.paste import paste_faces  # noqa: E402

FACE_PX = (48, 64, 96, 128, 160, 192, 256, 320, 384, 512)
COMPARED = {"small": "at 256", "bf16": "in bf16", "shift": "half-pixel shift"}


def photos() -> dict[str, np.ndarray]:
    import matplotlib.cbook
    import skimage.data

    hopper = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    sample = cv2.imread(str(ROOT / "samples" / "astronaut.jpg"))
    return {"samples/astronaut.jpg": cv2.cvtColor(sample, cv2.COLOR_BGR2RGB),
            "skimage astronaut": skimage.data.astronaut(),
            "skimage camera": np.repeat(skimage.data.camera()[..., None], 3, axis=2),
            "grace_hopper": cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB)}


def random_parsers() -> dict[str, FaceParser]:
    """The two random ParseNets; no trained weights may be shipped or fetched here."""
    from facexlib.parsing.parsenet import ParseNet

    narrow = torch.load(ROOT / "tests" / "fixtures" / "gpen" / "parsenet_narrow.pth", weights_only=True)
    torch.manual_seed(0)
    released = ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict()
    return {name: with_bf16(FaceParser("parsenet", Path(name), ParseNetForward(parsenet_weights(state))))
            for name, state in (("narrow fixture (8, [8,16])", narrow), ("released width (64, [32,256])", released))}


def with_bf16(parser: FaceParser) -> FaceParser:
    """The parser with a bfloat16 forward as its fast one, whether or not this machine runs bf16 fast."""
    return dataclasses.replace(parser, fast=ParseNetForward(parser.forward.weights, dtype=torch.bfloat16))


def _pasted(pixels, aligned, crops, labels, parser):
    mask = paste_masks("parse", [crops_to_numpy(crops)[0]], lambda _: region_mask(labels, parser.kind), None, 0.0)
    return paste_faces(pixels, [aligned], 255 - crops, torch.from_numpy(mask), mode="parse")


def _compare(labels_a, labels_b, pasted_a, pasted_b) -> dict:
    inside = ((pasted_a.mask > 0) | (pasted_b.mask > 0)).numpy()
    a, b = (pasted_a.mask > 0.5).numpy(), (pasted_b.mask > 0.5).numpy()
    diff = np.abs(pasted_a.image.numpy().astype(int) - pasted_b.image.numpy().astype(int)).max(axis=2)
    return {"label_agreement": float((labels_a == labels_b).mean()),
            "mask_iou": float((a & b).sum() / max((a | b).sum(), 1)),
            "share_over_1_grey": float((diff[inside] > 1).mean()) if inside.any() else 0.0}


def agreement(image: np.ndarray, face, parser: FaceParser) -> dict:
    """One face parsed at 512 compared with the same face parsed at 256, in bfloat16 and, as the
    instrument's own noise, cut half a pixel to the right and down and parsed at 512."""
    (aligned,), _ = align_faces(image, [face], PARSE_SIZE)
    pixels = as_tensor(image)
    crops = cut_crops(pixels, [aligned.affine], PARSE_SIZE)
    shifted = cut_crops(pixels, [aligned.affine + np.array([[0, 0, 0.5], [0, 0, 0.5]])], PARSE_SIZE)
    crop, shifted_crop = crops_to_numpy(crops)[0], crops_to_numpy(shifted)[0]
    full = parse_labels(parser, crop)
    others = {"small": parse_labels(parser, crop, SMALL_PARSE_SIZE),
              "bf16": parse_labels(parser, crop, exact=False),
              "shift": parse_labels(parser, shifted_crop)}
    pasted_full = _pasted(pixels, aligned, crops, full, parser)
    compared = {f"{name}_{k}": v for name, labels in others.items()
                for k, v in _compare(full, labels, pasted_full, _pasted(pixels, aligned, crops, labels, parser)).items()}
    return {**compared, "pasted_px": int((pasted_full.mask > 0).sum()),
            "region_share": float(region_mask(full, parser.kind).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parser-dir", type=Path, action="append", default=[],
                        help="also measure the parsing_parsenet.pth in this folder (facexlib's trained file)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "parser_masks.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = load_detector(DEFAULT_DETECTOR)
    parsers = random_parsers()
    for folder in args.parser_dir:
        parsers[str(folder / WEIGHT_FILES["parsenet"])] = with_bf16(load_parser("parsenet", [folder]))
    rows = []
    for photo_name, photo in photos().items():
        faces = find_faces(photo, detector).selected
        for index, face in enumerate(faces):
            side = max(face.width, face.height)
            for px in FACE_PX:
                scale = px / side
                size = (round(photo.shape[1] * scale), round(photo.shape[0] * scale))
                resized = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
                for parser_name, face_parser in parsers.items():
                    row = {"photo": photo_name, "face": index, "face_px": px, "parser": parser_name,
                           **agreement(resized, face.scaled(scale), face_parser)}
                    rows.append(row)
                    print(f"{photo_name} face {index} at {px:3d} px, {parser_name}: "
                          + "; ".join(f"{name} labels {row[name + '_label_agreement']:.4f}, IoU "
                                      f"{row[name + '_mask_iou']:.4f}, > 1 grey {row[name + '_share_over_1_grey']:.2%}"
                                      for name in COMPARED), flush=True)
    summary = {}
    for parser_name in parsers:
        for px in FACE_PX:
            mine = [r for r in rows if r["parser"] == parser_name and r["face_px"] == px]
            summary.setdefault(parser_name, {})[px] = {
                f"{name}_{k}": worst(r[f"{name}_{k}"] for r in mine)
                for name in COMPARED for k, worst in (("mask_iou", min), ("share_over_1_grey", max),
                                                      ("label_agreement", min))}
    for parser_name, by_px in summary.items():
        print(f"\n{parser_name}: worst face at each size")
        for px, w in by_px.items():
            print(f"  {px:3d} px: " + "; ".join(
                f"{COMPARED[name]}: IoU {w[name + '_mask_iou']:.4f}, > 1 grey {w[name + '_share_over_1_grey']:.2%}, "
                f"labels {w[name + '_label_agreement']:.4f}" for name in COMPARED))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"threads": args.threads, "faces": rows, "worst": summary}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
