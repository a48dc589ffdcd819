"""Running the restorer on aligned crops: the batching policy, out-of-memory halving, the tasks.

Crops are (N, 3, S, S) uint8 RGB tensors, as the official code holds them, on
any device (they are moved to the model's a call at a time). The network contract
(gpen_arch): a callable on (B, 3, S, S) RGB in [-1, 1] returning the same
layout, unclamped.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import torch

from gpen_arch import GPENModel

from .color import transfer_luminance
from .face import crops_from_numpy, crops_to_numpy
from .options import COLORIZE_MODES, FACES_HELD, TASKS


class RestoreOutOfMemory(torch.OutOfMemoryError):
    """The restorer ran out of memory even one face at a time.

    A torch out-of-memory error (and so a RuntimeError): hosts that handle those, like
    ComfyUI (which then frees its models and explains), recognise it, with our message."""


def faces_per_call(model: GPENModel, batch_size: int | None) -> int:
    """The batching policy: how many faces go through the network in one call.

    The asked size when there is one. Otherwise one face where the model runs a batch one face
    at a time anyway (a torch GPEN on the CPU), so that the working set stays at one face's;
    elsewhere FACES_HELD, halved on out-of-memory."""
    if batch_size:
        return int(batch_size)
    return 1 if model.one_face_per_call else FACES_HELD


@dataclass(frozen=True)
class NetworkOutput:
    """The network's output on (N, 3, S, S) crops, as uint8 two ways."""
    rounded: torch.Tensor  # to the nearest level: what every mode but "official" uses
    truncated: torch.Tensor  # as the official code's .astype(np.uint8): a shade darker, "official" mode's


def run_network(model: GPENModel, crops: torch.Tensor, batch_size: int | None = None) -> NetworkOutput:
    """(N, 3, S, S) uint8 crops through the network, a call of `faces_per_call` faces at a time,
    the call halved on out-of-memory; the result on the crops' device.

    The input arithmetic is the official FaceGAN's (u8 / 255 - 0.5) / 0.5, so the network sees
    the official tensor bit for bit. Raises RestoreOutOfMemory when even one face does not fit."""
    device, dtype = model.device, model.dtype
    chunk = faces_per_call(model, batch_size)
    rounded: list[torch.Tensor] = []
    truncated: list[torch.Tensor] = []
    start = 0
    with torch.inference_mode():
        while start < crops.shape[0]:
            # Converted a chunk at a time: a float copy of sixteen 512 px faces is 50 MB.
            part = crops[start:start + chunk].to(device).float().div_(255.0).sub_(0.5).div_(0.5)
            try:
                out = model(part.to(dtype))
            except torch.OutOfMemoryError as err:
                del part
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                if chunk == 1:
                    raise RestoreOutOfMemory(
                        f"the face restorer ran out of memory on {device} even with one face per batch "
                        f"({tuple(crops.shape[1:])}); use a smaller model, free memory or run on the CPU") from err
                chunk = max(1, chunk // 2)
                continue
            levels = out.float().mul(0.5).add_(0.5).clamp_(0.0, 1.0).mul_(255.0)  # not in place: `out` may be held
            truncated.append(levels.to(torch.uint8).to(crops.device))  # a float -> uint8 cast truncates
            rounded.append(levels.round_().to(torch.uint8).to(crops.device))
            start += part.shape[0]
    return NetworkOutput(torch.cat(rounded), torch.cat(truncated))


def restore_tensor_crops(model: GPENModel, crops: torch.Tensor, task: str = "restore",
                         damage: torch.Tensor | None = None, batch_size: int | None = None,
                         colorize: str = "keep-luminance") -> NetworkOutput:
    """Restore (N, 3, S, S) crops at the model's size.

    - "restore": the network output.
    - "colorize": the crop's grey goes in on all three channels. `colorize` "keep-luminance"
      keeps the network's colours on the grey's own luminance (the official YUV finish, applied
      at every size); "official" is the official script's output at the model's size, where it
      keeps the network's own luminance.
    - "inpaint": pixels where `damage` (N, S, S) >= 0.5 are painted white before the
      network, as the released model expects.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if colorize not in COLORIZE_MODES:
        raise ValueError(f"unknown colorize mode {colorize!r}; choose one of {', '.join(COLORIZE_MODES)}")
    if task == "inpaint":
        if damage is None or damage.shape[0] != crops.shape[0]:
            got = None if damage is None else damage.shape[0]
            raise ValueError(f"task 'inpaint' needs one damage mask per crop: {crops.shape[0]} crops, masks: {got}")
        crops = torch.where(damage[:, None].to(crops.device) >= 0.5, 255, crops).to(torch.uint8)
    if task != "colorize":
        return run_network(model, crops, batch_size)
    # cv2's fixed-point grey and YUV conversions are the official ones; on the host, crop by crop.
    greys = [cv2.cvtColor(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for c in crops_to_numpy(crops)]
    coloured = run_network(model, crops_from_numpy(greys, crops.device), batch_size)
    if colorize == "official":
        return coloured

    def on_grey(out: torch.Tensor) -> torch.Tensor:
        return crops_from_numpy([transfer_luminance(c, g) for c, g in zip(crops_to_numpy(out), greys)], crops.device)

    return NetworkOutput(on_grey(coloured.rounded), on_grey(coloured.truncated))
