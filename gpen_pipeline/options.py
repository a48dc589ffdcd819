"""What a run is asked to do, as validated option groups: one spelling for nodes, CLI and Python.

Each group checks itself when built, so a bad value fails where it was given
and every stage can trust what it receives.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .names import BLENDS, COLORIZE_MODES, KEEP_GRAY, MASK_MODES, PARSE_REGIONS
from .selection import LARGEST, ORDERS, parse_indices

TASKS = ("restore", "colorize", "inpaint")
TEMPLATES = ("gpen", "ffhq")
# Faces cut, restored and held at once: bounds memory on long frame batches.
FACES_HELD = 16


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, choices))}")


@dataclass(frozen=True)
class SelectOptions:
    """Which detected faces are restored (see selection.py for the steps)."""
    threshold: float = 0.5
    order: str = "large-small"  # face 0 is the largest, as the nodes number them
    indices: str = ""
    min_size: float = 0.0
    max_count: int = 0

    def __post_init__(self):
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {self.threshold}")
        _choice("face order", self.order, ORDERS + (LARGEST,))
        parse_indices(self.indices)
        if self.min_size < 0:
            raise ValueError(f"min_size must be >= 0, got {self.min_size}")
        if self.max_count < 0:
            raise ValueError(f"max_count must be >= 0 (0 = no limit), got {self.max_count}")


@dataclass(frozen=True)
class PasteOptions:
    """How restored faces are blended back (see paste.py and masks.py)."""
    mask_mode: str = "official"
    strength: float = 1.0
    feather: float | None = None  # % of the crop; None: the mask mode's own
    grow: float = 0.0  # % of the crop; negative shrinks
    color_match: bool = False
    keep_gray: str = "auto"
    regions: tuple[str, ...] = PARSE_REGIONS  # face-parser regions of the "parse" mask
    blend: str = "feather"  # see blend.BLENDS
    grain: bool = False  # give the faces the photo's grain

    def __post_init__(self):
        _choice("mask mode", self.mask_mode, MASK_MODES)
        _choice("blend", self.blend, BLENDS)
        _choice("keep_gray", self.keep_gray, KEEP_GRAY)
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"strength must be within [0, 1], got {self.strength}")
        if self.feather is not None and self.feather < 0:
            raise ValueError(f"feather must be >= 0 (or None for the mask mode's own), got {self.feather}")
        unknown = [r for r in self.regions if r not in PARSE_REGIONS]
        if unknown:
            raise ValueError(f"unknown face regions {unknown}; choose from {', '.join(PARSE_REGIONS)}")


@dataclass(frozen=True)
class EnhanceOptions:
    task: str = "restore"
    template: str = "gpen"
    select: SelectOptions = field(default_factory=SelectOptions)
    paste: PasteOptions = field(default_factory=PasteOptions)
    batch_size: int | None = None  # faces per network call; None: the policy in restore.faces_per_call
    colorize: str = "keep-luminance"  # task "colorize": see COLORIZE_MODES

    def __post_init__(self):
        _choice("task", self.task, TASKS)
        _choice("colorize mode", self.colorize, COLORIZE_MODES)
        _choice("template", self.template, TEMPLATES)
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (or None), got {self.batch_size}")


# Identity (identity.py): the similarity a face needs to a reference face to be restored, FaceFusion's
# default reference distance (0.6) as a similarity. Here so that front ends show it without loading torch.
DEFAULT_REFERENCE_THRESHOLD = 0.4


# The most missed frames a face track bridges.
MAX_GAP_LIMIT = 100


@dataclass(frozen=True)
class TrackOptions:
    """How a clip's faces are followed (tracking.py). smoothing: 0 leaves each frame's detection as it
    is, 1 smooths the most; max_gap: missed frames bridged by interpolation."""
    smoothing: float = 0.5
    max_gap: int = 5

    def __post_init__(self):
        if not 0.0 <= float(self.smoothing) <= 1.0:
            raise ValueError(f"smoothing must be within [0, 1] (0: off), got {self.smoothing}")
        if isinstance(self.max_gap, bool) or not isinstance(self.max_gap, int) \
                or not 0 <= self.max_gap <= MAX_GAP_LIMIT:
            raise ValueError(f"max_gap must be a whole number of frames within [0, {MAX_GAP_LIMIT}], "
                             f"got {self.max_gap}")
