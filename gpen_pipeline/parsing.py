"""Face parsing for paste masks: facexlib's ParseNet or BiSeNet, loaded from local files only.

Both predict the 19 CelebAMask-HQ classes at 512x512, in different orders.
ParseNet runs on our own forward (parsenet.py), without facexlib; BiSeNet
needs facexlib, imported inside the loader, so the pipeline works without it.
Faces are parsed at 512 in every mask mode: parsing at 256 changed the
masks far more than the parser's own half-pixel noise, at every face size.
A photo's masks other than the official recipe's are parsed in bfloat16 where
that is several times faster (what that does to them: bench/parser_masks.py;
README, "Face parsing").
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence

import cv2
import numpy as np
import torch

from gpen_arch.checkpoint import read_weights

from .color import check_crop
from .hardware import fast_bf16
from .names import PARSE_REGIONS, PARSER_PRECISIONS
from .names import REGION_CLASSES as _REGION_CLASSES
from .parsenet import ParseNetForward, parsenet_weights

PARSER_KINDS = ("parsenet", "bisenet")
WEIGHT_FILES = {"parsenet": "parsing_parsenet.pth", "bisenet": "parsing_bisenet.pth"}
PARSE_SIZE = 512
SMALL_PARSE_SIZE = 256  # measured against PARSE_SIZE by bench/parser_masks.py; no mask mode uses it

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


class ParserForward(Protocol):
    """A parser network ready to run: class ids of one normalised (1, 3, S, S) image."""
    device: torch.device

    def labels(self, x: torch.Tensor, size: int) -> torch.Tensor:
        """(size, size) uint8 class ids, the logits bilinearly resized to `size` if S differs."""


@dataclass(frozen=True)
class FaceParser:
    """A loaded face parser: which network, the file it came from, and its forwards, ready on their
    device. The class order and the input normalisation follow from `kind`.

    `forward` computes in float32, what the official code computes; `official` masks use it.
    `fast` is the same network in bfloat16 where the device runs that several times faster
    (hardware.fast_bf16), for the other mask modes; None where there is no such gain, or where
    float32 was asked for."""
    kind: str  # "parsenet" | "bisenet"
    path: Path
    forward: ParserForward
    fast: ParserForward | None = None

    def forward_for(self, exact: bool) -> ParserForward:
        return self.forward if exact or self.fast is None else self.fast


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


def load_parser(kind: str = "auto", model_dirs: Sequence[str | Path] = (),
                device: str | torch.device | None = None, precision: str = "auto") -> FaceParser:
    """Load facexlib's ParseNet/BiSeNet from `parsing_parsenet.pth`/`parsing_bisenet.pth` in `model_dirs`.
    `precision` of the masks other than the official recipe's: "auto" (bfloat16 where that is
    several times faster, see FaceParser) or "fp32"."""
    if precision not in PARSER_PRECISIONS:
        raise ValueError(f"face parser precision must be one of {', '.join(PARSER_PRECISIONS)}, got {precision!r}")
    path = find_parser_weights(kind, model_dirs)
    found = next(k for k, name in WEIGHT_FILES.items() if path.name == name)
    state = read_weights(path, label="Face parser file")
    device = torch.device("cpu" if device is None else device)
    try:
        if found == "parsenet":
            weights = parsenet_weights(state)
            forward = ParseNetForward(weights, device)
            fast = ParseNetForward(weights, device, torch.bfloat16) \
                if precision == "auto" and fast_bf16(device) else None
        else:  # BiSeNet is 14 GMAC at 512, under a tenth of ParseNet: float32 is fast enough
            from .bisenet import BiSeNetForward
            forward, fast = BiSeNetForward(state, device), None
    except ValueError as err:
        raise ValueError(f"face parser weights {path} do not fit facexlib's {found}: {err}") from err
    return FaceParser(kind=found, path=path, forward=forward, fast=fast)


def parse_labels(parser: FaceParser, crop: np.ndarray, parse_size: int = PARSE_SIZE,
                 exact: bool = True) -> np.ndarray:
    """Class ids (512x512 uint8) of a uint8 RGB face crop, in `parser.kind`'s class order, parsed
    at `parse_size` (PARSE_SIZE or SMALL_PARSE_SIZE); `exact`: in float32 even where the parser
    has a faster forward (FaceParser.forward_for)."""
    crop = check_crop(crop)
    if parse_size not in (PARSE_SIZE, SMALL_PARSE_SIZE):
        raise ValueError(f"parse_size must be {PARSE_SIZE} or {SMALL_PARSE_SIZE}, got {parse_size}")
    if crop.shape[0] != parse_size:
        # To 512 as the official code resizes (bilinear); a crop halved to 256 is averaged.
        shrink = crop.shape[0] > parse_size and parse_size == SMALL_PARSE_SIZE
        crop = cv2.resize(crop, (parse_size, parse_size),
                          interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    mean, std = _NORMALISATION[parser.kind]
    # In float64, then float32, as GPEN's parser input is made: its labels then see GPEN's very tensor.
    x = ((crop / 255.0 - np.array(mean)) / np.array(std)).astype(np.float32)
    forward = parser.forward_for(exact)
    tensor = torch.from_numpy(x.transpose(2, 0, 1)[None].copy()).to(forward.device)
    return forward.labels(tensor, PARSE_SIZE).cpu().numpy()


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


def face_parse_mask(parser: FaceParser, crop: np.ndarray, regions: Iterable[str] = PARSE_REGIONS,
                    exact: bool = True) -> np.ndarray:
    """0/1 float32 512x512 mask of `regions` on a uint8 RGB face crop (`exact`: see parse_labels)."""
    return region_mask(parse_labels(parser, crop, exact=exact), parser.kind, regions)


def parse_mask_fn(parser: FaceParser, regions: Iterable[str] = PARSE_REGIONS,
                  exact: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """A crop -> mask function for masks.paste_masks (`exact`: see parse_labels)."""
    regions = tuple(regions)
    region_mask(np.zeros((1, 1), np.uint8), parser.kind, regions)  # fail now on a bad region name
    return lambda crop: face_parse_mask(parser, crop, regions, exact)
