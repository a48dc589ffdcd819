"""Face parsing for paste masks: facexlib's ParseNet or BiSeNet, loaded from local files only.

Both predict the 19 CelebAMask-HQ classes at 512x512, in different orders.
facexlib is imported inside the loader, so the pipeline works without it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
import torch

from gpen_arch.checkpoint import read_weights

from .color import check_crop
from .names import PARSE_REGIONS
from .names import REGION_CLASSES as _REGION_CLASSES

PARSER_KINDS = ("parsenet", "bisenet")
WEIGHT_FILES = {"parsenet": "parsing_parsenet.pth", "bisenet": "parsing_bisenet.pth"}
PARSE_SIZE = 512

# Class order of each network's output channels.
_CLASSES = {
    "parsenet": ("background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear",
                 "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth"),
    "bisenet": ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
                "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat"),
}

# Input normalisation (mean, std) each network was trained with, RGB in [0,1].
_NORMALISATION = {
    "parsenet": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "bisenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class ParserNotFound(FileNotFoundError):
    """No face-parser weights in the given folders."""


@dataclass(frozen=True)
class FaceParser:
    kind: str  # "parsenet" | "bisenet"
    net: torch.nn.Module
    path: Path


def find_parser_weights(kind: str, model_dirs: Iterable[str | Path]) -> Path:
    """The weights file for `kind` ("parsenet", "bisenet" or "auto": ParseNet first) in `model_dirs`."""
    kinds = PARSER_KINDS if kind == "auto" else (kind,)
    if kind != "auto" and kind not in PARSER_KINDS:
        raise ValueError(f"unknown face parser {kind!r}; choose 'auto' or one of {PARSER_KINDS}")
    dirs = [Path(d) for d in model_dirs]
    for k in kinds:
        for d in dirs:
            candidate = d / WEIGHT_FILES[k]
            if candidate.is_file():
                return candidate
    names = " or ".join(WEIGHT_FILES[k] for k in kinds)
    where = ", ".join(str(d) for d in dirs) or "(no folders given)"
    raise ParserNotFound(f"face parser weights {names} not found in: {where}. Put facexlib's file in one of "
                         f"these folders, or use mask mode 'box' (nothing is downloaded automatically)")


def _build_net(kind: str, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    try:
        if kind == "parsenet":
            from facexlib.parsing.parsenet import ParseNet
            return ParseNet(in_size=PARSE_SIZE, out_size=PARSE_SIZE, parsing_ch=19, **_parsenet_widths(state))
        from facexlib.parsing.bisenet import BiSeNet
        return BiSeNet(num_class=19)
    except ImportError as err:
        raise ImportError(f"the {kind} face parser needs the facexlib package: pip install facexlib ({err})") from err


def _parsenet_widths(state: dict[str, torch.Tensor]) -> dict:
    """ParseNet's width arguments as the weights show them: the first convolution's channels, and
    the range the residual blocks' channels are clipped to (the released file: 64, [32, 256]).
    Narrower variants of the same architecture load too; the strict load checks the rest."""
    def out_channels(prefix: str) -> list[int]:
        return [int(v.shape[0]) for k, v in state.items()
                if k.startswith(prefix) and k.endswith("conv2d.weight") and v.ndim == 4]

    first, blocks = out_channels("encoder.0."), out_channels("encoder.") + out_channels("body.") \
        + out_channels("decoder.")
    if not first or not blocks:
        return {}  # not ParseNet's layout: the strict load says what is wrong
    return {"base_ch": first[0], "ch_range": [min(blocks), max(blocks)],
            "res_depth": len({k.split(".")[1] for k in state if k.startswith("body.")})}


def load_parser(kind: str = "auto", model_dirs: Sequence[str | Path] = (),
                device: str | torch.device | None = None) -> FaceParser:
    """Load facexlib's ParseNet/BiSeNet from `parsing_parsenet.pth`/`parsing_bisenet.pth` in `model_dirs`."""
    path = find_parser_weights(kind, model_dirs)
    found = next(k for k, name in WEIGHT_FILES.items() if path.name == name)
    state = read_weights(path, label="Face parser file")
    net = _build_net(found, state)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"face parser weights {path} do not fit facexlib's {found}: "
                         f"{str(err).splitlines()[0]}") from err
    net.eval().requires_grad_(False)
    if device is not None:
        net.to(device)
    return FaceParser(kind=found, net=net, path=path)


def parse_labels(parser: FaceParser, crop: np.ndarray) -> np.ndarray:
    """Class ids (512x512 uint8) of a uint8 RGB face crop, in `parser.kind`'s class order."""
    crop = check_crop(crop)
    if crop.shape[0] != PARSE_SIZE:
        crop = cv2.resize(crop, (PARSE_SIZE, PARSE_SIZE), interpolation=cv2.INTER_LINEAR)
    mean, std = _NORMALISATION[parser.kind]
    # In float64, then float32, as GPEN's parser input is made: its labels then see GPEN's very tensor.
    x = ((crop / 255.0 - np.array(mean)) / np.array(std)).astype(np.float32)
    param = next(parser.net.parameters())
    tensor = torch.from_numpy(x.transpose(2, 0, 1)[None].copy()).to(param.device, param.dtype)
    with torch.inference_mode():
        logits = parser.net(tensor)[0]
    return logits.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()


def region_mask(labels: np.ndarray, kind: str, regions: Iterable[str] = PARSE_REGIONS) -> np.ndarray:
    """0/1 float32 mask of the chosen regions in a label map of `kind`'s class order."""
    if kind not in _CLASSES:
        raise ValueError(f"unknown face parser {kind!r}; choose one of {PARSER_KINDS}")
    regions = tuple(regions)
    unknown = [r for r in regions if r not in _REGION_CLASSES]
    if unknown:
        raise ValueError(f"unknown face regions {unknown}; choose from {PARSE_REGIONS}")
    classes = _CLASSES[kind]
    ids = [classes.index(c) for r in regions for c in _REGION_CLASSES[r]]
    lut = np.zeros(256, np.float32)
    lut[ids] = 1.0
    return lut[np.asarray(labels, np.uint8)]


def face_parse_mask(parser: FaceParser, crop: np.ndarray, regions: Iterable[str] = PARSE_REGIONS) -> np.ndarray:
    """0/1 float32 512x512 mask of `regions` on a uint8 RGB face crop."""
    return region_mask(parse_labels(parser, crop), parser.kind, regions)


def parse_mask_fn(parser: FaceParser, regions: Iterable[str] = PARSE_REGIONS) -> Callable[[np.ndarray], np.ndarray]:
    """A crop -> mask function for paste_faces(parse_masks=...)."""
    regions = tuple(regions)
    region_mask(np.zeros((1, 1), np.uint8), parser.kind, regions)  # fail now on a bad region name
    return lambda crop: face_parse_mask(parser, crop, regions)
