"""GPEN's building blocks, under the names the released checkpoints give them.

The arithmetic is the official one, rearranged where that is cheaper and equal
up to float rounding:

* each sample's convolution weight is modulated and demodulated on its own, and
  the samples of a batch are convolved one after another;
* the sqrt(2) gain of every leaky ReLU is folded into the weights and biases
  in front of it, and the activation runs in place;
* the FIR up/down-sampling filters run as depthwise (transposed) convolutions.

Besides its forward, a layer answers what the CPU workspace forward
(cpu_forward.WorkspaceRunner) and the exported graph (export.py) compute
with: its folded or modulated weights, biases and filters.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_SQRT2 = math.sqrt(2.0)
_FIR = (1.0, 3.0, 3.0, 1.0)


def _fir_kernel(gain: float) -> torch.Tensor:
    # Made from Python numbers (all exact in float32): tensor arithmetic on the meta device would
    # import torch's compiler.
    total = sum(_FIR) ** 2
    return torch.tensor([[a * b / total * gain for b in _FIR] for a in _FIR], dtype=torch.float32)


def wide(x: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 -> fp32; fp32 and fp64 stay as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _depthwise(kernel: torch.Tensor, channels, dtype: torch.dtype) -> torch.Tensor:
    # int(): channel counts are fixed, and an exported graph needs a constant filter shape.
    return kernel.to(dtype).expand(int(channels), 1, *kernel.shape).contiguous()


_ENERGY_CHUNK = 1 << 18  # elements squared at a time on the CPU: 1 MB, which stays in the core's cache


def tap_energy(kernel: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(out, in): the sum of kernel**2 over each k x k window of an (out, in, k, k) kernel, in `dtype`."""
    out_ch, in_ch = kernel.shape[:2]
    if kernel.device.type != "cpu":
        return torch.linalg.vector_norm(kernel.to(dtype), dim=(2, 3)).square()
    # A reduction over 9 adjacent values runs 3x below the memory's speed on the CPU; squares summed by a
    # matrix product with ones run near it. In chunks, so the squares are read back from the cache.
    taps = kernel.reshape(out_ch * in_ch, -1)
    rows = max(1, _ENERGY_CHUNK // taps.shape[1])
    ones = torch.ones(taps.shape[1], 1, dtype=dtype)
    out = torch.empty(taps.shape[0], 1, dtype=dtype)
    squares = torch.empty(min(rows, taps.shape[0]), taps.shape[1], dtype=dtype)
    for start in range(0, taps.shape[0], rows):
        part = taps[start:start + rows]
        square = squares[:part.shape[0]]
        if part.dtype == dtype:
            torch.mul(part, part, out=square)
        else:  # squared in `dtype`, not in the kernel's narrower one
            square.copy_(part).square_()
        torch.mm(square, ones, out=out[start:start + rows])
    return out.view(out_ch, in_ch)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0, activate: bool = False, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def reset_parameters(self) -> None:
        self.weight.normal_().div_(self.lr_mul)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight.to(x.dtype) * self.scale)
        bias = (self.bias * self.lr_mul).to(x.dtype)
        if self.activate:
            return F.leaky_relu(out + bias, 0.2) * _SQRT2
        return out + bias


