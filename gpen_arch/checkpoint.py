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
# Every file a GPEN can be loaded from: the weight files, and exported graphs.
MODEL_SUFFIXES = WEIGHT_SUFFIXES + (".onnx",)
# Checked in this order: a training checkpoint holds both 'g' and 'g_ema', and the EMA is what restores.
CONTAINER_KEYS = ("g_ema", "params_ema", "params", "state_dict", "model", "generator", "g")


def read_weights(path: str | Path, label: str = "Model file", suffix: str | None = None) -> dict[str, torch.Tensor]:
    """The flat {name: tensor} dict in a weight file (see `unwrap`), without running any code stored in it.

    The format is read from the first bytes, not the suffix: a safetensors file named
    .pth loads, and a text file (a Git LFS pointer, a login page) is named as such.
    `suffix` stands for the path's own where that is a temporary name (a download's NAME.part).
    Every error is a ModelLoadError whose message starts with `label` and the file's name.
    """
    path = Path(path)
    kind = check_model_file(path, label)
    suffix = suffix or path.suffix
    if suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModelLoadError(
            f"{label} {path.name}: unsupported file type '{suffix}'; use one of {', '.join(MODEL_SUFFIXES)}."
        )
    if kind == "safetensors" or (kind is None and suffix.lower() in (".safetensors", ".sft")):
        return _private(_read_safetensors(path, label))
    content, mapped = _read_pickle(path, label)
    weights = unwrap(content, f"{label} {path.name}")
    return _private(weights) if mapped else weights


def _private(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights copied out of their file's mapping into the process's own memory, the mapping then
    dropped. Weights left mapped would change, or end the process (SIGBUS), when the file is rewritten in
    place while loaded; the copy runs on every intra-op thread, which reading into memory cannot do."""
    return {key: value.clone() for key, value in weights.items()}


def check_model_file(path: Path, label: str = "Model file") -> str | None:
    """Refuse, from its first bytes at most, what is not a regular non-empty file or is plainly text;
    otherwise return what those bytes say it is (see `sniff_format`)."""
    if not path.exists():
        raise ModelLoadError(f"{label} not found: {path}")
    if not path.is_file():  # a folder, or a pipe/device that could block a read forever
        raise ModelLoadError(f"{label} {path.name} is not a regular file (a folder, pipe or device): {path}")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{label} {path.name} is empty (0 bytes): the download or copy failed; get it again.")
    kind = sniff_format(path)
    if kind == "lfs":
        raise ModelLoadError(
            f"{label} {path.name} is a Git LFS pointer (a small text file standing in for the model), not the "
            "model itself: fetch the real file (git lfs pull) or download it again.")
    if kind == "html":
        raise ModelLoadError(
            f"{label} {path.name} is a web page (HTML), not a model: the download got a login or error page "
            "instead; download the file again from its real address.")
    if kind == "text":
        raise ModelLoadError(f"{label} {path.name} is a text file, not a model: it starts with "
                             f"{_text_start(path)!r}; download the model file again.",
                             plain=f"{label} {path.name} is a text file, not a model; download the model file again.")
    return kind


_SNIFF_BYTES = 512


_ZIP_MAGIC = b"PK\x03\x04"  # how a torch zip file (and any zip) starts


def sniff_format(path: Path) -> str | None:
    """'pytorch', 'safetensors', 'lfs', 'html', 'text', or None when the first bytes do not say."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if head.startswith(_ZIP_MAGIC) or head[:1] == b"\x80":  # torch zip, or a (legacy) pickle
        return "pytorch"
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"
    if head.startswith(b"version https://git-lfs"):
        return "lfs"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")):
        return "html"
    if len(head) >= 32 and all(b in b"\t\n\r" or 32 <= b < 127 for b in head):
        return "text"
    return None


def _text_start(path: Path) -> str:
    with open(path, "rb") as fh:
        return " ".join(fh.read(60).decode("ascii", "replace").split())


def _read_safetensors(path: Path, label: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"{label} {path.name} is not a readable .safetensors file ({_first_line(exc)}); "
            "it is probably truncated or corrupt: download it again."
        ) from None


def _read_pickle(path: Path, label: str) -> tuple[Any, bool]:
    """What the pickle holds, and whether its tensors lie in a mapping of the file."""
    try:
        # weights_only refuses every class but tensors and plain containers;
        # argparse.Namespace is allowed because training checkpoints store their args in one.
        with torch.serialization.safe_globals([argparse.Namespace]):
            if _is_zip(path) and not str(path).endswith(".safetensors"):
                # Mapped, not read: the unpickling touches no weight, and read_weights copies each needed one
                # with all threads. (torch hands a name ending in .safetensors to another reader.)
                try:
                    return torch.load(path, map_location="cpu", weights_only=True, mmap=True), True
                except (RuntimeError, OSError):
                    pass  # a file system that cannot map files; a damaged file fails the plain read too
            # Legacy (pre-zip) files cannot be mapped.
            with open(path, "rb") as fh:
                return torch.load(fh, map_location="cpu", weights_only=True), False
    except pickle.UnpicklingError as exc:
        # torch words it "Unsupported global: GLOBAL x.y" or "unsupported GLOBAL x.y whose module x is blocked".
        if "unsupported global" in str(exc).lower():
            raise ModelLoadError(
                f"{label} {path.name} was refused: it contains Python objects that could run code when "
                "loaded, and only plain weight files are accepted. Use the file as its authors released it, or a "
                ".safetensors conversion from a source you trust."
            ) from None
        raise _corrupt(path, exc, label) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, OSError, UnicodeDecodeError,
            AttributeError, IndexError, TypeError, MemoryError, OverflowError) as exc:
        raise _corrupt(path, exc, label) from None


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC


def _corrupt(path: Path, exc: BaseException, label: str) -> ModelLoadError:
    return ModelLoadError(
        f"{label} {path.name} could not be read ({_reason(exc)}); it is probably truncated or "
        "corrupt: download it again."
    )


def _reason(exc: BaseException) -> str:
    # torch's weights-only refusal is a paragraph about its own defaults; the user needs none of it.
    # Bytes that are no pickle at all make its unpickler fail on a lookup: a KeyError of the byte's
    # value ("105") or an IndexError ("pop from empty list"), which mean nothing to the user either.
    if (isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in str(exc).lower()) \
            or isinstance(exc, (KeyError, IndexError)):
        return "not a PyTorch or safetensors weights file"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def nonfinite_weights_error(name: str, keys: list[str]) -> ModelLoadError:
    """The one sentence for weights holding NaN or infinity, whatever the file's format."""
    shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
    return ModelLoadError(f"{name} has NaN or infinite weights (in {shown}); get the file again.")


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
    # Every later step reads the names as text; a pickle can hold any key at all.
    odd = [k for k in obj if not isinstance(k, str)]
    if odd:
        raise ModelLoadError(
            f"{name} is not a usable GPEN model: its tensors are named by {type(odd[0]).__name__} keys such as "
            f"{repr(odd[0])[:40]}, where a PyTorch state_dict has text names; get the file again from its source."
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
