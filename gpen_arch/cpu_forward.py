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
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_CL = torch.channels_last
_ALIGN = 16  # elements: 64-byte aligned views


def conv_add(out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: int = 1,
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
            conv_add(out, x, w, stride=2)
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


def _fill(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return out.copy_(bias.to(out.dtype).view(1, -1, 1, 1).expand_as(out))


def _lrelu_(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2, inplace=True)


class WorkspaceRunner:
    """GPEN's forward for one face (1, 3, S, S) on the CPU in float32, every large activation
    a view of this runner's workspace. A GPEN keeps its runner between calls; the runner asks
    the model's layers for their folded and modulated weights, biases and filters."""

    def __init__(self, cfg):
        self.plan = plan_for(cfg)
        with torch.inference_mode(False):  # usable both inside and outside inference_mode
            self.workspace = torch.empty(self.plan.numel, dtype=torch.float32)

    def map_in(self) -> None:
        """Touch every page of the workspace now: the kernel maps a page on its first write, which would
        otherwise happen inside the first call (60 ms for GPEN-512's 333 MB)."""
        self.workspace.zero_()

    @property
    def nbytes(self) -> int:
        return self.workspace.numel() * self.workspace.element_size()

    def __call__(self, model, x: torch.Tensor) -> torch.Tensor:
        features = self._encode(model.encoder_layers(), x.to(torch.float32).contiguous(memory_format=_CL))
        z = model.latent(features[-1])
        features.reverse()
        return self._decode(model.generator, z, features)

    def _activation(self, offset: int, channels: int, height: int, width: int) -> torch.Tensor:
        """A (1, C, H, W) channels-last view at `offset`."""
        n = channels * height * width
        return self.workspace[offset:offset + n].view(1, height, width, channels).permute(0, 3, 1, 2)

    def _weights(self, *shapes: tuple[int, ...]) -> list[torch.Tensor]:
        """(out, in, kh, kw) weights side by side in the weight region, laid out channels-last: the
        convolution wants its weight in its input's layout, and would otherwise copy it on every call."""
        out, at = [], self.plan.weight_offset
        for o, i, kh, kw in shapes:
            n = o * i * kh * kw
            out.append(self.workspace[at:at + n].view(o, kh, kw, i).permute(0, 3, 1, 2))
            at += _aligned(n)
        return out

    def _encode(self, layers, x):
        features = []
        for layer, offset in zip(layers, self.plan.feature_offsets):
            conv = layer.conv
            res = x.shape[2] // conv.stride
            out = _fill(self._activation(offset, conv.weight.shape[0], res, res), layer.folded_bias())
            blur = layer.blur
            if blur is not None:
                c, pad = x.shape[1], blur.pad
                side = x.shape[2] + 2 * pad - 3
                blurred = self._activation(self.plan.slot_offsets[0], c, side, side).zero_()
                conv_add(blurred, x, blur.filter(c, torch.float32), padding=pad, groups=c)
                x = blurred
            (weight,) = self._weights(conv.weight.shape)
            layer.folded_weight(out=weight)
            conv_add(out, x, weight, stride=conv.stride)
            x = _lrelu_(out)
            features.append(x)
        return features

    def _decode(self, gen, z, features):
        w = gen.style(z)
        # The 4x4 level is tiny: the ordinary layers, whose output is the concatenation.
        x = gen.conv1(gen.input(1, torch.float32), w, features[0])
        skip = gen.to_rgb1(x, w)
        cat_slot, a_slot, noise_slot = self.plan.slot_offsets  # where x is, and two free slots
        for (up, conv, to_rgb), feature in zip(gen.levels(), features[1:]):
            res, ch = feature.shape[2], feature.shape[1]

            # Upsampling styled conv: the transposed convolution into the noise slot (its phases
            # computed in a_slot), then the blur from there into a_slot.
            kernel, factors = up.kernel_and_factors(w)
            t = self._transposed_conv(x, kernel, factors[0], phases_at=a_slot, out_at=noise_slot)
            a = _fill(self._activation(a_slot, ch, res, res), up.own_bias())
            blur = up.blur
            conv_add(a, t, blur.filter(ch, torch.float32), padding=blur.pad, groups=ch)
            _lrelu_(a)
            g = _lrelu_(up.injected(feature, out=self._activation(noise_slot, ch, res, res)))

            # Plain styled conv: one convolution per half of its (never built) concatenated input.
            w_a, w_g = self._halves(*conv.kernel_and_factors(w), ch)
            a2 = _fill(self._activation(cat_slot, ch, res, res), conv.own_bias())
            conv_add(a2, a, w_a, padding=1)
            conv_add(a2, g, w_g, padding=1)
            _lrelu_(a2)
            g = _lrelu_(conv.injected(feature, out=g))  # g's old values are no longer needed

            # To RGB: a 1x1 convolution of the two halves, added to the bias and the upsampled skip.
            rgb_a, rgb_g = self._halves(*to_rgb.kernel_and_factors(w), ch)
            rgb = to_rgb.base(skip).contiguous(memory_format=_CL)
            conv_add(rgb, a2, rgb_a)
            conv_add(rgb, g, rgb_g)
            skip = rgb

            if feature is not features[-1]:
                # The next level reads the concatenation; the slot just freed by `a` takes it.
                x = torch.cat([a2, g], dim=1, out=self._activation(a_slot, 2 * ch, res, res))
            cat_slot, a_slot = a_slot, cat_slot  # x moved to a_slot; a2 is dead once x is built
        return skip.contiguous()

    def _halves(self, kernel, factors, ch):
        """The modulated kernel of one face split by input channel, each half contiguous: the parts
        that convolve the styled conv's own output and the injected feature."""
        out_ch, in_ch, k, _ = kernel.shape
        a, g = self._weights((out_ch, ch, k, k), (out_ch, in_ch - ch, k, k))
        torch.mul(kernel[:, :ch], factors[0, :, :ch, None, None], out=a)
        torch.mul(kernel[:, ch:], factors[0, :, ch:, None, None], out=g)
        return a, g

    def _transposed_conv(self, x, kernel, factors, phases_at, out_at):
        """conv_transpose2d(x, modulated kernel, stride=2) written into the workspace at `out_at`:
        (1, out, 2H+1, 2W+1), from four in-place convolutions whose outputs are interleaved."""
        out_ch, in_ch = kernel.shape[:2]
        _, _, h, w = x.shape
        phases = self._weights(*[(out_ch, in_ch, len(rows), len(cols)) for rows, cols, _ in _PHASES.values()])
        out = self._activation(out_at, out_ch, 2 * h + 1, 2 * w + 1)
        at = phases_at
        for ((dy, dx), (rows, cols, pad)), phase_kernel in zip(_PHASES.items(), phases):
            for i, row in enumerate(rows):
                for j, col in enumerate(cols):
                    torch.mul(kernel[:, :, row, col], factors, out=phase_kernel[:, :, i, j])
            phase = self._activation(at, out_ch, h + 1 - dy, w + 1 - dx).zero_()
            conv_add(phase, x, phase_kernel, padding=pad)
            out[:, :, dy::2, dx::2].copy_(phase)
            at += _aligned(phase.numel())
        return out


# A stride-2 transposed 3x3 convolution is four ordinary convolutions, one per output phase:
# even output rows take kernel rows (2, 0) over the input padded by one, odd rows take row 1;
# columns likewise. (row taps, column taps, padding) per phase (output row parity, column parity):
_PHASES = {(0, 0): ([2, 0], [2, 0], (1, 1)), (0, 1): ([2, 0], [1], (1, 0)),
           (1, 0): ([1], [2, 0], (0, 1)), (1, 1): ([1], [1], (0, 0))}
