"""GPEN configurations and how to read them back from a state_dict's tensors."""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Mapping

import torch

from .errors import ModelLoadError


@dataclass(frozen=True)
class GPENConfig:
    size: int
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    narrow: float = 1.0
    isconcat: bool = True

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    def channels(self, resolution: int) -> int:
        """Feature channels at a resolution, with the official rounding down."""
        wide = {4: 512, 8: 512, 16: 512, 32: 512}
        if resolution in wide:
            return int(wide[resolution] * self.narrow)
        base = {64: 256, 128: 128, 256: 64, 512: 32, 1024: 16, 2048: 8}[resolution]
        return int(base * self.channel_multiplier * self.narrow)

    def to_dict(self) -> dict:
        return asdict(self)


# The released files (facts from the official README/run.sh; configs checked against their key lists).
RELEASED = {
    "GPEN-BFR-256": GPENConfig(256, channel_multiplier=1, narrow=0.5),
    "GPEN-BFR-512": GPENConfig(512),
    "GPEN-BFR-1024": GPENConfig(1024),
    "GPEN-BFR-2048": GPENConfig(2048),
    "GPEN-Colorization-1024": GPENConfig(1024),
    "GPEN-Inpainting-1024": GPENConfig(1024),
    "GPEN-Seg2face-512": GPENConfig(512),
}

# Every resolution a GPEN can be built at (the released ones are 256 to 2048).
GPEN_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)

_STYLE = re.compile(r"^generator\.style\.(\d+)\.weight$")
_ECD = re.compile(r"^ecd(\d+)\.")


def _dim(sd: Mapping[str, torch.Tensor], key: str, axis: int) -> int:
    """Size `axis` of tensor `key`; an empty or flattened tensor would give a config no GPEN has."""
    if key not in sd:
        raise ModelLoadError(f"missing key '{key}'")
    shape = tuple(sd[key].shape)
    if len(shape) <= axis or shape[axis] < 1:
        raise ModelLoadError(f"'{key}' has shape {shape}, which no GPEN tensor has")
    return shape[axis]


def infer_config(sd: Mapping[str, torch.Tensor]) -> GPENConfig:
    """Read size, style_dim, n_mlp, channel_multiplier, narrow and isconcat from tensor shapes.

    Raises ModelLoadError when the tensors do not describe a consistent GPEN.
    """
    ecd = {int(m.group(1)) for k in sd if (m := _ECD.match(k))}
    if not ecd or ecd != set(range(len(ecd))):
        raise ModelLoadError("the encoder blocks 'ecd0', 'ecd1', ... are missing or not contiguous")
    log_size = len(ecd) + 1
    size = 2 ** log_size
    if size not in GPEN_SIZES:
        raise ModelLoadError(f"{len(ecd)} encoder blocks would mean a {size}px model, which GPEN does not have")

    style_layers = sorted(int(m.group(1)) for k in sd if (m := _STYLE.match(k)))
    if not style_layers or style_layers != list(range(1, len(style_layers) + 1)):
        raise ModelLoadError("the mapping network 'generator.style.1...N' is missing or not contiguous")
    style_dim = _dim(sd, "generator.style.1.weight", 0)

    c4 = _dim(sd, "generator.input.input", 1)
    act = _dim(sd, "generator.conv1.activate.bias", 0)
    if act not in (c4, 2 * c4):
        raise ModelLoadError(f"'generator.conv1.activate.bias' has {act} channels; expected {c4} or {2 * c4}")
    isconcat = act == 2 * c4
    narrow = c4 / 512

    # channel_multiplier only shows at 64px and above; smaller models do not depend on it.
    multiplier = 2
    if size >= 64:
        c64 = _dim(sd, f"ecd{log_size - 6}.0.1.weight", 0) if size > 64 else _dim(sd, "ecd0.0.0.weight", 0)
        candidates = [m for m in (1, 2, 3, 4) if int(256 * m * narrow) == c64]
        if not candidates:
            raise ModelLoadError(f"64px features have {c64} channels, which no channel multiplier explains")
        multiplier = candidates[0]
    cfg = GPENConfig(size, style_dim, len(style_layers), multiplier, narrow, isconcat)
    # A narrow enough model rounds its widest layers down to no channels at all: nothing to build.
    empty = [r for r in (2 ** i for i in range(2, log_size + 1)) if cfg.channels(r) < 1]
    if empty:
        raise ModelLoadError(f"a {size}px model {c4 / 512:g} times as wide as GPEN-512 would have no channels "
                             f"at {empty[0]}px")
    return cfg


def task_hint(file_name: str) -> str:
    """The task a released file was trained for. The three 1024 models share one layout, so only
    the name can tell them apart; the architecture itself is always read from the tensors."""
    lowered = file_name.lower()
    if "color" in lowered:
        return "colorize"
    if "inpaint" in lowered:
        return "inpaint"
    if "seg2face" in lowered:
        return "seg2face"
    return "restore"
