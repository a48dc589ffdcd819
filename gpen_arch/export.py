"""Writing a torch GPEN as ONNX: the graph export_onnx traces, and the file it writes."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .files import replacing
from .model import GPENModel
from .onnx_model import CONFIG_KEY

_OPSET = 17


class _ExportGraph(nn.Module):
    """GPEN as export_onnx traces it: every modulated convolution in the shared-weight form, the
    activations scaled by the style and the output by the demodulation, so that the graph has
    constant convolution weights and a free batch size. The same arithmetic as the model's
    forward, up to float rounding."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model.encode(x)
        gen = self.model.generator
        w = gen.style(self.model.latent(features[-1]))
        features.reverse()
        h = _styled(gen.conv1, gen.input(x.shape[0], x.dtype), w, features[0])
        skip = _modulated(gen.to_rgb1, h, w) + gen.to_rgb1.base(None)
        for (up, conv, to_rgb), feature in zip(gen.levels(), features[1:]):
            h = _styled(conv, _styled(up, h, w, feature), w, feature)
            skip = _modulated(to_rgb, h, w) + to_rgb.base(skip)
        return skip


def _modulated(layer, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A StyledConv's or ToRGB's modulated convolution (times its gain), one weight for the whole batch."""
    style, out_gain = layer.conv.scales(w, layer.gain)
    out = layer.conv.convolve(x * style[:, :, None, None], layer.conv.kernel)
    return out * out_gain[:, :, None, None]


def _styled(layer, x: torch.Tensor, w: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
    out = _modulated(layer, x, w) + layer.own_bias().view(1, -1, 1, 1)
    injected = layer.injected(feature)
    return F.leaky_relu(torch.cat([out, injected], dim=1) if layer.isconcat else out + injected, 0.2)


def export_onnx(model: GPENModel | nn.Module, path: str | Path) -> Path:
    """Write a torch GPEN (loaded, or the module) as a single-file ONNX with input 'input' (B, 3, S, S)
    and output 'output'."""
    if isinstance(model, GPENModel):
        model = model.network
    path = Path(path)
    x = torch.zeros(1, 3, model.size, model.size, dtype=torch.float32)
    model = model.float().eval()
    with replacing(path) as tmp:
        # The tracer warns about every channel count made constant; they are constant by design.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = _ExportGraph(model)
            # One eager pass first: each layer's weight energy is then cached and traced as a small
            # constant, not recomputed from a second copy of every kernel stored in the file.
            graph(x)
            torch.onnx.export(
                graph, (x,), tmp, input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                opset_version=_OPSET, dynamo=False,
            )
        import onnx

        exported = onnx.load(tmp)
        entry = exported.metadata_props.add()
        entry.key, entry.value = CONFIG_KEY, json.dumps(model.config.to_dict())
        onnx.save(exported, tmp)
    return path
