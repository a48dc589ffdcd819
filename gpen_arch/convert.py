"""Describing model files without building them, and saving models as safetensors."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .checkpoint import read_weights
from .config import GPENConfig, infer_config, task_hint
from .files import write_bytes
from .loader import cast_weights, checked_config
from .model import PRECISIONS, GPENModel
from .network import GPEN

_DTYPE_NAMES = {**PRECISIONS, torch.float64: "fp64"}


@dataclass(frozen=True)
class ModelInfo:
    file: str
    file_bytes: int
    format: str  # "pytorch", "safetensors" or "onnx"
    task: str
    size: int
    config: GPENConfig | None
    parameters: int | None
    dtype: str

    def to_json(self) -> dict:
        data = asdict(self)
        data["config"] = self.config.to_dict() if self.config else None
        return data


def describe(path: str | Path) -> ModelInfo:
    """What a model file is, from its tensors' names and shapes; raises ModelLoadError otherwise."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from .onnx_model import load_onnx

        model = load_onnx(path, device="cpu")
        return ModelInfo(path.name, path.stat().st_size, "onnx", task_hint(path.name), model.size, model.config,
                         None, "fp16" if model.input_dtype.__name__ == "float16" else "fp32")
    sd = read_weights(path)
    cfg = checked_config(sd, f"Model file {path.name}")
    dtypes = {_DTYPE_NAMES.get(t.dtype, str(t.dtype)) for t in sd.values() if t.is_floating_point()}
    fmt = "safetensors" if path.suffix.lower() in (".safetensors", ".sft") else "pytorch"
    # Parameters as the official model counts them: the FIR kernels are buffers.
    params = sum(t.numel() for k, t in sd.items() if not k.endswith("kernel"))
    return ModelInfo(path.name, path.stat().st_size, fmt, task_hint(path.name), cfg.size, cfg, params,
                     "/".join(sorted(dtypes)))


def save_safetensors(model: GPENModel | GPEN, path: str | Path, half: bool = False) -> Path:
    """Write a torch GPEN (loaded, or the module) as .safetensors, optionally in fp16; atomic."""
    from safetensors.torch import save

    network = model.network if isinstance(model, GPENModel) else model
    if not isinstance(network, GPEN):
        raise ValueError(f"only a torch GPEN can be saved as .safetensors, not {type(network).__name__}")
    sd = {k: v.detach().to("cpu") for k, v in network.state_dict().items()}
    name = f"Model file {Path(model.source).name}" if isinstance(model, GPENModel) and model.source else "The model"
    # Refused before anything is written: the loader would refuse such a file.
    cast = cast_weights(sd, torch.float16 if half else torch.float32, name,
                        "save it in fp32 (gpen convert without --fp16)")
    tensors = {k: v.contiguous() for k, v in cast.items()}
    config = infer_config(tensors)
    # Serialised here and written by write_bytes: safetensors' own writer reports a full disk as an
    # opaque SafetensorError, ours says so in words and keeps the previous file.
    data = save(tensors, metadata={"format": "pt", "gpen_config": json.dumps(config.to_dict())})
    del tensors
    return write_bytes(path, data)
