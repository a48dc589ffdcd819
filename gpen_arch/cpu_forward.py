"""GPEN's CPU forward with every large activation in one workspace that is reused.

On a CPU the ordinary forward spends about a third of its time on memory, not
on arithmetic: each layer's output at 256 and 512 px is a fresh 32-128 MB tensor,
which glibc maps from the kernel and unmaps again, so every face pays for
about 1.3 GB of page faults and zero-filling. Here each convolution instead
adds its result into a tensor carved from one workspace (oneDNN's in-place "add"
post-op), and the workspace outlives the call, as onnxruntime's arena does.

The arithmetic is the ordinary forward's, in another order:
* the encoder feature that GPEN concatenates after each styled convolution is
  kept as a separate tensor, and the convolution that reads the concatenation
  runs as two convolutions (one per half) adding into the same output;
* biases are written into the output before the convolution adds into it.
Results agree with the ordinary forward to float rounding (tests/test_gpen_arch.py).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_CL = torch.channels_last
_ALIGN = 16  # elements: 64-byte aligned views


def _conv_add(out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: int = 1,
              padding: int | tuple[int, int] = 0, groups: int = 1) -> None:
    """out += conv2d(x, weight), computed by oneDNN straight into `out` (channels-last, contiguous)."""
    pad = list(padding) if isinstance(padding, tuple) else [padding, padding]
    torch.ops.mkldnn._convolution_pointwise_.binary(
        out, x, weight, None, pad, [stride, stride], [1, 1], groups, "add", None, None, [], None)


_SUPPORTED: bool | None = None


def supported() -> bool:
    """Whether this torch has the in-place convolution, and it computes what F.conv2d does."""
    global _SUPPORTED
    if _SUPPORTED is None:
        _SUPPORTED = _probe()
    return _SUPPORTED


def _probe() -> bool:
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_convolution_pointwise_"):
        return False
    try:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(1, 4, 9, 9, generator=gen).contiguous(memory_format=_CL)
            w = torch.randn(6, 4, 3, 3, generator=gen)
            out = torch.ones(1, 6, 4, 4).contiguous(memory_format=_CL)
            _conv_add(out, x, w, stride=2)
            return bool(torch.allclose(out, F.conv2d(x, w, stride=2) + 1, atol=1e-4))
    except (RuntimeError, NotImplementedError, AttributeError, TypeError):
        return False


@dataclass(frozen=True)
class Plan:
    """Where each activation lives in the workspace (offsets in elements).

    The encoder features stay until the decoder level that injects them; three
    equal slots take the other activations, each used by one tensor at a time;
    the weight region holds the layer at hand's modulated weights.
    """
    feature_offsets: tuple[int, ...]  # ecd0 (full size) first
    slot_offsets: tuple[int, int, int]
    weight_offset: int  # one layer's weights, modulated for the face at hand
    numel: int


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


@functools.lru_cache(maxsize=None)
def plan_for(cfg) -> Plan:
    sizes = [cfg.size // 2 ** i for i in range(cfg.log_size - 1)]  # encoder outputs: size .. 4
    features = [_aligned(r * r * cfg.channels(r)) for r in sizes]
    slot = max(
        # the blurred input of each downsampling encoder block
        max((r + 1) ** 2 * cfg.channels(r) for r in sizes[:-1]),
        # a decoder level's output and the concatenation that feeds the next level
        max(r * r * cfg.channels(r) for r in sizes),
        max(r * r * 2 * cfg.channels(r) for r in sizes[1:]),
    )
    slot = _aligned(slot) + 4 * _ALIGN  # room to align the four phases of a transposed convolution
    # The largest convolution weight (a decoder level's concatenated input times its output).
    weights = _aligned(max(2 * cfg.channels(r // 2) * cfg.channels(r) * 9 for r in sizes[:-1])) + 4 * _ALIGN
    offsets, at = [], 0
    for n in features:
        offsets.append(at)
        at += n
    slots = (at, at + slot, at + 2 * slot)
    return Plan(tuple(offsets), slots, at + 3 * slot, at + 3 * slot + weights)


@dataclass(frozen=True)
class _Memory:
    """A workspace and its plan: hands out the views the forward computes into."""
    workspace: torch.Tensor
    plan: Plan

    def activation(self, offset: int, channels: int, height: int, width: int) -> torch.Tensor:
        """A (1, C, H, W) channels-last tensor at `offset`."""
        n = channels * height * width
        return self.workspace[offset:offset + n].view(1, height, width, channels).permute(0, 3, 1, 2)

    def weights(self, *shapes: tuple[int, ...]) -> list[torch.Tensor]:
        """(out, in, kh, kw) weights side by side in the weight region, laid out channels-last: the
        convolution wants its weight in its input's layout, and would otherwise copy it on every call."""
        out, at = [], self.plan.weight_offset
        for o, i, kh, kw in shapes:
            n = o * i * kh * kw
            out.append(self.workspace[at:at + n].view(o, kh, kw, i).permute(0, 3, 1, 2))
            at += _aligned(n)
        return out


