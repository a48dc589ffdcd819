"""Install step for the GPEN node pack (ComfyUI-Manager runs it from the pack root).

    python install.py [--download] [--model NAME] [--models-dir DIR] [--offline]
                      [--requirements FILE] [--find-links DIR] [--no-index] [--overwrite]

1. Installs what ``requirements.txt`` asks for and is not already satisfied, into
   the Python running this script. torch is never installed or changed, numpy
   and an existing onnxruntime/OpenCV build are never swapped; failing optional
   backends (facexlib, insightface) only warn.
2. Finds ComfyUI's model folder and, only when asked (``--download`` or
   GPEN_AUTO_DOWNLOAD=1), downloads GPEN-BFR-512.pth there; otherwise it prints
   what to download, from where, and where to put it.

Only the standard library (plus packaging/tqdm when present) is imported: it runs before torch
exists (torch only checks a model file that has no published hash). Exit status: 0 on success or when no download was asked for; 1 when a required package could
not be installed or an asked-for download did not complete; 2 for a model not in the catalogue.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

PACK_DIR = Path(__file__).resolve().parent
TAG = "[GPEN]"
# Keep in step with the folder the nodes register with ComfyUI's folder_paths.
MODEL_SUBDIR = "facerestore"
# Set by ComfyUI-Manager (and comfy-cli) for the scripts it runs: the ComfyUI root.
COMFYUI_PATH_ENV = "COMFYUI_PATH"
# Opt-in for installs that cannot pass --download (e.g. through the Manager).
AUTO_DOWNLOAD_ENV = "GPEN_AUTO_DOWNLOAD"

# ComfyUI owns these; upgrading them from a node pack breaks users' setups.
NEVER_INSTALL = {"torch", "torchvision", "torchaudio"}
KEEP_IF_PRESENT = {"numpy"}
OPTIONAL = {"facexlib", "insightface"}
# Any one of these provides the same import (cv2 / onnxruntime). Installing plain
# onnxruntime next to onnxruntime-gpu disables the GPU build, so a requirement on
# onnxruntime accepts the accelerated builds (not the other way round).
_OPENCV = (
    "opencv-python", "opencv-python-headless",
    "opencv-contrib-python", "opencv-contrib-python-headless",
)
EQUIVALENTS = {
    **{name: _OPENCV for name in _OPENCV},
    "onnxruntime": (
        "onnxruntime", "onnxruntime-gpu", "onnxruntime-directml",
        "onnxruntime-silicon", "onnxruntime-openvino", "onnxruntime-rocm",
    ),
}


def say(message: str) -> None:
    print(f"{TAG} {message}", flush=True)


# --------------------------------------------------------------------------- requirements


def _packaging():
    """packaging's requirements/version modules, or pip's vendored copy."""
    for prefix in ("packaging", "pip._vendor.packaging"):
        try:
            requirements = importlib.import_module(prefix + ".requirements")
            version = importlib.import_module(prefix + ".version")
            return requirements, version
        except ImportError:
            continue
    raise RuntimeError(
        "Neither 'packaging' nor pip is importable in this Python; "
        f"run '{sys.executable} -m ensurepip' and try again."
    )


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def requirement_lines(path: Path) -> List[str]:
    """Requirement strings from a requirements file (comments and options dropped)."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            say(f"ignoring pip option line in {path.name}: {line}")
            continue
        lines.append(line)
    return lines


def installed_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _provider(name: str) -> Optional[tuple]:
    """(distribution name, version) of whatever installed package provides ``name``."""
    for candidate in EQUIVALENTS.get(canonical(name), (name,)):
        version = installed_version(candidate)
        if version is not None:
            return candidate, version
    return None


def is_satisfied(req, version_mod) -> bool:
    """True when ``req`` (a packaging Requirement) is met by what is installed."""
    found = _provider(req.name)
    if found is None:
        return False
    dist, version = found
    if req.specifier and not req.specifier.contains(
        version_mod.Version(version), prereleases=True
    ):
        return False
    return all(_extra_satisfied(dist, extra, version_mod) for extra in req.extras)


def _extra_satisfied(dist: str, extra: str, version_mod) -> bool:
    """True when every dependency that only the extra ``extra`` of ``dist`` adds is met."""
    requirements_mod, _ = _packaging()
    for text in importlib.metadata.requires(dist) or ():
        sub = requirements_mod.Requirement(text)
        if sub.marker is None:
            continue
        added_by_extra = sub.marker.evaluate({"extra": extra}) and not sub.marker.evaluate({"extra": ""})
        if added_by_extra and not is_satisfied(sub, version_mod):
            return False
    return True


