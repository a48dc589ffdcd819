"""ParseNet (PSFRGAN's face parser, as facexlib ships it) run from its weights file, without facexlib.

The eager module spends much of its time outside the convolutions: each layer
allocates its output, pads it by reflection into a second copy, normalises it
(BatchNorm) and adds the residual in further passes. Here BatchNorm is folded
into the convolutions once at load, and each convolution adds its result
straight into the interior of a padded buffer that the next layer reads, so
reflection padding is a border of one pixel and the residual sum is the
convolution's own accumulation; the buffers are kept between calls.

The upsampling convolutions (3x3 over a nearest-neighbour 2x upsampling,
reflection-padded) are computed as four 2x2 convolutions over the input padded
by replication, one per output phase: reflection padding of a 2x-nearest image
is the upsampled replication padding of the original, so each phase sees two
taps per axis, whose weights are sums of the 3x3 kernel's. That is 4/9 of the
multiply-adds, and nothing of the upsampled size is ever built.

The logits are facexlib's to float rounding (tests/test_parsing.py).
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gpen_arch import cpu_forward

LEAKY_SLOPE = 0.2  # facexlib's ReluLayer("LeakyReLU")
_BN_EPS = 1e-5  # torch.nn.BatchNorm2d's default, which ParseNet uses
_CL = torch.channels_last


class ParseNetLayoutError(ValueError):
    """The weights are not ParseNet's."""


@dataclass(frozen=True)
class Conv:
    """A 3x3 convolution with BatchNorm (if any) folded in; weight channels-last."""
    weight: torch.Tensor  # (out, in, 3, 3)
    bias: torch.Tensor  # (out,)

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    def to(self, device, dtype: torch.dtype = torch.float32) -> "Conv":
        return Conv(self.weight.to(device, dtype).contiguous(memory_format=_CL), self.bias.to(device, dtype))


@dataclass(frozen=True)
class Block:
    """A residual block: shortcut(x) + conv2(lrelu(conv1(x))). "down" halves the size in conv2 and
    the shortcut; "up" doubles it (nearest) before conv1 and the shortcut; shortcut None is identity."""
    scale: str  # "down" | "none" | "up"
    conv1: Conv
    conv2: Conv
    shortcut: Conv | None

    def to(self, device, dtype: torch.dtype = torch.float32) -> "Block":
        return Block(self.scale, self.conv1.to(device, dtype), self.conv2.to(device, dtype),
                     None if self.shortcut is None else self.shortcut.to(device, dtype))


@dataclass(frozen=True)
class ParseNetWeights:
    first: Conv  # 3 -> base channels, no activation
    encoder: tuple[Block, ...]
    body: tuple[Block, ...]
    decoder: tuple[Block, ...]
    mask_out: Conv  # -> class logits

    @property
    def classes(self) -> int:
        return self.mask_out.out_channels

    @property
    def blocks(self) -> tuple[Block, ...]:
        return self.encoder + self.body + self.decoder

    @property
    def multiple(self) -> int:
        """The input's side must be a multiple of this (each down block halves it)."""
        return 2 ** len(self.encoder)

    def to(self, device, dtype: torch.dtype = torch.float32) -> "ParseNetWeights":
        return ParseNetWeights(self.first.to(device, dtype), tuple(b.to(device, dtype) for b in self.encoder),
                               tuple(b.to(device, dtype) for b in self.body),
                               tuple(b.to(device, dtype) for b in self.decoder), self.mask_out.to(device, dtype))