def _fill(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return out.copy_(bias.to(out.dtype).view(1, -1, 1, 1).expand_as(out))


def _depthwise(kernel: torch.Tensor, channels: int) -> torch.Tensor:
    return kernel.expand(channels, 1, *kernel.shape).contiguous()


def _lrelu_(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2, inplace=True)


def forward_one(model, x: torch.Tensor, workspace: torch.Tensor, plan: Plan) -> torch.Tensor:
    """One face (1, 3, S, S), float32 on the CPU -> (1, 3, S, S); `workspace` holds plan.numel floats."""
    sqrt2 = math.sqrt(2.0)
    memory = _Memory(workspace, plan)
    features = _encode(model, x.contiguous(memory_format=_CL), memory, sqrt2)
    z = model.final_linear(features[-1].reshape(1, -1))
    features.reverse()
    return _decode(model.generator, z, features, memory, sqrt2)


def _encode(model, x, memory, sqrt2):
    features = []
    for i, name in enumerate(model.encoder_names):
        layer = getattr(model, name)[0]
        *pre, conv, act = layer
        out_ch = conv.weight.shape[0]
        res = x.shape[2] // conv.stride
        out = _fill(memory.activation(memory.plan.feature_offsets[i], out_ch, res, res), act.bias * sqrt2)
        if pre:  # the blur in front of a stride-2 convolution
            (blur,) = pre
            c, pad = x.shape[1], blur.pad[0]
            side = x.shape[2] + 2 * pad - 3
            blurred = memory.activation(memory.plan.slot_offsets[0], c, side, side)
            blurred.zero_()
            _conv_add(blurred, x, _depthwise(blur.kernel, c), padding=pad, groups=c)
            x = blurred
        (weight,) = memory.weights(conv.weight.shape)
        torch.mul(conv.weight, conv.scale * sqrt2, out=weight)
        _conv_add(out, x, weight, stride=conv.stride, padding=conv.padding)
        x = _lrelu_(out)
        features.append(x)
    return features


def _decode(gen, z, features, memory, sqrt2):
    w = gen.style(z)
    slots = memory.plan.slot_offsets
    # The 4x4 level is tiny: the ordinary layers, whose output is the concatenation.
    x = gen.conv1(gen.input(1, torch.float32), w, features[0])
    skip = gen.to_rgb1(x, w)
    for level, to_rgb in enumerate(gen.to_rgbs, start=1):
        feature = features[level]
        res, ch = feature.shape[2], feature.shape[1]
        up, conv = gen.convs[2 * level - 2], gen.convs[2 * level - 1]
        cat_slot, a_slot, noise_slot = slots  # where x is, and two free slots

        # Upsampling styled conv: the transposed convolution into the noise slot (its phases
        # computed in a_slot), then the blur from there into a_slot.
        t = _transposed_conv(x, up.conv.weight[0], up.conv.factors(w, sqrt2)[0], memory,
                             phases_at=a_slot, out_at=noise_slot)
        a = _fill(memory.activation(a_slot, ch, res, res), up.activate.bias[:ch] * sqrt2)
        _conv_add(a, t, _depthwise(up.conv.blur.kernel, ch), padding=1, groups=ch)
        _lrelu_(a)
        g = _lrelu_(up.injected(feature, out=memory.activation(noise_slot, ch, res, res)))

        # Plain styled conv: one convolution per half of its (never built) concatenated input.
        w_a, w_g = _halves(conv.conv.weight[0], conv.conv.factors(w, sqrt2)[0], ch, memory)
        a2 = _fill(memory.activation(cat_slot, ch, res, res), conv.activate.bias[:ch] * sqrt2)
        _conv_add(a2, a, w_a, padding=1)
        _conv_add(a2, g, w_g, padding=1)
        _lrelu_(a2)
        g = _lrelu_(conv.injected(feature, out=g))  # g's old values are no longer needed

        # To RGB: a 1x1 convolution of the two halves, plus the upsampled skip.
        rgb_a, rgb_g = _halves(to_rgb.conv.weight[0], to_rgb.conv.factors(w)[0], ch, memory)
        rgb = (to_rgb.upsample(skip) + to_rgb.bias).contiguous(memory_format=_CL)
        _conv_add(rgb, a2, rgb_a)
        _conv_add(rgb, g, rgb_g)
        skip = rgb

        if level + 1 < len(features):
            # The next level reads the concatenation; the slot just freed by `a` takes it.
            x = torch.cat([a2, g], dim=1, out=memory.activation(a_slot, 2 * ch, res, res))
        slots = [a_slot, cat_slot, noise_slot]  # x moved to a_slot; a2 is dead once x is built
    return skip.contiguous()


def _halves(weight, factors, ch, memory):
    """The modulated weight split by input channel, each half contiguous: the parts that
    convolve the styled conv's own output and the injected feature."""
    out_ch, in_ch, k, _ = weight.shape
    a, g = memory.weights((out_ch, ch, k, k), (out_ch, in_ch - ch, k, k))
    torch.mul(weight[:, :ch], factors[:, :ch, None, None], out=a)
    torch.mul(weight[:, ch:], factors[:, ch:, None, None], out=g)
    return a, g


# A stride-2 transposed 3x3 convolution is four ordinary convolutions, one per output phase:
# even output rows take kernel rows (2, 0) over the input padded by one, odd rows take row 1;
# columns likewise. (row taps, column taps, padding) per phase (output row parity, column parity):
_PHASES = {(0, 0): ([2, 0], [2, 0], (1, 1)), (0, 1): ([2, 0], [1], (1, 0)),
           (1, 0): ([1], [2, 0], (0, 1)), (1, 1): ([1], [1], (0, 0))}


def _transposed_conv(x, weight, factors, memory, phases_at, out_at):
    """conv_transpose2d(x, modulated weight, stride=2) written into the workspace at `out_at`:
    (1, out, 2H+1, 2W+1), from four in-place convolutions whose outputs are interleaved."""
    out_ch, in_ch = weight.shape[:2]
    _, _, h, w = x.shape
    kernels = memory.weights(*[(out_ch, in_ch, len(rows), len(cols)) for rows, cols, _ in _PHASES.values()])
    out = memory.activation(out_at, out_ch, 2 * h + 1, 2 * w + 1)
    at = phases_at
    for ((dy, dx), (rows, cols, pad)), kernel in zip(_PHASES.items(), kernels):
        for i, row in enumerate(rows):
            for j, col in enumerate(cols):
                torch.mul(weight[:, :, row, col], factors, out=kernel[:, :, i, j])
        phase = memory.activation(at, out_ch, h + 1 - dy, w + 1 - dx).zero_()
        _conv_add(phase, x, kernel, padding=pad)
        out[:, :, dy::2, dx::2].copy_(phase)
        at += _aligned(phase.numel())
    return out
