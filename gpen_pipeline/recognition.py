"""Face recognition with the ArcFace ONNX models insightface users already have.

    recognizer = find_recognizer("w600k_r50.onnx", ["models/insightface"])
    embeddings = embed_faces(recognizer, rgb_image, faces)   # (N, D), unit length

`w600k_r50.onnx` (insightface's buffalo_l pack) and `glintr100.onnx` (antelopev2)
run directly on onnxruntime; insightface itself is not needed. Each face is cut
on the ArcFace five-point template at the model's input size, as insightface's
norm_crop does, and fed as RGB. The input's name, size and normalisation are
read from the model: insightface's rule is that a graph which subtracts and
multiplies in its first nodes normalises itself (mxnet exports, fed 0..255),
every other one is fed (x - 127.5) / 127.5.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from gpen_arch.onnx_model import onnx_session

from .align import DegenerateLandmarks, aligned_record, arcface_template
from .cut import as_tensor, cut_crops
from .detection.common import find_weights
from .face import Face

FILE_NAMES = ("w600k_r50.onnx", "glintr100.onnx")
SUBDIRS = ("", "models/buffalo_l", "models/antelopev2", "buffalo_l", "antelopev2")
DEFAULT_SIZE = 112  # for a model whose input size is symbolic
_WHERE_TO_GET = (
    "w600k_r50.onnx is the recognition model of insightface's buffalo_l pack, glintr100.onnx that of "
    "antelopev2 (https://github.com/deepinsight/insightface/releases, model-zoo; ReActor and IPAdapter "
    "FaceID users have them already). Unpack the pack so the file lies in <folder>/models/buffalo_l/ "
    "(ComfyUI: models/insightface/models/buffalo_l/). The packs are for non-commercial research only.")


class RecognizerMissing(FileNotFoundError):
    """The recognition model is in none of the folders searched."""


class RecognizerInvalid(ValueError):
    """A file was given as a recognition model but is not one."""


@dataclass(frozen=True, eq=False)
class Recognizer:
    session: object
    input_name: str
    size: int  # the crop is size x size
    mean: float
    std: float
    fixed_batch: int | None  # a model exported for one batch size is run that many faces at a time
    source: str

    @property
    def name(self) -> str:
        return Path(self.source).name

    def embed_crops(self, crops: torch.Tensor) -> np.ndarray:
        """(N, 3, S, S) uint8 RGB crops on the ArcFace template -> (N, D) float32 unit embeddings."""
        blob = (crops.detach().to("cpu", torch.float32).numpy() - self.mean) / self.std
        step = self.fixed_batch or max(len(blob), 1)
        outs = [self.session.run(None, {self.input_name: np.ascontiguousarray(blob[i:i + step])})[0]
                for i in range(0, len(blob), step)]
        out = np.concatenate(outs) if outs else np.zeros((0, 1), np.float32)
        if out.ndim != 2 or out.shape[0] != len(blob):
            raise RecognizerInvalid(f"{self.name} is not a face recognition model: it gave {tuple(out.shape)} for "
                                    f"{len(blob)} faces, where an ArcFace model gives one embedding per face")
        out = out.astype(np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def find_recognizer(name: str, model_dirs: Sequence[str | os.PathLike], device: str | None = None) -> Recognizer:
    """The recognition model `name` (one of FILE_NAMES) from `model_dirs` or their insightface sub-folders."""
    if name not in FILE_NAMES:
        raise ValueError(f"unknown recognition model {name!r}; choose one of {', '.join(FILE_NAMES)}")
    if isinstance(model_dirs, (str, os.PathLike)):
        model_dirs = [model_dirs]
    path, searched = find_weights((name,), model_dirs, SUBDIRS)
    if path is None:
        folders = "\n".join(f"  - {p}" for p in searched) or "  (no folders were given)"
        raise RecognizerMissing(f"The face recognition model '{name}' is in none of these folders:\n{folders}\n"
                                f"{_WHERE_TO_GET} Nothing is downloaded automatically.")
    return load_recognizer(path, device)


def load_recognizer(path: str | os.PathLike, device: str | None = None) -> Recognizer:
    """An ArcFace-style ONNX model from `path`; RecognizerMissing or RecognizerInvalid naming the file."""
    path = Path(path)
    if not path.is_file():
        raise RecognizerMissing(f"The face recognition model {path} does not exist. {_WHERE_TO_GET}")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Its threads would otherwise spin after each run and slow the torch work that follows (the paste,
    # the next network call) by a third on a 2-core machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnx_session(str(path), device, options)
    except Exception as exc:  # onnxruntime's errors are untyped
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise RecognizerInvalid(f"{path.name} is not a readable ONNX model ({first}); give an ArcFace "
                                "recognition model such as w600k_r50.onnx") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = list(inputs[0].shape) if len(inputs) == 1 else []
    spatial = shape[2:4]
    fixed = [v for v in spatial if isinstance(v, int)]
    if len(shape) != 4 or shape[1] != 3 or len(set(fixed)) > 1 or inputs[0].type != "tensor(float)":
        got = ", ".join(f"'{i.name}' {i.shape} {i.type}" for i in inputs) or "no inputs"
        raise RecognizerInvalid(f"{path.name} is not a face recognition model: it takes {got}, where an ArcFace "
                                "model takes one float image of shape (N, 3, 112, 112)")
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        got = ", ".join(str(o.shape) for o in outputs) or "nothing"
        hint = " (a face detector?)" if len(outputs) > 1 else ""
        raise RecognizerInvalid(f"{path.name} is not a face recognition model{hint}: it gives {len(outputs)} "
                                f"output(s) {got}, where an ArcFace model gives one embedding (N, 512) per face")
    mean, std = _normalisation(path)
    return Recognizer(session=session, input_name=inputs[0].name, size=fixed[0] if fixed else DEFAULT_SIZE,
                      mean=mean, std=std, fixed_batch=shape[0] if isinstance(shape[0], int) else None,
                      source=str(path))


def _normalisation(path: Path) -> tuple[float, float]:
    """(mean, std) the model is fed with, by insightface's rule (module docstring)."""
    try:
        import onnx

        first = onnx.load(str(path), load_external_data=False).graph.node[:8]
    except Exception:  # without the onnx package (or a graph it cannot read) the common case serves
        return 127.5, 127.5
    names = [(node.name, node.op_type) for node in first]
    subtracts = any(n.startswith(("Sub", "_minus")) or op == "Sub" for n, op in names)
    multiplies = any(n.startswith(("Mul", "_mul")) or op == "Mul" for n, op in names)
    return (0.0, 1.0) if subtracts and multiplies else (127.5, 127.5)