def parsenet_weights(state: dict[str, torch.Tensor]) -> ParseNetWeights:
    """ParseNet's layers from facexlib's state dict (any widths and depths), BatchNorm folded in.
    Raises ParseNetLayoutError naming the first key that is missing, extra or of the wrong shape."""
    reader = _StateReader(state)
    first = reader.conv("encoder.0", 3)
    channels = first.out_channels
    stages = []
    for stage, scale in (("encoder", "down"), ("body", "none"), ("decoder", "up")):
        blocks, start = [], 1 if stage == "encoder" else 0
        while f"{stage}.{start + len(blocks)}.conv1.conv2d.weight" in state:
            prefix = f"{stage}.{start + len(blocks)}"
            conv1 = reader.conv(f"{prefix}.conv1", channels)
            conv2 = reader.conv(f"{prefix}.conv2", conv1.out_channels)
            identity = scale == "none" and conv1.out_channels == channels
            shortcut = None if identity else reader.conv(f"{prefix}.shortcut_func", channels, conv1.out_channels)
            blocks.append(Block(scale, conv1, conv2, shortcut))
            channels = conv1.out_channels
        stages.append(tuple(blocks))
    reader.skip("out_img_conv.conv2d.")  # the parser's image head: its output is not used
    mask_out = reader.conv("out_mask_conv", channels)
    reader.check_all_used()
    if not stages[0] or len(stages[0]) != len(stages[2]):
        raise ParseNetLayoutError(f"{len(stages[0])} down blocks and {len(stages[2])} up blocks; ParseNet has as "
                                  "many of each")
    return ParseNetWeights(first, *stages, mask_out)