def plan_requirements(lines: Sequence[str]) -> tuple:
    """Split requirement strings into (to_install, optional_to_install, notes)."""
    requirements_mod, version_mod = _packaging()
    required, optional, notes = [], [], []
    for line in lines:
        req = requirements_mod.Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonical(req.name)
        found = _provider(req.name)
        if name in NEVER_INSTALL:
            if found is None:
                notes.append(
                    f"{req.name} is not installed; install the build that matches your GPU "
                    "from https://pytorch.org (ComfyUI needs it anyway)."
                )
            elif not is_satisfied(req, version_mod):
                notes.append(f"{req.name} {found[1]} does not match '{line}'; left as it is.")
            continue
        if name in KEEP_IF_PRESENT and found is not None:
            if not is_satisfied(req, version_mod):
                notes.append(f"{req.name} {found[1]} does not match '{line}'; left as it is.")
            continue
        if is_satisfied(req, version_mod):
            continue
        (optional if name in OPTIONAL else required).append(line)
    return required, optional, notes


def _constraints_file(folder: Path) -> Path:
    """Pin the protected packages that are present so pip cannot swap them as a dependency."""
    pins = []
    for name in sorted(NEVER_INSTALL | KEEP_IF_PRESENT):
        version = installed_version(name)
        if version is not None:
            pins.append(f"{name}=={version}")
    path = folder / "gpen-constraints.txt"
    path.write_text("\n".join(pins) + "\n", encoding="utf-8")
    return path


def pip_install(specs: Sequence[str], pip_args: Sequence[str], constraints: Path) -> int:
    command = [
        sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
        "-c", str(constraints), *pip_args, *specs,
    ]
    say("running: " + " ".join(command))
    return subprocess.call(command)


def install_requirements(path: Path, pip_args: Sequence[str]) -> bool:
    """Install what is missing; False when a required package could not be installed."""
    if not path.is_file():
        say(f"no requirements file at {path}; skipping package installation.")
        return True
    lines = requirement_lines(path)
    if not lines:
        say(f"{path.name} lists no packages; nothing to install.")
        return True
    required, optional, notes = plan_requirements(lines)
    for note in notes:
        say("note: " + note)
    if not required and not optional:
        say(f"all requirements in {path.name} are already satisfied; nothing to install.")
        return True
    ok = True
    with tempfile.TemporaryDirectory(prefix="gpen-install-") as tmp:
        constraints = _constraints_file(Path(tmp))
        if required:
            say("installing: " + ", ".join(required))
            if pip_install(required, pip_args, constraints) != 0:
                say(
                    "ERROR: could not install " + ", ".join(required) + ". Run "
                    f"'{sys.executable} -m pip install " + " ".join(f'"{r}"' for r in required)
                    + "' and read pip's message above."
                )
                ok = False
        for spec in optional:
            say(f"installing optional backend: {spec}")
            if pip_install([spec], pip_args, constraints) != 0:
                say(
                    f"WARNING: optional backend '{spec}' did not install; the pack works "
                    "without it, only its detector choice is unavailable. To fix: "
                    f"'{sys.executable} -m pip install \"{spec}\"' (on Windows insightface "
                    "needs the Microsoft C++ Build Tools or a prebuilt wheel)."
                )
    return ok


# --------------------------------------------------------------------------- models


def find_models_dir(explicit: Optional[str], script_dir: Path = PACK_DIR) -> Path:
    """--models-dir, else $COMFYUI_PATH/models/facerestore, else the ComfyUI that
    holds this pack (custom_nodes/<pack>/), else ./models/facerestore."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    comfy_root = os.environ.get(COMFYUI_PATH_ENV, "").strip()
    if comfy_root and Path(comfy_root).is_dir():
        return Path(comfy_root).resolve() / "models" / MODEL_SUBDIR
    for folder in script_dir.parents:
        if folder.name == "custom_nodes":
            return folder.parent / "models" / MODEL_SUBDIR
    return Path.cwd() / "models" / MODEL_SUBDIR


def _load_download_module():
    """gpen_pipeline.download, importing nothing beyond the standard library.

    The pack root goes on sys.path; the package itself is registered without
    running its ``__init__`` (which may import torch or numpy for the nodes), since
    download.py, transfer.py and catalog.py only need the standard library.
    """
    if str(PACK_DIR) not in sys.path:
        sys.path.insert(0, str(PACK_DIR))
    if "gpen_pipeline" not in sys.modules:
        package = types.ModuleType("gpen_pipeline")
        package.__path__ = [str(PACK_DIR / "gpen_pipeline")]
        sys.modules["gpen_pipeline"] = package
    return importlib.import_module("gpen_pipeline.download")


def _progress_bar(name: str):
    """A progress callback and a closer: tqdm when available, else plain lines."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        bars = []  # made on the first update, once the size is known

        def update(done: int, total: Optional[int]) -> None:
            if not bars:
                bars.append(tqdm(desc=name, total=total, unit="B", unit_scale=True,
                                 unit_divisor=1024, file=sys.stdout))
            bars[0].update(done - bars[0].n)

        return update, lambda: bars and bars[0].close()

    state = {"shown": -1}

    def update_plain(done: int, total: Optional[int]) -> None:
        step = done * 10 // total if total else done >> 26
        if step != state["shown"]:
            state["shown"] = step
            print(f"{TAG} {name}: {done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB" if total else ""), flush=True)

    return update_plain, lambda: None


