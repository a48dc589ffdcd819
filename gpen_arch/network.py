"""The GPEN generator: a StyleGAN2 decoder fed by a U-net encoder.

Module and parameter names follow the released checkpoints exactly, so their
state_dicts load strict. The arithmetic is the official one, rearranged where
that is cheaper and equal up to float rounding:

* weight modulation scales the input activations by the style and the output
  by the demodulation factor, instead of building one weight per sample; all
  samples of a batch then share one ordinary convolution;
* the FIR up/down-sampling filters run as depthwise (transposed) convolutions.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_forward
from .config import GPENConfig

_SQRT2 = math.sqrt(2.0)
_FIR = (1.0, 3.0, 3.0, 1.0)


def _fir_kernel(gain: float) -> torch.Tensor:
    k = torch.tensor(_FIR, dtype=torch.float32)
    k = k[:, None] * k[None, :]
    return k / k.sum() * gain


def _lrelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x + bias.view(1, -1, 1, 1).to(x.dtype), 0.2) * _SQRT2


def _wide(x: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 -> fp32; fp32 and fp64 stay as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _depthwise(kernel: torch.Tensor, channels, dtype: torch.dtype) -> torch.Tensor:
    # int(): channel counts are fixed, and an exported graph needs a constant filter shape.
    return kernel.to(dtype).expand(int(channels), 1, *kernel.shape).contiguous()


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0, activate: bool = False, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight.to(x.dtype) * self.scale)
        bias = (self.bias * self.lr_mul).to(x.dtype)
        if self.activate:
            return F.leaky_relu(out + bias, 0.2) * _SQRT2
        return out + bias


class Blur(nn.Module):
    """Depthwise 4x4 FIR filter with zero padding (the official `Blur`)."""

    def __init__(self, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", _fir_kernel(gain))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p0, p1 = self.pad
        if p0 == p1:
            return F.conv2d(x, _depthwise(self.kernel, x.shape[1], x.dtype), padding=p0, groups=int(x.shape[1]))
        x = F.pad(x, (p0, p1, p0, p1))
        return F.conv2d(x, _depthwise(self.kernel, x.shape[1], x.dtype), groups=int(x.shape[1]))


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
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype) * self.scale, stride=self.stride, padding=self.padding)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _lrelu(x, self.bias)


class ConvLayer(nn.Sequential):
    """[Blur,] EqualConv2d, FusedLeakyReLU: the official layer, run as one biased convolution
    with the sqrt(2) gain folded into its weights, then an in-place leaky ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *pre, conv, act = self
        for module in pre:
            x = module(x)
        weight = (conv.weight * (conv.scale * _SQRT2)).to(x.dtype)
        bias = (act.bias * _SQRT2).to(x.dtype)
        out = F.conv2d(x, weight, bias, stride=conv.stride, padding=conv.padding)
        return F.leaky_relu(out, 0.2, inplace=not torch.onnx.is_in_onnx_export())


def _encoder_block(in_ch: int, out_ch: int, downsample: bool) -> nn.Sequential:
    if downsample:
        layer = ConvLayer(Blur((2, 2)), EqualConv2d(in_ch, out_ch, 3, stride=2), FusedLeakyReLU(out_ch))
    else:
        layer = ConvLayer(EqualConv2d(in_ch, out_ch, 1), FusedLeakyReLU(out_ch))
    return nn.Sequential(layer)


class ModulatedConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel, kernel))
        if upsample:
            # Registered before `modulation` so the state_dict order matches the releases.
            self.blur = Blur((1, 1), gain=4.0)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)
        self.padding = kernel // 2
        self.demodulate = demodulate
        self.upsample = upsample

    def forward(self, x: torch.Tensor, w: torch.Tensor, gain: float = 1.0,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """The modulated convolution times `gain`, plus `bias` (per output channel) when given."""
        if torch.onnx.is_in_onnx_export():
            style, out_gain = self._style_and_gain(w, gain)
            weight = self.weight[0].to(style.dtype) * self.scale
            out = self._shared_weight_conv(x, weight, style, out_gain)
        else:
            out = self._per_sample_conv(x, self.factors(w, gain), None if self.upsample else bias)
            bias = bias if self.upsample else None
        if self.upsample:
            out = self.blur(out)
        if bias is not None:
            out = out + bias.to(out.dtype).view(1, -1, 1, 1)
        return out

    def _style_and_gain(self, w: torch.Tensor, gain: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The style (B, in) and the output gain (B, out): demodulation times `gain`."""
        # Computed in (at least) fp32: the sum of squares is what overflows when a
        # StyleGAN decoder runs in fp16.
        style = self.modulation(_wide(w))
        if self.demodulate:
            energy = self._weight_energy(style.dtype) * (self.scale * self.scale)  # (out, in)
            out_gain = torch.rsqrt(style.pow(2) @ energy.t() + 1e-8) * gain
        else:
            out_gain = torch.full((w.shape[0], self.weight.shape[1]), gain, dtype=style.dtype, device=style.device)
        return style, out_gain

    def factors(self, w: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """(B, out, in): what each sample's convolution weight is multiplied by, so that
        out[b, o] = sum_i W[o, i] * factors[b, o, i] (modulation, demodulation, `gain`)."""
        style, out_gain = self._style_and_gain(w, gain)
        return out_gain[:, :, None] * (style * self.scale)[:, None, :]

    def _weight_energy(self, dtype: torch.dtype) -> torch.Tensor:
        """sum over the kernel of W**2, (out, in): depends on the weights only, so it is kept
        until they change (in place, reloaded or moved)."""
        try:
            version = self.weight._version
        except RuntimeError:  # weights created under inference_mode (e.g. moved by ComfyUI) have none
            version = None
        key = (version, self.weight.data_ptr(), self.weight.device, dtype)
        cached = getattr(self, "_energy", None)
        if torch.jit.is_tracing() or cached is None or cached[0] != key:
            energy = self.weight[0].to(dtype).pow(2).sum(dim=(2, 3))
            if torch.jit.is_tracing():
                return energy
            cached = self._energy = (key, energy)
        return cached[1]

    def _per_sample_conv(self, x, factors, bias):
        # Each sample's weight modulated and demodulated (the official form), one
        # convolution per sample: a sample's slice of a channels-last batch is
        # itself contiguous, and results do not depend on the batch size.
        weight = self.weight[0]
        if bias is not None:
            bias = bias.to(x.dtype)
        outs = []
        for i in range(x.shape[0]):
            factor = factors[i].to(weight.dtype)
            if self.upsample:
                # Written straight in the (in, out, k, k) layout the transposed convolution takes.
                wmod = torch.empty(weight.shape[1], weight.shape[0], *weight.shape[2:], dtype=weight.dtype,
                                   device=weight.device)
                torch.mul(weight.transpose(0, 1), factor.t()[:, :, None, None], out=wmod)
                outs.append(F.conv_transpose2d(x[i:i + 1], wmod.to(x.dtype), stride=2))
            else:
                wmod = weight * factor[:, :, None, None]
                outs.append(F.conv2d(x[i:i + 1], wmod.to(x.dtype), bias, padding=self.padding))
        if len(outs) == 1:
            return outs[0]
        return torch.cat(outs).contiguous(memory_format=torch.channels_last)

    def _shared_weight_conv(self, x, weight, style, out_gain):
        # The same arithmetic with weights fixed and activations scaled: a
        # graph with constant convolution weights and a free batch size.
        x = x * style.to(x.dtype)[:, :, None, None]
        wt = weight.to(x.dtype)
        if self.upsample:
            out = F.conv_transpose2d(x, wt.transpose(0, 1), stride=2)
        else:
            out = F.conv2d(x, wt, padding=self.padding)
        return out * out_gain.to(out.dtype)[:, :, None, None]


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

    def forward(self, x: torch.Tensor | list, w: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        if isinstance(x, list):
            # Handed over in a list so that this call holds the only reference and the input
            # is freed right after the convolution: at 2048 px it is half a gigabyte.
            x = x.pop()
        bias = self.activate.bias * _SQRT2
        c_out = self.conv.weight.shape[1]
        # An upsampling conv blurs after convolving, so its bias is added on the way into the buffer.
        deferred = self.conv.upsample and self.isconcat and not torch.onnx.is_in_onnx_export()
        out = self.conv(x, w, gain=_SQRT2, bias=None if deferred else bias[:c_out])
        del x
        if self.isconcat and torch.onnx.is_in_onnx_export():
            out = torch.cat([out, self.injected(feature)], dim=1)
        elif self.isconcat:
            # Written straight into the halves of one buffer: a concatenation costs a full extra pass.
            both = torch.empty(out.shape[0], 2 * c_out, out.shape[2], out.shape[3], dtype=out.dtype,
                               device=out.device, memory_format=torch.channels_last)
            if deferred:
                torch.add(out, bias[:c_out].to(out.dtype).view(1, -1, 1, 1), out=both[:, :c_out])
            else:
                both[:, :c_out] = out
            self.injected(feature, out=both[:, c_out:])
            out = both
        else:
            out = torch.addcmul(out, feature, (self.noise.weight * _SQRT2).to(out.dtype))
        return F.leaky_relu(out, 0.2, inplace=not torch.onnx.is_in_onnx_export())

    def injected(self, feature: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The concatenated half before the activation: the encoder feature times the noise
        weight, plus that half's bias (both with the sqrt(2) gain folded in)."""
        c_out = self.conv.weight.shape[1]
        bias = (self.activate.bias[c_out:] * _SQRT2).to(feature.dtype).view(1, -1, 1, 1)
        return torch.addcmul(bias, feature, (self.noise.weight * _SQRT2).to(feature.dtype), out=out)


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, style_dim: int, upsample: bool):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w, bias=self.bias.view(-1))
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class ConstantInput(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))

    def forward(self, batch: int, dtype: torch.dtype) -> torch.Tensor:
        return self.input.to(dtype).expand(batch, -1, -1, -1).contiguous(memory_format=torch.channels_last)


