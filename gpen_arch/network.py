"""The GPEN generator: a StyleGAN2 decoder fed by a U-net encoder (building blocks in layers.py).

Module and parameter names follow the released checkpoints exactly, so their
state_dicts load strict.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from . import cpu_forward
from .config import GPENConfig
from .layers import ConstantInput, ConvLayer, EqualLinear, ModulatedConv2d, PixelNorm, StyledConv, ToRGB, wide

_LR_MLP = 0.01  # learning-rate multiplier of the mapping network: part of its weights' scale


class StyleDecoder(nn.Module):
    """The StyleGAN2 generator inside GPEN (`generator.*` in the checkpoints)."""

    def __init__(self, cfg: GPENConfig):
        super().__init__()
        self.style = nn.Sequential(
            PixelNorm(),
            *[EqualLinear(cfg.style_dim, cfg.style_dim, lr_mul=_LR_MLP, activate=True) for _ in range(cfg.n_mlp)],
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

    def levels(self) -> list[tuple[StyledConv, StyledConv, ToRGB]]:
        """(upsampling conv, conv, to_rgb) of each level above 4x4, from 8x8 up."""
        return list(zip(self.convs[0::2], self.convs[1::2], self.to_rgbs))

    def forward(self, z: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """`features`: encoder outputs from 4x4 up to full size, one per level."""
        # Every layer gets the same w (one style, no mixing, no truncation).
        w = self.style(wide(z))
        x = self.input(z.shape[0], features[0].dtype)
        x = self.conv1(x, w, features[0])
        skip = self.to_rgb1(x, w)
        # The activation lives only in `held`: each StyledConv pops it, so it is freed as soon
        # as it has been convolved instead of when the next one is assigned.
        held = [x]
        del x
        for level, (up, conv, to_rgb) in enumerate(self.levels(), start=1):
            feature, features[level] = features[level], None  # released once this level is done
            held.append(up(held, w, feature))
            held.append(conv(held, w, feature))
            del feature
            skip = to_rgb(held[0], w, skip)
        return skip


class GPEN(nn.Module):
    """GPEN `FullGenerator`: (B, 3, S, S) RGB in [-1, 1] -> restored (B, 3, S, S), unclamped."""

    def __init__(self, cfg: GPENConfig, random_init: bool = True):
        """random_init: the official random weights (what tests and benchmarks run). A network that
        is about to receive a file's weights skips it: drawn on the meta device, where the loader
        builds, it would cost most of a cold start."""
        super().__init__()
        self.config = cfg
        self.size = cfg.size
        self.generator = StyleDecoder(cfg)
        n_enc = cfg.log_size - 1
        self.encoder_names = [f"ecd{i}" for i in range(n_enc)]
        setattr(self, "ecd0", nn.Sequential(ConvLayer(3, cfg.channels(cfg.size), downsample=False)))
        for i in range(1, n_enc):
            res = cfg.size // 2 ** i
            setattr(self, f"ecd{i}", nn.Sequential(ConvLayer(cfg.channels(res * 2), cfg.channels(res), downsample=True)))
        self.final_linear = nn.Sequential(EqualLinear(cfg.channels(4) * 16, cfg.style_dim, activate=True))
        if random_init:
            with torch.no_grad():
                for module in self.modules():
                    if module is not self and hasattr(module, "reset_parameters"):
                        module.reset_parameters()

    # On a CPU in float32 without autograd, the forward keeps its activations in one
    # workspace that it reuses (cpu_forward.WorkspaceRunner); False on an instance runs the
    # ordinary layers instead.
    use_workspace = True
    # Kept between calls up to this size (GPEN-512: 333 MB, 1024: 653 MB); the 2048 px
    # models' 1.3 GB is freed after each call: too much to hold while the model sits idle.
    KEEP_WORKSPACE_BYTES = 1 << 30

    @property
    def dtype(self) -> torch.dtype:
        return self.generator.input.input.dtype

    def encoder_layers(self) -> list[ConvLayer]:
        """The encoder's layers, full size first."""
        return [getattr(self, name)[0] for name in self.encoder_names]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's outputs, full size first."""
        # Channels-last all the way: oneDNN's direct kernels for this layout are 2-5x faster
        # on CPU here than NCHW (whose 3x3 path also builds huge im2col buffers at 2048 px).
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        features = []
        for name in self.encoder_names:
            x = getattr(self, name)(x)
            features.append(x)
        return features

    def latent(self, smallest: torch.Tensor) -> torch.Tensor:
        """The decoder's input z from the 4x4 encoder output."""
        return self.final_linear(wide(smallest.reshape(smallest.shape[0], -1)))

    def release_workspace(self) -> None:
        """Free the CPU workspace kept between calls (the next CPU call builds it again)."""
        self.__dict__.pop("_workspace", None)

    def prepare(self) -> None:
        """Build now what the first call on the CPU would build as it goes: the workspace, its pages
        mapped in, and each layer's weight energy. Nothing where the forward runs without a workspace
        (another device or dtype) or frees it after each call."""
        if not self._workspace_applies() or "_workspace" in self.__dict__:
            return
        runner = cpu_forward.WorkspaceRunner(self.config)
        if runner.nbytes > self.KEEP_WORKSPACE_BYTES:
            return
        runner.map_in()
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, ModulatedConv2d) and module.demodulate:
                    module.weight_energy(torch.float32)
        self.__dict__["_workspace"] = runner

    def _apply(self, fn, recurse=True):
        where = (self.generator.input.input.device, self.dtype)
        out = super()._apply(fn, recurse)
        if (self.generator.input.input.device, self.dtype) != where:
            self.release_workspace()  # moved or cast: the workspace no longer fits
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.size or x.shape[3] != self.size:
            raise ValueError(f"GPEN-{self.size} expects a (B, 3, {self.size}, {self.size}) tensor, got {tuple(x.shape)}")
        if x.shape[0] > 1 and x.device.type == "cpu":
            # The CPU forward runs one face at a time: its convolutions are compute-bound, so a batch
            # gains nothing, while one face keeps the working set, and the time per face, at its batch-1 level.
            return torch.cat([self._forward(x[i:i + 1]) for i in range(x.shape[0])])
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._runs_in_workspace(x):
            out = self._forward_in_workspace(x)
            if out is not None:
                return out
        features = self.encode(x)
        z = self.latent(features[-1])
        features.reverse()
        out = self.generator(z, features).to(self.dtype).contiguous()
        if self.dtype == torch.float16 and not torch.isfinite(out).all():
            raise FloatingPointError(
                "GPEN overflowed in fp16 on this input and produced invalid pixels; use bf16 or fp32 precision."
            )
        return out

    def _runs_in_workspace(self, x: torch.Tensor) -> bool:
        return (x.device.type == "cpu" and x.shape[0] == 1 and not torch.is_grad_enabled()
                and self._workspace_applies())

    def _workspace_applies(self) -> bool:
        """Whether this network, as it is now, runs its CPU forward in a workspace."""
        return (self.use_workspace and self.dtype == torch.float32 and self.config.isconcat
                and self.generator.input.input.device.type == "cpu" and cpu_forward.supported())

    def _forward_in_workspace(self, x: torch.Tensor) -> torch.Tensor | None:
        """The workspace forward's result, or None once it has turned out not to work on this torch."""
        # Taken out while in use, so that a concurrent call (another thread) builds its own.
        runner = self.__dict__.pop("_workspace", None) or cpu_forward.WorkspaceRunner(self.config)
        try:
            return runner(self, x)
        except RuntimeError as err:
            if isinstance(err, torch.OutOfMemoryError):
                raise
            # A oneDNN build without some kernel this path needs: the ordinary layers from now on.
            warnings.warn(f"GPEN's in-place CPU forward failed ({err}); using the ordinary layers instead")
            self.use_workspace = False
            runner = None
            return None
        finally:
            if runner is not None and runner.nbytes <= self.KEEP_WORKSPACE_BYTES:
                self.__dict__["_workspace"] = runner
