"""GPEN as ONNX: running `.onnx` files through onnxruntime (export.py writes ours); the onnxruntime
execution providers every ONNX model of this pack (GPEN or detector) runs on."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import check_model_file, nonfinite_weights_error
from .config import GPEN_SIZES, GPENConfig, infer_config
from .errors import ModelLoadError

CONFIG_KEY = "gpen_config"  # the metadata entry our exports put their config in
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def onnx_providers(device=None) -> list[str]:
    """onnxruntime's execution providers for `device`: CUDA first where this onnxruntime has it and
    the device is None (any) or a CUDA device ("cuda", "cuda:1", torch.device), then the CPU."""
    import onnxruntime as ort

    if (device is None or str(device).startswith("cuda")) and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def onnx_session(model: bytes | str, device=None, options=None):
    """An onnxruntime session for a file name or ONNX bytes on onnx_providers(device); on the CPU
    alone when a CUDA session fails to start (a CUDA or cuDNN library that does not load)."""
    import onnxruntime as ort

    providers = onnx_providers(device)
    try:
        return ort.InferenceSession(model, options, providers=providers)
    except Exception:
        if providers == ["CPUExecutionProvider"]:
            raise
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True, eq=False)
class OnnxGPEN:
    """An onnxruntime session behind the same call as the PyTorch model."""

    session: object
    size: int
    config: GPENConfig | None
    input_dtype: type
    fixed_batch: int | None
    source: str

    @property
    def on_cuda(self) -> bool:
        return self.session.get_providers()[0] == "CUDAExecutionProvider"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, self.size, self.size):
            raise ValueError(f"this ONNX GPEN expects (B, 3, {self.size}, {self.size}), got {tuple(x.shape)}")
        arr = x.detach().to("cpu", torch.float32).numpy().astype(self.input_dtype, copy=False)
        step = self.fixed_batch or len(arr)
        outs = [self.session.run(None, {"input": arr[i:i + step]})[0] for i in range(0, len(arr), step)]
        out = np.concatenate(outs)
        if out.shape != arr.shape:  # only knowable now when the file declares symbolic output dims
            raise ValueError(f"{Path(self.source).name} is not a GPEN ONNX model: it turned {tuple(arr.shape)} "
                             f"into {tuple(out.shape)}, a GPEN returns the shape it is given")
        return torch.from_numpy(out.astype(np.float32, copy=False)).to(x.device)


def load_onnx(path: str | Path, device=None) -> OnnxGPEN:
    import onnxruntime as ort

    path = Path(path)
    check_model_file(path)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnx_session(str(path), device, options)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"Model file {path.name} is not a readable ONNX model ({first}).") from None
    inputs = session.get_inputs()
    shape = list(inputs[0].shape) if inputs else []
    ok = (len(inputs) == 1 and inputs[0].name == "input" and len(shape) == 4 and shape[1] == 3
          and shape[2] in GPEN_SIZES and shape[2] == shape[3] and inputs[0].type in _ORT_TYPES)
    if not ok:
        got = ", ".join(f"'{i.name}' {i.shape} {i.type}" for i in inputs) or "no inputs"
        raise ModelLoadError(
            f"Model file {path.name} is not a GPEN ONNX model: it has {got}; "
            f"a GPEN ONNX has one float input named 'input' of shape (1, 3, S, S), S one of {GPEN_SIZES}."
        )
    _check_output(session, path, shape)
    graph = _graph(path)
    bad = _nonfinite_weights(graph)
    if bad:
        raise nonfinite_weights_error(f"Model file {path.name}", bad)
    return OnnxGPEN(
        session=session,
        size=int(shape[2]),
        config=_read_config(session, graph),
        input_dtype=_ORT_TYPES[inputs[0].type],
        fixed_batch=shape[0] if isinstance(shape[0], int) else None,
        source=str(path),
    )


def _check_output(session, path: Path, in_shape: list) -> None:
    """A GPEN returns an image of the shape it was given; an upscaler or a detector does not."""
    outputs = session.get_outputs()
    out_shape = list(outputs[0].shape) if outputs else []
    wrong = len(out_shape) != 4 or any(isinstance(o, int) and o != i for o, i in zip(out_shape[1:], in_shape[1:]))
    if not outputs or wrong:
        got = tuple(out_shape) if out_shape else "no output"
        raise ModelLoadError(
            f"Model file {path.name} is not a GPEN ONNX model: its output is {got} for an input of "
            f"{tuple(in_shape)}; a GPEN returns the shape it is given (an upscaler or detector does not)."
        )


def _graph(path: Path):
    """The file's graph without the weights stored beside it, or None where the onnx package is
    missing (onnxruntime alone cannot show weights) or cannot read it."""
    try:
        import onnx

        return onnx.load(str(path), load_external_data=False).graph
    except Exception:
        return None


def _nonfinite_weights(graph) -> list[str]:
    """Names of the weights holding NaN or infinity: the torch loader refuses those, and describing
    an ONNX file must say what loading it says."""
    if graph is None:
        return []
    from onnx import TensorProto, numpy_helper

    floats = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)
    return [t.name for t in graph.initializer
            if t.data_type in floats and t.data_location != TensorProto.EXTERNAL
            and not np.isfinite(numpy_helper.to_array(t)).all()]


def _read_config(session, graph) -> GPENConfig | None:
    """The config from our export's metadata, else from tensor names that kept the checkpoint's."""
    meta = session.get_modelmeta().custom_metadata_map
    if CONFIG_KEY in meta:
        try:
            return GPENConfig(**json.loads(meta[CONFIG_KEY]))
        except (TypeError, ValueError):
            pass
    if graph is None:
        return None
    try:
        shapes = {t.name: torch.empty(tuple(t.dims), device="meta") for t in graph.initializer}
        return infer_config(shapes)
    except Exception:  # third-party exports rename tensors; the size from the graph is enough to run
        return None