class StyleDecoder(nn.Module):
    """The StyleGAN2 generator inside GPEN (`generator.*` in the checkpoints)."""

    def __init__(self, cfg: GPENConfig, lr_mlp: float = 0.01):
        super().__init__()
        self.style = nn.Sequential(
            PixelNorm(),
            *[EqualLinear(cfg.style_dim, cfg.style_dim, lr_mul=lr_mlp, activate=True) for _ in range(cfg.n_mlp)],
        )
        mult = 2 if cfg.isconcat else 1
        c4 = cfg.channels(4)
        self.input = ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, cfg.style_dim, upsample=False, isconcat=cfg.isconcat)
        self.to_rgb1 = ToRGB(c4 * mult, cfg.style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        prev = c4
        for level in range(3, cfg.log_size + 1):
            ch = cfg.channels(2 ** level)
            self.convs.append(StyledConv(prev * mult, ch, cfg.style_dim, upsample=True, isconcat=cfg.isconcat))
            self.convs.append(StyledConv(ch * mult, ch, cfg.style_dim, upsample=False, isconcat=cfg.isconcat))
            self.to_rgbs.append(ToRGB(ch * mult, cfg.style_dim, upsample=True))
            prev = ch

    def forward(self, z: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """`features`: encoder outputs from 4x4 up to full size, one per level."""
        # Every layer gets the same w (one style, no mixing, no truncation).
        w = self.style(_wide(z))
        x = self.input(z.shape[0], features[0].dtype)
        x = self.conv1(x, w, features[0])
        skip = self.to_rgb1(x, w)
        # The activation lives only in `held`: each StyledConv pops it, so it is freed as soon
        # as it has been convolved instead of when the next one is assigned.
        held = [x]
        del x
        for level, to_rgb in enumerate(self.to_rgbs, start=1):
            feature, features[level] = features[level], None  # released once this level is done
            held.append(self.convs[2 * level - 2](held, w, feature))
            held.append(self.convs[2 * level - 1](held, w, feature))
            del feature
            skip = to_rgb(held[0], w, skip)
        return skip


class GPEN(nn.Module):
    """GPEN `FullGenerator`: (B, 3, S, S) RGB in [-1, 1] -> restored (B, 3, S, S), unclamped."""

    def __init__(self, cfg: GPENConfig):
        super().__init__()
        self.config = cfg
        self.size = cfg.size
        self.generator = StyleDecoder(cfg)
        n_enc = cfg.log_size - 1
        self.encoder_names = [f"ecd{i}" for i in range(n_enc)]
        setattr(self, "ecd0", _encoder_block(3, cfg.channels(cfg.size), downsample=False))
        for i in range(1, n_enc):
            res = cfg.size // 2 ** i
            setattr(self, f"ecd{i}", _encoder_block(cfg.channels(res * 2), cfg.channels(res), downsample=True))
        self.final_linear = nn.Sequential(EqualLinear(cfg.channels(4) * 16, cfg.style_dim, activate=True))

    # On a CPU in float32 without autograd, the forward keeps its activations in one
    # workspace that it reuses (gpen_arch/cpu_forward.py); False on an instance runs the
    # ordinary layers instead.
    use_workspace = True
    # Kept between calls up to this size (GPEN-512: 333 MB, 1024: 653 MB); the 2048 px
    # models' 1.3 GB is freed after each call: too much to hold while the model sits idle.
    KEEP_WORKSPACE_BYTES = 1 << 30

    def release_workspace(self) -> None:
        """Free the CPU workspace kept between calls (the next CPU call builds it again)."""
        self.__dict__.pop("_workspace", None)

    def _apply(self, fn, recurse=True):
        self.release_workspace()  # moved or cast: the workspace no longer fits
        return super()._apply(fn, recurse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4 and x.shape[0] > 1 and x.device.type == "cpu" and not torch.jit.is_tracing():
            # On a CPU a batch gains nothing (the convolutions are compute-bound), while one face
            # at a time keeps the working set, and the time per face, at its batch-1 level.
            return torch.cat([self._forward(x[i:i + 1]) for i in range(x.shape[0])])
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.size or x.shape[3] != self.size):
            raise ValueError(f"GPEN-{self.size} expects a (B, 3, {self.size}, {self.size}) tensor, got {tuple(x.shape)}")
        dtype = self.generator.input.input.dtype
        if self._runs_in_workspace(x, dtype):
            return self._forward_in_workspace(x)
        # Channels-last all the way: oneDNN's direct kernels for this layout are 2-5x faster
        # on CPU here than NCHW (whose 3x3 path also builds huge im2col buffers at 2048 px).
        x = x.to(dtype).contiguous(memory_format=torch.channels_last)
        features = []
        for name in self.encoder_names:
            x = getattr(self, name)(x)
            features.append(x)
        z = self.final_linear(_wide(x.reshape(x.shape[0], -1)))
        del x
        features.reverse()
        out = self.generator(z, features).to(dtype).contiguous()
        if dtype == torch.float16 and not torch.isfinite(out).all():
            raise FloatingPointError(
                "GPEN overflowed in fp16 on this input and produced invalid pixels; use bf16 or fp32 precision."
            )
        return out

    def _runs_in_workspace(self, x: torch.Tensor, dtype: torch.dtype) -> bool:
        return (self.use_workspace and dtype == torch.float32 and x.device.type == "cpu" and x.shape[0] == 1
                and self.config.isconcat and self.generator.input.input.device.type == "cpu"
                and not torch.is_grad_enabled() and not torch.jit.is_tracing()
                and not torch.onnx.is_in_onnx_export() and cpu_forward.supported())

    def _forward_in_workspace(self, x: torch.Tensor) -> torch.Tensor:
        plan = cpu_forward.plan_for(self.config)
        # Taken out while in use, so that a concurrent call (another thread) builds its own.
        workspace = self.__dict__.pop("_workspace", None)
        if workspace is None:
            with torch.inference_mode(False):  # usable both inside and outside inference_mode
                workspace = torch.empty(plan.numel, dtype=torch.float32)
        try:
            return cpu_forward.forward_one(self, x.to(torch.float32), workspace, plan)
        except RuntimeError as err:
            if isinstance(err, torch.OutOfMemoryError):
                raise
            # A oneDNN build without some kernel this path needs: the ordinary layers from now on.
            warnings.warn(f"GPEN's in-place CPU forward failed ({err}); using the ordinary layers instead")
            self.use_workspace = False
            workspace = None
            return self._forward(x)
        finally:
            if workspace is not None and plan.numel * 4 <= self.KEEP_WORKSPACE_BYTES:
                self.__dict__["_workspace"] = workspace