def arcface_crops(recognizer: Recognizer, image: np.ndarray | torch.Tensor,
                  faces: Sequence[Face]) -> tuple[torch.Tensor, list[bool]]:
    """The faces cut on the ArcFace template at the model's size, (N, 3, S, S) uint8, and which faces
    could be aligned (a face with degenerate landmarks gets a black crop and False)."""
    pixels = as_tensor(image)
    hw = tuple(pixels.shape[:2])
    points = arcface_template(recognizer.size)
    affines, usable = [], []
    for face in faces:
        try:
            affines.append(aligned_record(face, recognizer.size, hw, points).affine)
            usable.append(True)
        except DegenerateLandmarks:
            affines.append(np.array([[1.0, 0.0, -1e6], [0.0, 1.0, -1e6]]))  # sees no pixel: a black crop
            usable.append(False)
    return cut_crops(pixels, affines, recognizer.size), usable


def embed_faces(recognizer: Recognizer, image: np.ndarray | torch.Tensor, faces: Sequence[Face]) -> np.ndarray:
    """(N, D) unit embeddings of `faces` in `image` (HxWx3/4, uint8 or float [0, 1]); NaN rows for faces
    whose landmarks cannot be aligned, so they match nothing."""
    if not faces:
        return np.zeros((0, 0), np.float32)
    crops, usable = arcface_crops(recognizer, image, faces)
    embeddings = recognizer.embed_crops(crops)
    embeddings[~np.asarray(usable)] = np.nan
    return embeddings
