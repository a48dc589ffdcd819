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

_STYLE = re.compile(r"^generator\.style\.(\d+)\.weight$")
_ECD = re.compile(r"^ecd(\d+)\.")


def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise ModelLoadError(f"missing key '{key}'")
    return tuple(sd[key].shape)


def infer_config(sd: Mapping[str, torch.Tensor]) -> GPENConfig:
    """Read size, style_dim, n_mlp, channel_multiplier, narrow and isconcat from tensor shapes.

    Raises ModelLoadError when the tensors do not describe a consistent GPEN.
    """
    ecd = {int(m.group(1)) for k in sd if (m := _ECD.match(k))}
    if not ecd or ecd != set(range(len(ecd))):
        raise ModelLoadError("the encoder blocks 'ecd0', 'ecd1', ... are missing or not contiguous")
    log_size = len(ecd) + 1
    size = 2 ** log_size
    if size not in (8, 16, 32, 64, 128, 256, 512, 1024, 2048):
        raise ModelLoadError(f"{len(ecd)} encoder blocks would mean a {size}px model, which GPEN does not have")

    style_layers = sorted(int(m.group(1)) for k in sd if (m := _STYLE.match(k)))
    if not style_layers or style_layers != list(range(1, len(style_layers) + 1)):
        raise ModelLoadError("the mapping network 'generator.style.1...N' is missing or not contiguous")
    style_dim = _shape(sd, "generator.style.1.weight")[0]

    c4 = _shape(sd, "generator.input.input")[1]
    act = _shape(sd, "generator.conv1.activate.bias")[0]
    if act not in (c4, 2 * c4):
        raise ModelLoadError(f"'generator.conv1.activate.bias' has {act} channels; expected {c4} or {2 * c4}")
    isconcat = act == 2 * c4
    narrow = c4 / 512

    # channel_multiplier only shows at 64px and above; smaller models do not depend on it.
    multiplier = 2
    if size >= 64:
        c64 = _shape(sd, f"ecd{log_size - 6}.0.1.weight")[0] if size > 64 else _shape(sd, "ecd0.0.0.weight")[0]
        candidates = [m for m in (1, 2, 3, 4) if int(256 * m * narrow) == c64]
        if not candidates:
            raise ModelLoadError(f"64px features have {c64} channels, which no channel multiplier explains")
        multiplier = candidates[0]
    return GPENConfig(size, style_dim, len(style_layers), multiplier, narrow, isconcat)


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
