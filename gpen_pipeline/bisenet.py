"""BiSeNet (face-parsing.PyTorch, as facexlib ships it) with BatchNorm folded into its convolutions.

facexlib's module is the network; here each convolution that BatchNorm follows
absorbs it once at load, the weights are laid out channels-last, and only the
main head runs: facexlib also computes two auxiliary heads (training outputs)
that the labels never read. Needs the facexlib package.
"""
from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# (convolution, BatchNorm) attribute pairs in facexlib's BiSeNet and its ResNet-18.
_PAIRS = (("conv", "bn"), ("conv1", "bn1"), ("conv2", "bn2"), ("conv_atten", "bn_atten"))


def _fold_batchnorm(net: nn.Module) -> None:
    for module in list(net.modules()):
        for conv_name, bn_name in _PAIRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
        if isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[0], nn.Conv2d) \
                and isinstance(module[1], nn.BatchNorm2d):  # a ResNet block's downsampling shortcut
            module[0], module[1] = fuse_conv_bn_eval(module[0], module[1]), nn.Identity()


class BiSeNetForward:
    """facexlib's BiSeNet from a state dict, BatchNorm folded, on `device`; calls are serialised."""

    def __init__(self, state: dict[str, torch.Tensor], device: str | torch.device = "cpu"):
        try:
            from facexlib.parsing.bisenet import BiSeNet
        except ImportError as err:
            raise ImportError(f"the bisenet face parser needs the facexlib package: pip install facexlib "
                              f"({err})") from err
        net = BiSeNet(num_class=19)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(str(err).splitlines()[0]) from err
        net.eval().requires_grad_(False)
        _fold_batchnorm(net)
        self.device = torch.device(device)
        self.net = net.to(self.device, memory_format=torch.channels_last)
        self._lock = threading.Lock()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The main head's logits at the input's size, as facexlib's forward()[0]."""
        with self._lock, torch.inference_mode():
            return self._logits(x, x.shape[-2:])

    def labels(self, x: torch.Tensor, size: int) -> torch.Tensor:
        with self._lock, torch.inference_mode():
            return self._logits(x, (size, size)).argmax(dim=1)[0].to(torch.uint8)

    def _logits(self, x: torch.Tensor, size) -> torch.Tensor:
        net = self.net
        x = x.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        res8, cp8, _ = net.cp(x)
        out, _ = net.conv_out(net.ffm(res8, cp8))
        return F.interpolate(out, size, mode="bilinear", align_corners=True)
