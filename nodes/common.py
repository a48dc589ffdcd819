"""ComfyUI glue shared by the GPEN nodes: model folders, device and precision, the
GPEN_MODEL handle with its ModelPatcher and cache, the records passed between nodes,
progress and interrupts. (Tensors: tensors.py; detectors and parsers: face_helpers.py.)

ComfyUI is imported only under nodes/, so the pipeline (`gpen_pipeline`, `gpen_arch`)
stays usable without it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch

import comfy.model_management as model_management
import comfy.model_patcher
import comfy.utils
import folder_paths

import gpen_arch
from gpen_pipeline import DETECTOR_FOLDERS, RESTORER_FOLDERS, Face, RestoredFace
from gpen_pipeline.catalog import model_names

from .file_cache import FileCache, file_identity

CATEGORY = "GPEN"
MODEL_TYPE = "GPEN_MODEL"
# Our own names: a generic "FACES" could be wired to another pack's type of the same name.
FACES_TYPE = "GPEN_FACES"
RESTORED_TYPE = "GPEN_RESTORED_FACES"

LOG = logging.getLogger("GPEN")

# Files named after restorers this pack cannot run are not offered in the model list.
FOREIGN_RESTORERS = ("gfpgan", "codeformer", "restoreformer")

DEVICE_OPTIONS = ("auto", "cpu")
PRECISION_OPTIONS = ("auto", "fp32", "bf16", "fp16")


def advanced(spec: tuple) -> tuple:
    """An input spec marked for the editor's advanced inputs: frontends that know the flag (1.49 on)
    show it behind "Show advanced inputs", older ones ignore it. The widget keeps its place, so
    saved workflows keep their values."""
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    return (kind, {**options, "advanced": True})


# --------------------------------------------------------------------------- model folders


def register_model_folder(name: str, default_path: str, extensions: Iterable[str] = gpen_arch.MODEL_SUFFIXES) -> None:
    """Make `name` a model folder that includes `default_path`, keeping every path already there.

    Paths from extra_model_paths.yaml (loaded before custom nodes) or from another
    pack stay; our default goes first. The extension set is merged, because
    `add_model_folder_path` creates new names with an empty set, which lists every file.
    """
    paths, exts = folder_paths.folder_names_and_paths.get(name, ([], set()))
    paths = list(paths)
    if default_path not in paths:
        paths.insert(0, default_path)
    merged = (set(exts) | set(extensions)) if exts else set(extensions)
    folder_paths.folder_names_and_paths[name] = (paths, merged)


def register_all_folders() -> None:
    for name in RESTORER_FOLDERS + DETECTOR_FOLDERS:
        register_model_folder(name, os.path.join(folder_paths.models_dir, name))


def folder_list(names: Sequence[str]) -> list[str]:
    """Every path of the named model folders, in order, without duplicates."""
    out: list[str] = []
    for name in names:
        for path in folder_paths.get_folder_paths(name):
            if path not in out:
                out.append(path)
    return out


def list_model_files() -> list[str]:
    """GPEN candidates of both restorer folders, as the names the loader accepts."""
    names: list[str] = []
    for folder in RESTORER_FOLDERS:
        for name in folder_paths.get_filename_list(folder):
            lowered = os.path.basename(name).lower()
            if name not in names and not any(tag in lowered for tag in FOREIGN_RESTORERS):
                names.append(name)
    return names


def name_leaves_folders(name: str) -> bool:
    """True for names that are paths out of the model folders (absolute, drive letters, '..').

    ComfyUI's lookup folds '../x.pth' into 'x.pth', which would load another file than the
    one named; such names are refused instead. Sub-folders ('sub/x.pth') stay allowed."""
    parts = name.replace("\\", "/").split("/")
    return (not name or "\x00" in name or os.path.isabs(name) or name.startswith(("/", "\\"))
            or ".." in parts or (len(name) > 1 and name[1] == ":"))


def resolve_model_path(name: str) -> str | None:
    if not isinstance(name, str) or name_leaves_folders(name):
        return None
    for folder in RESTORER_FOLDERS:
        path = folder_paths.get_full_path(folder, name)
        if path is not None:
            return path
    return None


def missing_model_message(name: str) -> str:
    where = ", ".join(folder_list(RESTORER_FOLDERS)) or "(no folders registered)"
    # Quoted whole only while it is a name someone could have typed: the message goes back to the client.
    quoted = name if isinstance(name, str) and len(name) <= 200 else f"{str(name)[:200]}..."
    if not isinstance(name, str) or name_leaves_folders(name):
        return (f"GPEN model name '{quoted}' is not a file name inside the model folders ({where}); choose a file "
                "from the list: absolute paths and '..' are not accepted.")
    if name in model_names():  # a released file: say how to fetch that one, not another
        return (f"GPEN model '{quoted}' is in none of the model folders ({where}); download it with the GPEN "
                f"model panel's download box or `python install.py --download --model {name}` in the pack "
                "folder, and refresh the node list.")
    return (f"GPEN model '{quoted}' is in none of the model folders ({where}); put a GPEN file such as "
            "GPEN-BFR-512.pth there (`python install.py --download` in the pack folder fetches that one) "
            "and refresh the node list.")


def require_model_path(name: str) -> str:
    path = resolve_model_path(name)
    if path is None:
        if not isinstance(name, str) or name_leaves_folders(name):
            raise ValueError(missing_model_message(name))
        raise FileNotFoundError(missing_model_message(name))
    return path


def file_stamp(name: str) -> str:
    """Changes when the file behind `name` is replaced; ComfyUI re-runs a loader whose stamp changed."""
    path = resolve_model_path(name)
    identity = None if path is None else file_identity(path)
    return "missing" if identity is None else ":".join(map(str, identity))


# --------------------------------------------------------------------------- device and precision


def choose_devices(option: str) -> tuple[torch.device, torch.device]:
    """(load device, offload device) for the node option 'auto' (ComfyUI's choice) or 'cpu'."""
    if option not in DEVICE_OPTIONS:
        raise ValueError(f"device must be one of {', '.join(DEVICE_OPTIONS)}, got {option!r}")
    if option == "cpu":
        cpu = torch.device("cpu")
        return cpu, cpu
    return model_management.get_torch_device(), model_management.unet_offload_device()


def choose_precision(option: str, device: torch.device) -> str:
    """fp16 only where ComfyUI says the device runs it well; StyleGAN decoders can overflow in it."""
    if option not in PRECISION_OPTIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_OPTIONS)}, got {option!r}")
    if option != "auto":
        return option
    return "fp16" if model_management.should_use_fp16(device) else "fp32"


