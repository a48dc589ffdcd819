"""A small random SCRFD-layout ONNX (detectors.md §1.3): input `input.1`
[1, 3, H, W]; per stride 8/16/32 one strided conv, then 1x1 heads (score with
a sigmoid, 2 anchors x 1; bbox 2 x 4; kps 2 x 10) transposed to NHWC and
reshaped to [N, 1] / [N, 4] / [N, 10]; outputs in the order score_8/16/32,
bbox_8/16/32, kps_8/16/32 (9 outputs; 6 with `keypoints=False`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.onnx_files import save_graph

STRIDES = (8, 16, 32)


def make_scrfd_onnx(path: Path, *, seed: int = 0, channels: int = 8, score_bias: float = -0.9,
                    keypoints: bool = True, fixed_size: tuple[int, int] | None = None) -> Path:
    """Write the model to `path` (parents created). `score_bias` sets how many
    anchors pass a 0.5 threshold. `fixed_size` (w, h) makes the input static."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    heads = {"score": [], "bbox": [], "kps": []}
    widths = {"score": 1, "bbox": 4, "kps": 10}
    biases = {"score": score_bias, "bbox": 1.5, "kps": 0.0}
    const("flat_shape_1", np.array([-1, 1], np.int64))
    const("flat_shape_4", np.array([-1, 4], np.int64))
    const("flat_shape_10", np.array([-1, 10], np.int64))
    for stride in STRIDES:
        w = rng.normal(0, 1.0 / (3 * stride), (channels, 3, stride, stride)).astype(np.float32)
        nodes.append(helper.make_node("Conv", ["input.1", const(f"w{stride}", w), const(f"b{stride}", np.zeros(channels, np.float32))],
                                      [f"c{stride}"], kernel_shape=[stride, stride], strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [f"c{stride}"], [f"f{stride}"]))
        for head, width in widths.items():
            if head == "kps" and not keypoints:
                continue
            out_ch = 2 * width
            hw = rng.normal(0, 0.5, (out_ch, channels, 1, 1)).astype(np.float32)
            hb = np.full(out_ch, biases[head], np.float32) + rng.normal(0, 0.2, out_ch).astype(np.float32)
            name = f"{head}_{stride}"
            conv_out = f"{name}_conv"
            nodes.append(helper.make_node("Conv", [f"f{stride}", const(f"{name}_w", hw), const(f"{name}_b", hb)], [conv_out]))
            if head == "score":
                nodes.append(helper.make_node("Sigmoid", [conv_out], [f"{name}_sig"]))
                conv_out = f"{name}_sig"
            nodes.append(helper.make_node("Transpose", [conv_out], [f"{name}_t"], perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node("Reshape", [f"{name}_t", f"flat_shape_{width}"], [name]))
            heads[head].append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n{stride}", width]))
    h, w = (fixed_size[1], fixed_size[0]) if fixed_size else ("H", "W")
    graph = helper.make_graph(
        nodes, "scrfd_random",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, h, w])],
        heads["score"] + heads["bbox"] + heads["kps"], inits)
    return save_graph(graph, path)
