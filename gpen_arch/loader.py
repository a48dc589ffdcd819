"""`load_model`: one entry point for every GPEN file we accept."""
from __future__ import annotations

import math

from pathlib import Path
from typing import Mapping

import torch

from .checkpoint import identify, nonfinite_weights_error, read_weights, unwrap
from .config import GPENConfig, infer_config
from .errors import ModelLoadError
from .model import DTYPES, PRECISIONS, GPENModel
from .network import GPEN

_SHOWN = 5  # how many problem keys an error lists


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"precision '{dtype}' is not one of {', '.join(DTYPES)}")
        return DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise ValueError(f"dtype {dtype} is not supported; use one of {', '.join(DTYPES)}")
    return dtype


def expected_layout(cfg: GPENConfig) -> dict[str, tuple[int, ...]]:
    """Ordered name -> shape of every tensor a GPEN of this config stores."""
    with torch.device("meta"):
        model = GPEN(cfg, random_init=False)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_layout(sd: Mapping[str, torch.Tensor], cfg: GPENConfig, name: str) -> None:
    expected = expected_layout(cfg)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    misshaped = [f"{k} {tuple(sd[k].shape)} (expected {expected[k]})"
                 for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped)):
        if items:
            more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
            problems.append(f"{label}: {', '.join(items[:_SHOWN])}{more}")
    if problems:
        raise ModelLoadError(f"{name} looks like a GPEN-{cfg.size} but does not match it; " + "; ".join(problems))


def checked_config(sd: Mapping[str, torch.Tensor], name: str = "state_dict") -> GPENConfig:
    """The config of the GPEN whose flat state_dict `sd` is, once it is sure to be one: not another
    kind of model, a consistent config, exactly that config's tensors, finite values."""
    what = identify(sd)
    if what is not None:
        # Worded as the model list in ComfyUI shows it (tests/comfy/test_frontend.py).
        raise ModelLoadError(f"{name} is {what}, not a GPEN model.")
    try:
        cfg = infer_config(sd)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{name} is not a usable GPEN model: {exc}") from None
    check_layout(sd, cfg, name)
    # Casting would quietly turn these into weights (complex ones lose their imaginary part).
    not_float = [k for k, v in sd.items() if not v.is_floating_point()]
    if not_float:
        raise ModelLoadError(f"{name} is not a usable GPEN model: {sd[not_float[0]].dtype} tensors (in "
                             f"{', '.join(not_float[:_SHOWN])}) where GPEN stores floating-point weights; get the "
                             "file again.")
    bad = [k for k, v in sd.items() if not _all_finite(v)]
    if bad:
        raise nonfinite_weights_error(name, bad)
    return cfg


def _all_finite(tensor: torch.Tensor) -> bool:
    # A finite sum means every value is finite (NaN and infinity carry through a sum), and the sum needs no
    # tensor-sized temporary as isfinite() does; only a sum that overflows on large values is checked again.
    return math.isfinite(float(tensor.sum())) or bool(torch.isfinite(tensor).all())


def cast_weights(sd: Mapping[str, torch.Tensor], dtype: torch.dtype, name: str,
                 instead: str) -> dict[str, torch.Tensor]:
    """The weights in `dtype`, refused with a sentence ending in `instead` when one does not fit
    it: fp16 stops at 65504, and a weight cast to infinity would make every face NaN."""
    out = {}
    for key, value in sd.items():
        cast = value.to(dtype)
        if cast.dtype != value.dtype and not _all_finite(cast):
            largest = value.abs().max().item()
            raise ModelLoadError(f"{name} has weights too large for {PRECISIONS.get(dtype, dtype)} (up to "
                                 f"{largest:g} in {key}); {instead}.")
        out[key] = cast
    return out


def build_model(sd: Mapping[str, torch.Tensor], device=None, dtype=None, name: str = "state_dict") -> GPEN:
    """A ready GPEN from a flat state_dict, checked strict before anything is built."""
    cfg = checked_config(sd, name)
    dtype = resolve_dtype(dtype)
    with torch.device("meta"):
        model = GPEN(cfg, random_init=False)
    model.load_state_dict(cast_weights(sd, dtype, name, "load it in fp32 or bf16"), strict=True, assign=True)
    model.requires_grad_(False).eval()
    return model.to(device or "cpu")


def load_model(source, device=None, dtype=None, task: str | None = None, prepare: bool = True) -> GPENModel:
    """Load a GPEN from a path (any of MODEL_SUFFIXES) or an in-memory state_dict.

    Returns its `GPENModel`: size and config read from the tensors, never from the file name;
    the task from `task`, else from the file name. Raises ModelLoadError with a one-sentence
    reason for anything it cannot use. A model that will run on the CPU is made ready for its
    first call (GPEN.prepare); `prepare=False` leaves that out for a model loaded onto the CPU
    only to be moved to another device.
    """
    if isinstance(source, Mapping):
        # Copied: the model must never share storage with (and later change) the caller's tensors.
        network = build_model({k: v.clone() for k, v in unwrap(source).items()}, device, dtype)
        path = None
    else:
        path = Path(source)
        if path.suffix.lower() == ".onnx":
            from .onnx_model import load_onnx

            return GPENModel.of(load_onnx(path, device), str(path), task)
        network = build_model(read_weights(path), device, dtype, name=f"Model file {path.name}")
    if prepare:
        network.prepare()
    return GPENModel.of(network, None if path is None else str(path), task)
