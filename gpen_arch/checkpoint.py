"""Reading weight files safely, unwrapping containers, and telling GPEN from other models."""
from __future__ import annotations

import argparse
import pickle
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import ModelLoadError

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".sft")
# Checked in this order: a training checkpoint holds both 'g' and 'g_ema', and the EMA is what restores.
CONTAINER_KEYS = ("g_ema", "params_ema", "params", "state_dict", "model", "generator", "g")


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors in a weight file, without running any code stored in it."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"Model file not found: {path}")
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModelLoadError(
            f"{path.name}: unsupported file type '{path.suffix}'; use {', '.join(WEIGHT_SUFFIXES)} or .onnx."
        )
    if path.stat().st_size == 0:
        raise ModelLoadError(f"Model file {path.name} is empty (0 bytes): the download or copy failed; get it again.")
    if path.suffix.lower() in (".safetensors", ".sft"):
        return _read_safetensors(path)
    return unwrap(_read_pickle(path), path.name)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"Model file {path.name} is not a readable .safetensors file ({_first_line(exc)}); "
            "it is probably truncated or corrupt: download it again."
        ) from None


def _read_pickle(path: Path) -> Any:
    try:
        # weights_only refuses every class but tensors and plain containers;
        # argparse.Namespace is allowed because training checkpoints store their args in one.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise ModelLoadError(
                f"Model file {path.name} was refused: it contains Python objects that could run code when "
                "loaded, and only plain weight files are accepted. Use the original GPEN release, or a "
                ".safetensors conversion from a source you trust."
            ) from None
        raise _corrupt(path, exc) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, OSError, UnicodeDecodeError,
            AttributeError, IndexError, TypeError, MemoryError, OverflowError) as exc:
        raise _corrupt(path, exc) from None


def _corrupt(path: Path, exc: BaseException) -> ModelLoadError:
    return ModelLoadError(
        f"Model file {path.name} could not be read ({_first_line(exc)}); it is probably truncated or "
        "corrupt: download it again."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap(obj: Any, name: str = "state_dict") -> dict[str, torch.Tensor]:
    """The flat {name: tensor} dict inside the usual checkpoint containers."""
    for _ in range(4):
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if _is_tensor_dict(obj) or inner is None:
            break
        obj = inner
    if not _is_tensor_dict(obj):
        raise ModelLoadError(
            f"{name} holds no weights: it is a {type(obj).__name__}, not a dict of tensors "
            f"(looked inside {', '.join(CONTAINER_KEYS)})."
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


# What other face-restoration files look like, by their tensor names.
def _any(keys, *prefixes) -> bool:
    return any(k.startswith(prefixes) for k in keys)


def identify(sd: Mapping[str, torch.Tensor]) -> str | None:
    """A short description of a non-GPEN model, or None when it may be a GPEN."""
    keys = list(sd)
    if _any(keys, "stylegan_decoder.", "conv_body_first"):
        return "a GFPGAN face restorer"
    if "position_emb" in sd or _any(keys, "ft_layers.", "fuse_convs_dict.", "idx_pred_layer."):
        return "a CodeFormer face restorer"
    if _any(keys, "encoder.conv_in.", "vqvae.encoder.") and _any(keys, "quantize.", "vqvae.quantize."):
        return "a RestoreFormer face restorer"
    if _any(keys, "ClassHead.", "BboxHead.", "LandmarkHead."):
        return "a RetinaFace face detector"
    if _any(keys, "out_mask_conv.", "out_img_conv."):
        return "a ParseNet face parser"
    if _any(keys, "cp.resnet.", "ffm.convblk."):
        return "a BiSeNet face parser"
    if "conv_first.weight" in sd and _any(keys, "body.", "RRDB_trunk."):
        return "an ESRGAN-family upscaler (RRDBNet)"
    if _any(keys, "model.1.sub."):
        return "an ESRGAN-family upscaler (old ESRGAN layout)"
    if _any(keys, "layers.0.residual_group."):
        return "a SwinIR upscaler"
    if _any(keys, "final_conv.") and _any(keys, "convs.0."):
        return "a GPEN discriminator (used only for training, it cannot restore)"
    if not _any(keys, "generator.", "ecd0.", "final_linear."):
        return "not a GPEN model"
    return None
