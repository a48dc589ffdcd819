"""GPEN files that parse but are broken the way a damaged or hostile file can be: a tensor emptied,
tensor names that are not text, NaN weights in an ONNX export, weights too large for fp16.
Each is the 64 px fixture model with one thing changed, so everything else about it is a GPEN."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from fixture_files import S64_MODEL_FILE

LARGE_WEIGHT = 1e6  # fp16 stops at 65504


def fixture_state_dict() -> dict[str, torch.Tensor]:
    return torch.load(S64_MODEL_FILE, map_location="cpu", weights_only=True)


def with_empty_tensor() -> dict:
    sd = fixture_state_dict()
    sd["generator.style.1.weight"] = torch.empty(0)
    return sd


def with_integer_keys() -> dict:
    return {index: tensor for index, tensor in enumerate(fixture_state_dict().values())}


def with_nan_weight() -> dict:
    sd = fixture_state_dict()
    sd["generator.to_rgb1.bias"][0] = float("nan")
    return sd


def with_large_weight() -> dict:
    sd = fixture_state_dict()
    sd["generator.to_rgb1.bias"][0] = LARGE_WEIGHT
    return sd


def saved(sd: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    return buffer.getvalue()


def nan_onnx(folder: Path) -> bytes:
    """Our ONNX export of the fixture model with one weight made NaN."""
    import onnx
    from onnx import numpy_helper

    import gpen_arch

    path = gpen_arch.export_onnx(gpen_arch.load_model(S64_MODEL_FILE), folder / "scratch-nan.onnx")
    model = onnx.load(str(path))
    path.unlink()
    tensor = next(t for t in model.graph.initializer if t.name.endswith("to_rgb1.bias"))
    values = numpy_helper.to_array(tensor).copy()
    values.flat[0] = np.nan
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    return model.SerializeToString()