def pipeline_device(device: torch.device) -> str:
    """The pipeline's device words ('cuda'/'cpu') for a torch device."""
    return "cuda" if torch.device(device).type == "cuda" else "cpu"


# --------------------------------------------------------------------------- the GPEN_MODEL value


@dataclass(frozen=True, eq=False)
class GPENModelHandle:
    """What GPEN_MODEL carries between nodes: the model (its size, task, precision, backend) and,
    for a torch model, the ModelPatcher through which ComfyUI moves its weights (None for ONNX:
    onnxruntime manages its own memory)."""

    model: gpen_arch.GPENModel
    patcher: Any
    load_device: str  # where it runs once ready
    file_bytes: int

    @property
    def name(self) -> str:
        return os.path.basename(self.model.source)

    def describe(self) -> str:
        model, mb = self.model, self.file_bytes / 2 ** 20
        backend = "ONNX (onnxruntime)" if model.backend == "onnx" else f"PyTorch {model.precision}"
        return f"{self.name}: GPEN-{model.size}, task {model.task}, {backend} on {self.load_device}, {mb:.1f} MB"


# The loaded models stay in memory between runs (ComfyUI's own output cache forgets
# them as soon as an input changes); a replaced file is read again.
MODEL_CACHE = FileCache(size=2)


def load_gpen_model(path: str, device_option: str = "auto", precision_option: str = "auto") -> GPENModelHandle:
    """Load (or reuse) the GPEN file at `path`. Raises gpen_arch.ModelLoadError naming the file."""
    load_device, offload_device = choose_devices(device_option)
    precision = choose_precision(precision_option, load_device)
    if not os.path.isfile(path):
        raise gpen_arch.ModelLoadError(f"Model file not found: {path}")
    try:
        return MODEL_CACHE.get((os.path.realpath(path), str(load_device), precision),
                               lambda: _build_handle(path, load_device, offload_device, precision),
                               lambda handle: handle.model.source)
    except gpen_arch.ModelLoadError as exc:
        # The message reaches every client of the server; the start of a file that is not a model does not.
        raise gpen_arch.ModelLoadError(exc.plain) from None


