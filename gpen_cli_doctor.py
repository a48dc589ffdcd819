"""`gpen doctor`: prints what a bug report needs (gpen_pipeline.doctor gathers it) as sections of
aligned rows, to paste as they are."""
from __future__ import annotations

from pathlib import Path


def cmd_doctor(args) -> int:
    from gpen_pipeline import DETECTOR_FOLDERS, doctor

    roots = [Path(d) for d in args.models_dir] or _default_model_roots()
    folders = doctor.model_folders(roots)
    _print_section("gpen", _pack_rows())
    _print_section("versions", doctor.versions())
    _print_section("devices and precisions", doctor.devices())
    print("model folders searched (what each file is, read from its tensors)")
    for folder in folders:
        print(f"  {folder}")
        for name, what in doctor.folder_files(folder):
            print(f"    {name}: {what}" if name else f"    {what}")
    _print_section("face detectors and parser", doctor.detectors([f for f in folders if f.name in DETECTOR_FOLDERS]))
    return 0


def _print_section(title: str, rows) -> None:
    print(title)
    width = max((len(label) for label, _ in rows), default=0)
    for label, text in rows:
        print(f"  {label:<{width}}  {text}")


def _default_model_roots() -> list[Path]:
    """ComfyUI's models folder as install.py finds it (when the pack is in ComfyUI or $COMFYUI_PATH is
    set), and ./models, where `gpen download` puts files."""
    roots = [Path.cwd() / "models"]
    try:
        from install import find_models_dir
    except ImportError:  # installed with pip: no install.py beside this file
        return roots
    comfy = find_models_dir(None).parent
    return roots if comfy.resolve() == roots[0].resolve() else [comfy] + roots


def _pack_rows() -> list[tuple[str, str]]:
    import importlib.metadata
    import re
    import subprocess

    root = Path(__file__).resolve().parent  # the pack: this file sits beside gpen_cli.py
    rows = [("location", str(root))]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():  # a clone, as ComfyUI and the README use it
        found = re.search(r'^version = "([^"]+)"', pyproject.read_text(encoding="utf-8"), re.M)
        rows.insert(0, ("version", found.group(1) if found else "unknown"))
    else:  # installed with pip
        try:
            rows.insert(0, ("version", importlib.metadata.version("gpen-face-restore")))
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # no git: the version has to do
        commit = ""
    if commit:
        rows.append(("git commit", commit))
    return rows