def print_download_hint(models: Iterable, models_dir: Path, url_base: Optional[str], resolve_url,
                        failed: bool = False) -> None:
    for model in models:
        size = f" ({model.size_bytes / 1e6:.0f} MB)" if model.size_bytes else ""
        say(f"model {model.name}{size} is not downloaded.")
        say(f"  get it from: {resolve_url(model, url_base)}")
        say(f"  and put it in: {models_dir}")
        say(f"  licence: {model.licence_note}")
    command = f"{sys.executable} {PACK_DIR / 'install.py'} --download"
    # After a failed download the same command helps only once the server answers.
    hosts = " and ".join(dict.fromkeys(resolve_url(m, url_base).split("/")[2] for m in models))
    say(f"or run '{command}' again once {hosts} can be reached from this machine." if failed else f"or run: {command}")


def handle_models(args: argparse.Namespace) -> int:
    download = _load_download_module()
    from gpen_pipeline.catalog import find_model_file  # loaded with download above

    models_dir = find_models_dir(args.models_dir)
    say(f"model folder: {models_dir}")
    try:
        wanted = [find_model_file(name) for name in args.model]
        for model in wanted:
            download.check_plain_name(model.name)
    except ValueError as exc:
        say(f"ERROR: {exc}")
        return 2
    missing = [m for m in wanted if not (models_dir / m.name).is_file()]
    for model in wanted:
        if model not in missing:
            say(f"{model.name} is already in {models_dir}.")

    wants_download = args.download or os.environ.get(AUTO_DOWNLOAD_ENV, "") == "1"
    if args.offline or not wants_download:
        if missing:
            print_download_hint(missing, models_dir, args.url_base, download.resolve_url)
        return 0

    status = 0
    for model in wanted:
        # A model already there is checked as a download would be (and kept): being there proves nothing.
        update, close = _progress_bar(model.name)
        try:
            result = download.download_file(
                model, models_dir, url_base=args.url_base, progress=update,
                timeout=args.timeout, overwrite=args.overwrite,
            )
        except download.DownloadError as exc:
            close()
            say(f"ERROR: {exc}")
            if exc.network:
                print_download_hint([model], models_dir, args.url_base, download.resolve_url, failed=True)
            status = 1
            continue
        except KeyboardInterrupt:
            close()
            say(f"interrupted; nothing was left in {models_dir} for {model.name}.")
            return 130
        close()
        if result.downloaded:
            say(f"saved {result.path} ({result.bytes} bytes, sha256 {result.sha256}).")
        else:
            say(f"checked {result.path}: it is {model.name} (sha256 {result.sha256}).")
    return status


# --------------------------------------------------------------------------- main


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Install the GPEN node pack's packages and models.")
    parser.add_argument("--download", action="store_true", help="download the model file(s) now")
    parser.add_argument("--offline", action="store_true", help="never download; only print what to get")
    parser.add_argument("--model", action="append", default=None,
                        help="catalogued model file to fetch (repeatable; default GPEN-BFR-512.pth)")
    parser.add_argument("--models-dir", help="folder for the model files (default: ComfyUI's models/facerestore)")
    parser.add_argument("--overwrite", action="store_true", help="replace a model that is already there")
    parser.add_argument("--url-base", default=None, help="mirror base URL (default: $GPEN_MODEL_URL_BASE or the official host)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds without data before a download gives up")
    parser.add_argument("--requirements", default=str(PACK_DIR / "requirements.txt"),
                        help="requirements file (default: the pack's requirements.txt)")
    parser.add_argument("--find-links", action="append", default=[], help="passed to pip")
    parser.add_argument("--no-index", action="store_true", help="passed to pip")
    args = parser.parse_args(argv)
    if not args.model:
        args.model = ["GPEN-BFR-512.pth"]
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    pip_args: List[str] = []
    for link in args.find_links:
        pip_args += ["--find-links", link]
    if args.no_index:
        pip_args.append("--no-index")
    try:
        packages_ok = install_requirements(Path(args.requirements), pip_args)
    except Exception as exc:  # a malformed requirements line must not hide the model hint
        say(f"ERROR: could not check requirements: {exc}")
        packages_ok = False
    models_status = handle_models(args)
    if not packages_ok:
        return 1
    return models_status


if __name__ == "__main__":
    sys.exit(main())
