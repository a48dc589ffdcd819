"""Writing the small ONNX models the tests build, in the one way onnxruntime here loads them."""
from __future__ import annotations

from pathlib import Path


def save_graph(graph, path: Path) -> Path:
    """`graph` (an onnx GraphProto) as a checked opset-13 model at `path`; returns the path."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="gpen-tests")
    model.ir_version = 8  # what the installed onnxruntime reads, whatever onnx writes by default
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
