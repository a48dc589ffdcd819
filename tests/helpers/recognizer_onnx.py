"""A small random ArcFace-layout ONNX: one float input [N, 3, 112, 112] (named `input.1` like
w600k_r50.onnx), one output [N, 512], the embedding. Strided convolutions and a projection, so
that different pixels give different embeddings even with random weights.

`self_normalising` puts insightface's mxnet-style Sub and Mul in front (fed 0..255 then);
`batch` fixes the batch dimension as some exports do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.onnx_files import save_graph

SIZE = 112
DIM = 512


def make_arcface_onnx(path: Path, *, seed: int = 0, self_normalising: bool = False,
                      batch: int | None = None) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    source = "input.1"
    if self_normalising:
        nodes.append(helper.make_node("Sub", [source, const("mean", [127.5])], ["centred"], name="_minusscalar0"))
        nodes.append(helper.make_node("Mul", ["centred", const("scale", [1 / 127.5])], ["normed"], name="_mulscalar0"))
        source = "normed"
    channels = (3, 16, 32)
    for level, (cin, cout) in enumerate(zip(channels, channels[1:])):
        weight = rng.normal(0, (2.0 / (cin * 16)) ** 0.5, (cout, cin, 4, 4))
        nodes.append(helper.make_node("Conv", [source, const(f"w{level}", weight), const(f"b{level}", np.zeros(cout))],
                                      [f"c{level}"], kernel_shape=[4, 4], strides=[4, 4]))
        nodes.append(helper.make_node("PRelu", [f"c{level}", const(f"slope{level}", np.full((cout, 1, 1), 0.25))],
                                      [f"a{level}"]))
        source = f"a{level}"
    features = channels[-1] * (SIZE // 16) ** 2
    nodes.append(helper.make_node("Flatten", [source], ["flat"], axis=1))
    nodes.append(helper.make_node("Gemm", ["flat", const("fc", rng.normal(0, features ** -0.5, (features, DIM))),
                                           const("fc_b", np.zeros(DIM))], ["683"]))
    n = batch if batch else "N"
    graph = helper.make_graph(nodes, "arcface_random",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [n, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info("683", TensorProto.FLOAT, [n, DIM])], inits)
    return save_graph(graph, path)