def _build_handle(path: str, load_device: torch.device, offload_device: torch.device,
                  precision: str) -> GPENModelHandle:
    file_bytes = os.path.getsize(path)
    if path.lower().endswith(".onnx"):
        device = pipeline_device(load_device)
        return GPENModelHandle(gpen_arch.load_model(path, device=device), None, device, file_bytes)
    # Loaded onto the offload device; made ready for CPU calls only where it will run on the CPU.
    model = gpen_arch.load_model(path, device=offload_device, dtype=precision,
                                 prepare=load_device.type == "cpu")
    patcher = comfy.model_patcher.ModelPatcher(model.network, load_device=load_device, offload_device=offload_device,
                                               size=model_management.module_size(model.network))
    return GPENModelHandle(model, patcher, str(load_device), file_bytes)


def ready_model(handle: GPENModelHandle, faces: int = 1) -> gpen_arch.GPENModel:
    """The model, with its weights on the load device (ComfyUI frees VRAM for them and for the
    working memory of `faces` faces, from the model's own plan)."""
    if handle.patcher is not None:
        model_management.load_models_gpu([handle.patcher], memory_required=handle.model.working_bytes(faces),
                                         force_full_load=True)
    return handle.model


# --------------------------------------------------------------------------- restored faces


@dataclass(frozen=True, eq=False)
class DetectedFaces(SequenceABC):
    """GPEN_FACES: per image, the selected faces, plus the (height, width) of the images they
    were found in, so that a resized copy of those images can still be used downstream."""

    per_image: tuple[tuple[Face, ...], ...]
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.per_image)

    def __getitem__(self, index: int) -> tuple[Face, ...]:
        return self.per_image[index]


RestoredPerImage = list[list[RestoredFace]]


def faces_in(faces: Sequence[Sequence[Face]], index: int, hw: tuple[int, int]) -> list[Face]:
    """Image `index`'s faces in the pixels of an image of size `hw` (a resized copy is fine)."""
    found = list(faces[index])
    size = getattr(faces, "image_size", None)
    if size is None or tuple(size) == tuple(hw) or not found:
        return found
    sy, sx = hw[0] / size[0], hw[1] / size[1]
    if abs(sx - sy) > 0.01 * max(sx, sy):
        raise ValueError(f"the faces were found on {size[1]}x{size[0]} images but this image is {hw[1]}x{hw[0]}, "
                         "which is not a resized copy (the aspect ratio differs); connect the same image")
    return [face.scaled(sx) for face in found]


# --------------------------------------------------------------------------- input validation


def options_refusal(build: Callable[..., Any], **inputs: Any) -> str | bool:
    """VALIDATE_INPUTS' answer for inputs checked by building the pipeline's options from them:
    True, or the options' own sentence. ComfyUI skips its min/max checks for the inputs a node
    validates itself (they let NaN through), so the options' ranges are the only ones applied.
    A linked input arrives as None here and is checked by the same options when the node runs."""
    try:
        build(**{name: value for name, value in inputs.items() if value is not None})
    except (ValueError, TypeError) as exc:
        return str(exc)
    return True


# --------------------------------------------------------------------------- progress, interrupts, notes


def log_notes(per_image: Sequence[Sequence[str]]) -> None:
    """The pipeline's notes on a batch, each said once with the images it concerns."""
    where: dict[str, list[int]] = {}
    for index, notes in enumerate(per_image):
        for note in notes:
            where.setdefault(note, []).append(index)
    for note, images in where.items():
        shown = ", ".join(map(str, images[:10])) + (f" and {len(images) - 10} more" if len(images) > 10 else "")
        LOG.warning("[GPEN] image%s %s: %s", "s" if len(images) > 1 else "", shown, note)


def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception when the user pressed Cancel."""
    model_management.throw_exception_if_processing_interrupted()


def progress_bar(total: int) -> comfy.utils.ProgressBar:
    return comfy.utils.ProgressBar(max(1, int(total)))
