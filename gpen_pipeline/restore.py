"""Running a face restorer on aligned crops: tensors in and out, batching, tasks.

The network contract (gpen_arch): a callable on (B,3,S,S) RGB float32 in
[-1,1] returning the same layout, unclamped. Crops are uint8 RGB SxSx3.
"""
from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from .color import check_crop, transfer_luminance

TASKS = ("restore", "colorize", "inpaint")

Model = Callable[[torch.Tensor], torch.Tensor]


class RestoreOutOfMemory(torch.OutOfMemoryError):
    """The restorer ran out of memory even one face at a time.

    A torch out-of-memory error (and so a RuntimeError): hosts that handle those, like
    ComfyUI (which then frees its models and explains), recognise it, with our message."""


def to_network(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 RGB SxSx3 crops -> (B,3,S,S) float32 in [-1,1].

    Same arithmetic as the official FaceGAN (u8/255, then (x-0.5)/0.5), so the
    tensor is bit-identical to the official one.
    """
    if len(crops) == 0:
        raise ValueError("to_network got no crops")
    arrays = [check_crop(c, f"crop {i}") for i, c in enumerate(crops)]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"crops of one batch must share a size, got {sorted({a.shape for a in arrays})}")
    # In place, the same operations in the same order (so still bit-identical): a chunk of
    # 512-px faces is 50 MB per float copy, and a long frame batch should not hold several.
    batch = torch.from_numpy(np.stack(arrays)).float().div_(255.0).sub_(0.5).div_(0.5)
    return batch.permute(0, 3, 1, 2).contiguous()


def from_network(tensor: torch.Tensor, round_output: bool = True) -> list[np.ndarray]:
    """(B,3,S,S) network output in [-1,1] -> list of uint8 RGB crops.

    `round_output=False` truncates like the official code (which makes most
    pixels a shade darker); rounding is the default.
    """
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise ValueError(f"network output must be (B,3,S,S), got {tuple(tensor.shape)}")
    # One float copy, then in place (round half to even, as np.rint).
    pixels = tensor.detach().float().cpu().mul(0.5).add_(0.5).clamp_(0, 1).mul_(255.0)
    if round_output:
        pixels.round_()
    pixels = pixels.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [np.ascontiguousarray(p) for p in pixels]


def _model_size(model: Model, crops: Sequence[np.ndarray]) -> int:
    size = getattr(model, "size", None)
    return int(size) if size else int(max(np.shape(crops[0])[:2]))


def model_placement(model: Model, device: str | torch.device | None) -> tuple[torch.device, torch.dtype]:
    param = None
    if isinstance(model, torch.nn.Module):
        param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if device is not None:
        return torch.device(device), dtype
    return (param.device if param is not None else torch.device("cpu")), dtype


def _resized(crop: np.ndarray, size: int, index: int) -> np.ndarray:
    crop = check_crop(crop, f"crop {index}", square=False)
    if crop.shape[:2] == (size, size):
        return crop
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)


def _damage_mask(mask: np.ndarray, size: int, index: int) -> np.ndarray:
    """A crop's inpainting mask as bool SxS: True marks damage (mask >= half scale)."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"inpaint mask {index} must be HxW, got shape {mask.shape}")
    if mask.dtype == np.bool_:
        unit = mask.astype(np.float32)
    elif mask.dtype == np.uint8:
        unit = mask.astype(np.float32) / 255.0
    else:
        unit = mask.astype(np.float32)
    if unit.shape != (size, size):
        unit = cv2.resize(unit, (size, size), interpolation=cv2.INTER_NEAREST)
    return unit >= 0.5


def _faces_per_call(model: Model, device, count: int, batch_size: int | None) -> int:
    """Faces converted and sent to `run_batched` at once: one for a torch GPEN on the CPU, which runs a
    batch one face at a time anyway there; otherwise all (`run_batched` chunks them, and a chunk halved
    after an out-of-memory error stays halved for the rest)."""
    on_cpu = isinstance(model, torch.nn.Module) and model_placement(model, device)[0].type == "cpu"
    return 1 if on_cpu and not batch_size else max(1, count)


def run_batched(model: Model, batch: torch.Tensor, batch_size: int | None = None,
                device: str | torch.device | None = None, keep_on_device: bool = False) -> torch.Tensor:
    """Run `model` over `batch` in chunks, halving the chunk on out-of-memory.

    Returns float32 on the CPU, or on the model's device with `keep_on_device`.
    Raises RestoreOutOfMemory when even one face does not fit.
    """
    run_device, dtype = model_placement(model, device)
    n = batch.shape[0]
    chunk = max(1, int(batch_size or n))
    outputs: list[torch.Tensor] = []
    start = 0
    with torch.inference_mode():
        while start < n:
            part = batch[start:start + chunk].to(device=run_device, dtype=dtype)
            try:
                out = model(part)
            except torch.OutOfMemoryError as err:
                del part
                if run_device.type == "cuda":
                    torch.cuda.empty_cache()
                if chunk == 1:
                    raise RestoreOutOfMemory(
                        f"the face restorer ran out of memory on {run_device} even with one face per batch "
                        f"({tuple(batch.shape[1:])}); use a smaller model, free memory or run on the CPU") from err
                chunk = max(1, chunk // 2)
                continue
            if isinstance(out, (tuple, list)):
                out = out[0]  # the official generator returns (image, latents)
            outputs.append(out.float() if keep_on_device else out.float().cpu())
            start += part.shape[0]
    return torch.cat(outputs)


def restore_crops(model: Model, crops: Sequence[np.ndarray], task: str = "restore",
                  inpaint_masks: Sequence[np.ndarray] | None = None, batch_size: int | None = None,
                  device: str | torch.device | None = None, round_output: bool = True,
                  inpaint_keep_outside: bool = False) -> list[np.ndarray]:
    """Restore aligned uint8 RGB crops; returns uint8 RGB crops at the model size.

    Crops of another size are resized to `model.size` first (bilinear, as the
    official code). Tasks:
    - "restore": the network output.
    - "colorize": the crop's luma goes in as grey on all three channels; the
      result keeps the network's colours with the input's luminance (YUV swap).
    - "inpaint": pixels where `inpaint_masks[i]` >= 0.5 (uint8 >= 128) are
      painted white before the network, as the released model expects. The
      result is the network output; with `inpaint_keep_outside` the pixels
      outside the mask are the input crop's, bit for bit.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    if len(crops) == 0:
        return []
    size = _model_size(model, crops)
    inputs = [_resized(c, size, i) for i, c in enumerate(crops)]

    damage: list[np.ndarray] = []
    if task == "inpaint":
        if inpaint_masks is None or len(inpaint_masks) != len(inputs):
            got = None if inpaint_masks is None else len(inpaint_masks)
            raise ValueError(f"task 'inpaint' needs one mask per crop: {len(inputs)} crops, masks: {got}")
        damage = [_damage_mask(m, size, i) for i, m in enumerate(inpaint_masks)]
        inputs = [np.where(d[..., None], np.uint8(255), c) for c, d in zip(inputs, damage)]
    elif task == "colorize":
        inputs = [cv2.cvtColor(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for c in inputs]

    outputs = []
    step = _faces_per_call(model, device, len(inputs), batch_size)
    for start in range(0, len(inputs), step):  # converted a part at a time: floats of only `step` faces alive
        part = to_network(inputs[start:start + step])
        outputs += from_network(run_batched(model, part, batch_size, device), round_output)

    if task == "colorize":
        outputs = [transfer_luminance(out, grey) for out, grey in zip(outputs, inputs)]
    elif task == "inpaint" and inpaint_keep_outside:
        originals = [_resized(c, size, i) for i, c in enumerate(crops)]
        outputs = [np.where(d[..., None], out, orig) for out, orig, d in zip(outputs, originals, damage)]
    return outputs
