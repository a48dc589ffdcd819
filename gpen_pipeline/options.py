"""What a run is asked to do, as validated option groups: one spelling for nodes, CLI and Python.

Each group checks itself when built, so a bad value fails where it was given
and every stage can trust what it receives.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .names import BLENDS, COLORIZE_MODES, KEEP_GRAY, MASK_MODES, PARSE_REGIONS
from .selection import LARGEST, ORDERS, parse_indices
from .values import number_in, shown, whole_number_in

TASKS = ("restore", "colorize", "inpaint")
TEMPLATES = ("gpen", "ffhq")
# Faces cut, restored and held at once: bounds memory on long frame batches.
FACES_HELD = 16
# Candidates kept per image, best first (detection.detect_faces). A detector at a very low threshold
# returns hundreds of specks (750 for one portrait at 0), and each would be restored and pasted:
# minutes per image. Faces small enough for a photo to hold more are too small to find on the
# detector's copy anyway.
MAX_FACES = 100
# Below this, detectors report textures and noise as faces (every real face we test scores above
# 0.9; a plain photo of a coffee cup gives 750 candidates at 0 and none from 0.05 on).
MIN_THRESHOLD = 0.05
# In % of the face crop: a feather of half the crop already fades the whole face, and a grow of a
# fifth reaches the crop's edge; beyond them only the cost of the blur and dilation grows.
FEATHER_RANGE = (0.0, 50.0)
GROW_RANGE = (-20.0, 20.0)
# Auto strength (sharpness.py): 0 is off; below 1 a face would lose detail it had; beyond 4 it never acts.
SHARPNESS_LIMIT_RANGE = (1.0, 4.0)


def _choice(name: str, value, choices) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {shown(value)}; choose one of {', '.join(map(str, choices))}")


def _set(options, name: str, value) -> None:
    """Store the checked value (a plain float or int) on a frozen option group."""
    object.__setattr__(options, name, value)


@dataclass(frozen=True)
class SelectOptions:
    """Which detected faces are restored (see selection.py for the steps)."""
    threshold: float = 0.5
    order: str = "large-small"  # face 0 is the largest, as the nodes number them
    indices: str = ""
    min_size: float = 0.0
    max_count: int = 0

    def __post_init__(self):
        _set(self, "threshold", number_in("threshold", self.threshold, MIN_THRESHOLD, 1.0))
        _choice("face order", self.order, ORDERS + (LARGEST,))
        parse_indices(self.indices)
        _set(self, "min_size", number_in("min_size", self.min_size, 0.0))
        _set(self, "max_count", whole_number_in("max_count (0 = no limit)", self.max_count, 0))


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
    sharpness_limit: float = 0.0  # auto strength (sharpness.py): 0 off, else how much sharper than its surroundings

    def __post_init__(self):
        _choice("mask mode", self.mask_mode, MASK_MODES)
        _choice("blend", self.blend, BLENDS)
        _choice("keep_gray", self.keep_gray, KEEP_GRAY)
        _set(self, "strength", number_in("strength", self.strength, 0.0, 1.0))
        if self.feather is not None:
            _set(self, "feather", number_in("feather (in % of the face; None: the mask mode's own)", self.feather,
                                            *FEATHER_RANGE))
        _set(self, "grow", number_in("grow (in % of the face)", self.grow, *GROW_RANGE))
        limit = number_in("sharpness_limit (0: off)", self.sharpness_limit, 0.0, SHARPNESS_LIMIT_RANGE[1])
        if 0.0 < limit < SHARPNESS_LIMIT_RANGE[0]:
            raise ValueError(f"sharpness_limit (0: off) must be 0 or a number from {SHARPNESS_LIMIT_RANGE[0]:g} to "
                             f"{SHARPNESS_LIMIT_RANGE[1]:g}, got {shown(self.sharpness_limit)}: below 1 a face "
                             "could not keep the detail it already had")
        _set(self, "sharpness_limit", limit)
        for name in ("color_match", "grain"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {shown(getattr(self, name))}")
        if isinstance(self.regions, str) or not isinstance(self.regions, (tuple, list)):
            raise ValueError(f"regions must be a list of face regions, got {shown(self.regions)}")
        unknown = [r for r in self.regions if not isinstance(r, str) or r not in PARSE_REGIONS]
        if unknown:
            raise ValueError(f"unknown face regions {shown(unknown)}; choose from {', '.join(PARSE_REGIONS)}")
        _set(self, "regions", tuple(self.regions))


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
        if not isinstance(self.select, SelectOptions) or not isinstance(self.paste, PasteOptions):
            raise ValueError("select and paste must be SelectOptions and PasteOptions")
        if self.batch_size is not None:
            _set(self, "batch_size", whole_number_in("batch_size (or None)", self.batch_size, 1))


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
        _set(self, "smoothing", number_in("smoothing (0: off)", self.smoothing, 0.0, 1.0))
        _set(self, "max_gap", whole_number_in("max_gap (missed frames bridged)", self.max_gap, 0, MAX_GAP_LIMIT))