class _StateReader:
    def __init__(self, state: dict[str, torch.Tensor]):
        self.state, self.used = state, set()

    def take(self, key: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        if key not in self.state:
            raise ParseNetLayoutError(f"missing key {key!r}")
        value = self.state[key]
        if shape is not None and tuple(value.shape) != shape:
            raise ParseNetLayoutError(f"{key} has shape {tuple(value.shape)}, expected {shape}")
        self.used.add(key)
        return value

    def conv(self, prefix: str, in_channels: int, out_channels: int | None = None) -> Conv:
        weight = self.take(f"{prefix}.conv2d.weight")
        if weight.ndim != 4 or weight.shape[1:] != (in_channels, 3, 3) or (
                out_channels is not None and weight.shape[0] != out_channels):
            raise ParseNetLayoutError(f"{prefix}.conv2d.weight has shape {tuple(weight.shape)}, expected "
                                      f"({out_channels or 'any'}, {in_channels}, 3, 3)")
        weight, out = weight.double(), weight.shape[0]
        norm = f"{prefix}.norm.norm."
        if f"{norm}weight" in self.state:  # eval-mode BatchNorm: a per-channel scale and shift
            gamma, beta, mean, var = (self.take(norm + name, (out,)).double()
                                      for name in ("weight", "bias", "running_mean", "running_var"))
            self.used.add(f"{norm}num_batches_tracked")
            scale = gamma / torch.sqrt(var + _BN_EPS)
            weight, bias = weight * scale[:, None, None, None], beta - mean * scale
        else:
            bias = self.take(f"{prefix}.conv2d.bias", (out,)).double()
        return Conv(weight.float().contiguous(memory_format=_CL), bias.float())

    def skip(self, prefix: str) -> None:
        self.used.update(k for k in self.state if k.startswith(prefix))

    def check_all_used(self) -> None:
        extra = sorted(set(self.state) - self.used)
        if extra:
            raise ParseNetLayoutError(f"unexpected key {extra[0]!r}" + (f" and {len(extra) - 1} more"
                                                                          if len(extra) > 1 else ""))


def _up_phase_kernels(block: Block) -> dict[tuple[int, int], torch.Tensor]:
    """An up block's conv1 and shortcut (3x3 over a 2x nearest upsampling, reflection-padded) as
    one 2x2 convolution per output phase (row parity dy, column parity dx) over the input padded
    by one pixel of replication: its outputs conv1's channels, then the shortcut's. Phase (dy, dx)
    of the result is that convolution's output from row dy, column dx on."""
    def taps(w: torch.Tensor, axis: int, phase: int) -> torch.Tensor:
        first, middle, last = w.unbind(axis)
        pair = (first, middle + last) if phase == 0 else (first + middle, last)
        return torch.stack(pair, axis)

    w = torch.cat([block.conv1.weight, block.shortcut.weight]).double()
    return {(dy, dx): taps(taps(w, 2, dy), 3, dx).float().contiguous(memory_format=_CL)
            for dy in (0, 1) for dx in (0, 1)}


def _conv_add_generic(out, x, weight, stride=1, padding=0, groups=1):
    out.add_(F.conv2d(x, weight, stride=stride, padding=padding, groups=groups))


def _fill(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return out.copy_(bias.view(1, -1, 1, 1).expand_as(out))


def _interior(padded: torch.Tensor) -> torch.Tensor:
    return padded[:, :, 1:-1, 1:-1]


def _fill_border(padded: torch.Tensor, reflect: bool) -> torch.Tensor:
    """The one-pixel border of `padded` from its interior: ReflectionPad2d(1) or ReplicationPad2d(1)."""
    near, far = (2, -3) if reflect else (1, -2)
    padded[:, :, 0, 1:-1].copy_(padded[:, :, near, 1:-1])
    padded[:, :, -1, 1:-1].copy_(padded[:, :, far, 1:-1])
    padded[:, :, :, 0].copy_(padded[:, :, :, near])
    padded[:, :, :, -1].copy_(padded[:, :, :, far])
    return padded


class ParseNetForward:
    """ParseNet's logits for one face at a time, (1, 3, S, S) normalised RGB in, on `device` in
    `dtype` (float32, or bfloat16 where that is fast: parsing.FaceParser.fast). Every convolution
    reads a whole padded buffer and adds into a whole contiguous one (oneDNN fuses that add only
    then); the buffers of the largest size seen are kept for the next call (about 390 MB at 512 for
    the released widths in float32, half that in bfloat16). Calls are serialised."""

    def __init__(self, weights: ParseNetWeights, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.device, self.dtype = torch.device(device), dtype
        self._given, self._prepared = weights, None
        self._conv_add = cpu_forward.conv_add if self.device.type == "cpu" and cpu_forward.supported() \
            else _conv_add_generic
        self._buffers: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    @property
    def classes(self) -> int:
        return self._given.classes

    @property
    def weights(self) -> ParseNetWeights:
        """The weights as this forward runs them: on its device, in its dtype."""
        return self._prepare()[0]

    def _prepare(self) -> tuple[ParseNetWeights, list]:
        """The weights on the device in this forward's dtype, and each up block's phase kernels
        (_up_phase_kernels) and bias: made at the first call, so that a forward kept for one mask
        mode costs no memory while another mode runs."""
        if self._prepared is None:
            given, device, dtype = self._given, self.device, self.dtype
            phases = [({phase: kernel.to(device, dtype) for phase, kernel in _up_phase_kernels(block).items()},
                       torch.cat([block.conv1.bias, block.conv2.bias + block.shortcut.bias]).to(device, dtype))
                      for block in given.decoder]
            self._prepared = given.to(device, dtype), phases
        return self._prepared

    @property
    def workspace_bytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self._buffers.values())

    def labels(self, x: torch.Tensor, size: int) -> torch.Tensor:
        """Class ids (size x size, uint8) of x: the logits, bilinearly resized to `size` if needed."""
        with self._lock, torch.inference_mode():
            logits = self._run(x)
            if logits.shape[-1] != size:
                logits = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
            return logits.argmax(dim=1)[0].to(torch.uint8)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        with self._lock, torch.inference_mode():
            return self._run(x).clone()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self._forward(x)
        except RuntimeError as err:
            if self._conv_add is _conv_add_generic:
                raise
            warnings.warn(f"face parser: oneDNN's in-place convolution failed ({err}); using the ordinary "
                          "convolution from now on")
            self._conv_add = _conv_add_generic
            return self._forward(x)

    def _buffer(self, name: str, channels: int, height: int, width: int) -> torch.Tensor:
        """A (1, C, H, W) channels-last buffer kept between calls."""
        n = channels * height * width
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < n:
            self._buffers.pop(name, None)  # let the old one go before the new one is made
            with torch.inference_mode(False):
                buffer = self._buffers[name] = torch.empty(n, dtype=self.dtype, device=self.device)
        return buffer[:n].view(1, height, width, channels).permute(0, 3, 1, 2)

    def _padded(self, name: str, x: torch.Tensor, reflect: bool = True, relu: bool = False) -> torch.Tensor:
        _, c, h, w = x.shape
        padded = self._buffer(name, c, h + 2, w + 2)
        if relu:
            torch._C._nn.leaky_relu(x, LEAKY_SLOPE, out=_interior(padded))
        else:
            _interior(padded).copy_(x)
        return _fill_border(padded, reflect)

    def _conv(self, name: str, conv: Conv, padded: torch.Tensor, stride: int = 1) -> torch.Tensor:
        side = (padded.shape[-1] - 3) // stride + 1
        out = _fill(self._buffer(name, conv.out_channels, side, side), conv.bias)
        self._conv_add(out, padded, conv.weight, stride=stride)
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1]
        if x.ndim != 4 or x.shape[:3] != (1, 3, side) or side % self._given.multiple:
            raise ValueError(f"ParseNet takes one (1, 3, S, S) image with S a multiple of "
                             f"{self._given.multiple}, got {tuple(x.shape)}")
        w, phases = self._prepare()
        x = self._conv("b", w.first, self._padded("in", x.to(self.device, self.dtype)))
        spare = "a"
        for block in w.encoder:
            x, spare = self._down(block, x, spare), _OTHER[spare]
        feature = self._buffer("feature", *x.shape[1:]).copy_(x)
        for block in w.body:
            x, spare = self._same(block, x, spare), _OTHER[spare]
        x.add_(feature)
        for block, kernels in zip(w.decoder, phases):
            x, spare = self._up(block, kernels, x, spare), _OTHER[spare]
        return self._conv(_OTHER[spare], w.mask_out, self._padded("in", x))

    def _down(self, block: Block, x: torch.Tensor, out_name: str) -> torch.Tensor:
        padded = self._padded("in", x)
        mid = self._padded("mid", self._conv(_OTHER[out_name], block.conv1, padded), relu=True)
        side = x.shape[-1] // 2
        out = _fill(self._buffer(out_name, block.conv2.out_channels, side, side),
                    block.conv2.bias + block.shortcut.bias)
        self._conv_add(out, padded, block.shortcut.weight, stride=2)
        self._conv_add(out, mid, block.conv2.weight, stride=2)
        return out

    def _same(self, block: Block, x: torch.Tensor, out_name: str) -> torch.Tensor:
        padded = self._padded("in", x)
        mid = self._padded("mid", self._conv(_OTHER[out_name], block.conv1, padded), relu=True)
        out = self._buffer(out_name, block.conv2.out_channels, *x.shape[2:])
        if block.shortcut is None:
            torch.add(_interior(padded), block.conv2.bias.view(1, -1, 1, 1), out=out)
        else:
            _fill(out, block.conv2.bias + block.shortcut.bias)
            self._conv_add(out, padded, block.shortcut.weight)
        self._conv_add(out, mid, block.conv2.weight)
        return out

    def _up(self, block: Block, phases, x: torch.Tensor, out_name: str) -> torch.Tensor:
        kernels, bias = phases
        side, split = x.shape[-1], block.conv1.out_channels
        padded = self._padded("in", x, reflect=False)
        mid = self._buffer("mid", split, 2 * side + 2, 2 * side + 2)
        out = self._buffer(out_name, block.conv2.out_channels, 2 * side, 2 * side)
        phase = self._buffer(_OTHER[out_name], bias.numel(), side + 1, side + 1)
        for (dy, dx), kernel in kernels.items():
            self._conv_add(_fill(phase, bias), padded, kernel)
            part = phase[:, :, dy:dy + side, dx:dx + side]
            torch._C._nn.leaky_relu(part[:, :split], LEAKY_SLOPE, out=_interior(mid)[:, :, dy::2, dx::2])
            out[:, :, dy::2, dx::2].copy_(part[:, split:])
        self._conv_add(out, _fill_border(mid, reflect=True), block.conv2.weight)
        return out


# The two buffers that block inputs and outputs alternate between. A block copies its input into the
# padded buffer "in" first: the buffer it came in is then free for the block's own intermediates.
_OTHER = {"a": "b", "b": "a"}