class Blur(nn.Module):
    """Depthwise 4x4 FIR filter with `pad` zeros on every side (the official `Blur`, whose
    padding GPEN always makes symmetric)."""

    def __init__(self, pad: int, gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", _fir_kernel(gain))
        self.pad = pad

    def filter(self, channels: int, dtype: torch.dtype) -> torch.Tensor:
        """The (channels, 1, 4, 4) weight of the depthwise convolution."""
        return _depthwise(self.kernel, channels, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = int(x.shape[1])
        return F.conv2d(x, self.filter(channels, x.dtype), padding=self.pad, groups=channels)


class Upsample(nn.Module):
    """2x FIR upsampling of the RGB skip: zero insertion, pad (2, 1), 4x4 filter.

    That equals a depthwise stride-2 transposed convolution with padding 1
    (the kernel is symmetric, so no flip is needed).
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", _fir_kernel(4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        return F.conv_transpose2d(x, _depthwise(self.kernel, c, x.dtype), stride=2, padding=1, groups=int(c))


class EqualConv2d(nn.Module):
    """Holds a ConvLayer's weight and how it convolves; ConvLayer runs it with the activation's gain folded in."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel, kernel))
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)
        self.stride = stride  # unpadded: a downsampling layer's blur pads its input

    def reset_parameters(self) -> None:
        self.weight.normal_()


class FusedLeakyReLU(nn.Module):
    """Holds the bias of the leaky ReLU that follows a convolution; the layer around it adds it."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))


class ConvLayer(nn.Sequential):
    """[Blur,] EqualConv2d, FusedLeakyReLU: the official layer, run as one biased convolution
    with the sqrt(2) gain folded into its weights, then an in-place leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, downsample: bool):
        if downsample:
            super().__init__(Blur(2), EqualConv2d(in_ch, out_ch, 3, stride=2), FusedLeakyReLU(out_ch))
        else:
            super().__init__(EqualConv2d(in_ch, out_ch, 1), FusedLeakyReLU(out_ch))

    @property
    def blur(self) -> Blur | None:
        """The blur in front of a downsampling convolution."""
        return self[0] if len(self) == 3 else None

    @property
    def conv(self) -> EqualConv2d:
        return self[-2]

    def folded_weight(self, out: torch.Tensor | None = None) -> torch.Tensor:
        """The convolution's weight times its scale and the activation's sqrt(2), into `out` when given."""
        conv = self.conv
        return torch.mul(conv.weight, conv.scale * _SQRT2, out=out)

    def folded_bias(self) -> torch.Tensor:
        """The activation's bias times its sqrt(2)."""
        return self[-1].bias * _SQRT2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur is not None:
            x = self.blur(x)
        conv = self.conv
        out = F.conv2d(x, self.folded_weight().to(x.dtype), self.folded_bias().to(x.dtype),
                       stride=conv.stride)
        return F.leaky_relu(out, 0.2, inplace=True)


class ModulatedConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, out_ch, in_ch, kernel, kernel))
        if upsample:
            # Registered before `modulation` so the state_dict order matches the releases.
            self.blur = Blur(1, gain=4.0)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)
        self.padding = kernel // 2
        self.demodulate = demodulate
        self.upsample = upsample

    def reset_parameters(self) -> None:
        self.weight.normal_()

    @property
    def kernel(self) -> torch.Tensor:
        """The unmodulated weight, (out, in, k, k)."""
        return self.weight[0]

    def scales(self, w: torch.Tensor, gain: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """What multiplies the kernel: per input channel (B, in), the style and the weight scale;
        per output channel (B, out), the demodulation and `gain`."""
        # Computed in (at least) fp32: the sum of squares is what overflows when a
        # StyleGAN decoder runs in fp16.
        style = self.modulation(wide(w)) * self.scale
        if self.demodulate:
            out_gain = torch.rsqrt(style.pow(2) @ self.weight_energy(style.dtype).t() + 1e-8) * gain
        else:
            out_gain = torch.full((w.shape[0], self.weight.shape[1]), gain, dtype=style.dtype, device=style.device)
        return style, out_gain

    def factors(self, w: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """(B, out, in): what each sample's kernel is multiplied by, so that
        out[b, o] = sum_i W[o, i] * factors[b, o, i] (modulation, demodulation, `gain`)."""
        style, out_gain = self.scales(w, gain)
        return out_gain[:, :, None] * style[:, None, :]

    def weight_energy(self, dtype: torch.dtype) -> torch.Tensor:
        """sum over the kernel of W**2, (out, in): depends on the weights only, so it is kept
        until they change (in place, reloaded or moved)."""
        try:
            version = self.weight._version
        except RuntimeError:  # weights created under inference_mode (e.g. moved by ComfyUI) have none
            version = None
        key = (version, self.weight.data_ptr(), self.weight.device, dtype)
        cached = getattr(self, "_energy", None)
        if cached is None or cached[0] != key:
            cached = self._energy = (key, tap_energy(self.kernel, dtype))
        return cached[1]

    def convolve(self, x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x convolved with an (out, in, k, k) `kernel` as this layer convolves (2x up and blurred
        when it upsamples), plus `bias` per output channel."""
        if not self.upsample:
            return F.conv2d(x, kernel, bias, padding=self.padding)
        out = self.blur(F.conv_transpose2d(x, kernel.transpose(0, 1), stride=2))
        return out if bias is None else out + bias.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor, w: torch.Tensor, gain: float = 1.0,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """The modulated convolution times `gain`, plus `bias` (per output channel) when given."""
        # Each sample's kernel modulated and demodulated (the official form), one convolution
        # per sample: a sample's slice of a channels-last batch is itself contiguous, and
        # results do not depend on the batch size.
        factors = self.factors(w, gain)
        weight = self.kernel
        bias = None if bias is None else bias.to(x.dtype)
        outs = []
        for i in range(x.shape[0]):
            factor = factors[i].to(weight.dtype)
            if self.upsample:
                # Stored in the (in, out, k, k) layout the transposed convolution takes, so it is not copied.
                stored = torch.empty(weight.shape[1], weight.shape[0], *weight.shape[2:], dtype=weight.dtype,
                                     device=weight.device)
                kernel = torch.mul(weight.transpose(0, 1), factor.t()[:, :, None, None], out=stored).transpose(0, 1)
            else:
                kernel = weight * factor[:, :, None, None]
            outs.append(self.convolve(x[i:i + 1], kernel.to(x.dtype), bias))
        if len(outs) == 1:
            return outs[0]
        return torch.cat(outs).contiguous(memory_format=torch.channels_last)


class NoiseInjection(nn.Module):
    """Holds the weight that scales the injected encoder feature (applied in StyledConv)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))


class StyledConv(nn.Module):
    """Modulated conv, then the encoder feature concatenated (or added), then leaky ReLU * sqrt(2).

    The sqrt(2) gain is folded into the convolution and the injected feature,
    and the activation runs in place: the same values with fewer passes.
    """

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool, isconcat: bool):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch * 2 if isconcat else out_ch)
        self.isconcat = isconcat

    # The leaky ReLU's gain, folded into the convolution.
    gain = _SQRT2

    @property
    def blur(self) -> Blur | None:
        """The blur after an upsampling convolution."""
        return self.conv.blur if self.conv.upsample else None

    def kernel_and_factors(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The convolution's kernel (out, in, 3, 3) and its factors per sample (B, out, in), sqrt(2) included."""
        return self.conv.kernel, self.conv.factors(w, self.gain)

    def own_bias(self) -> torch.Tensor:
        """The activation's bias on the convolution's own output channels, sqrt(2) included."""
        return self.activate.bias[:self.conv.weight.shape[1]] * self.gain

    def injected(self, feature: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder feature as it enters the activation: times the noise weight, plus its half
        of the bias when it is concatenated (sqrt(2) included)."""
        scale = (self.noise.weight * self.gain).to(feature.dtype)
        if not self.isconcat:
            return torch.mul(feature, scale, out=out)
        bias = (self.activate.bias[self.conv.weight.shape[1]:] * self.gain).to(feature.dtype).view(1, -1, 1, 1)
        return torch.addcmul(bias, feature, scale, out=out)

    def forward(self, x: torch.Tensor | list, w: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        if isinstance(x, list):
            # Handed over in a list so that this call holds the only reference and the input
            # is freed right after the convolution: at 2048 px it is half a gigabyte.
            x = x.pop()
        bias = self.own_bias()
        if not self.isconcat:
            out = self.conv(x, w, gain=self.gain, bias=bias)
            return F.leaky_relu(out.add_(self.injected(feature)), 0.2, inplace=True)
        # An upsampling conv blurs after convolving, so its bias is added on the way into the buffer.
        deferred = self.conv.upsample
        out = self.conv(x, w, gain=self.gain, bias=None if deferred else bias)
        del x
        # Written straight into the halves of one buffer: a concatenation costs a full extra pass.
        c_out = out.shape[1]
        both = torch.empty(out.shape[0], 2 * c_out, out.shape[2], out.shape[3], dtype=out.dtype,
                           device=out.device, memory_format=torch.channels_last)
        if deferred:
            torch.add(out, bias.to(out.dtype).view(1, -1, 1, 1), out=both[:, :c_out])
        else:
            both[:, :c_out] = out
        self.injected(feature, out=both[:, c_out:])
        return F.leaky_relu(both, 0.2, inplace=True)


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, style_dim: int, upsample: bool):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)

    gain = 1.0  # no activation follows

    def kernel_and_factors(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The 1x1 convolution's kernel (3, in, 1, 1) and its modulation per sample (B, 3, in)."""
        return self.conv.kernel, self.conv.factors(w, self.gain)

    def base(self, skip: torch.Tensor | None) -> torch.Tensor:
        """What the convolution's output is added to: the bias, plus the previous level's image upsampled."""
        return self.bias if skip is None else self.upsample(skip) + self.bias

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is None:
            return self.conv(x, w, bias=self.bias.view(-1))
        return self.conv(x, w) + self.base(skip)


class ConstantInput(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.input = nn.Parameter(torch.empty(1, channels, 4, 4))

    def reset_parameters(self) -> None:
        self.input.normal_()

    def forward(self, batch: int, dtype: torch.dtype) -> torch.Tensor:
        return self.input.to(dtype).expand(batch, -1, -1, -1).contiguous(memory_format=torch.channels_last)
