"""Imports flow one way: nodes/ and the command line -> gpen_pipeline's stages -> gpen_arch.

The nodes only convert ComfyUI types to records and options and call a stage: any pixel work
they did themselves would be a second implementation beside the pipeline's."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What the nodes may take from the pipeline: its public package, and modules that hold no pixel work.
NODE_PIPELINE_MODULES = {"gpen_pipeline", "gpen_pipeline.selection", "gpen_pipeline.values", "gpen_pipeline.preview",
                         "gpen_pipeline.detection", "gpen_pipeline.parsing", "gpen_pipeline.catalog",
                         "gpen_pipeline.download", "gpen_pipeline.identity"}
# Image-processing libraries: only the pipeline uses them.
PIXEL_LIBRARIES = {"cv2", "scipy", "skimage", "kornia"}


def imports(path: Path) -> list[tuple[str, int]]:
    """(module, line) of every import in a file, relative ones resolved within its package."""
    package = ".".join(path.relative_to(ROOT).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.append((module, node.lineno))
    return found


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", sources("nodes"), ids=lambda p: p.name)
def test_nodes_do_no_pixel_work_of_their_own(path):
    for module, line in imports(path):
        top = module.split(".")[0]
        assert top not in PIXEL_LIBRARIES, \
            f"{path.name}:{line} imports {module}: image processing belongs in gpen_pipeline's stages"
        if top == "gpen_pipeline":
            assert module in NODE_PIPELINE_MODULES or module.startswith("gpen_pipeline.detection."), \
                f"{path.name}:{line} imports {module}: nodes call gpen_pipeline's public stages only"


COMMAND_LINE = {"gpen_cli", "gpen_cli_doctor", "gpen_cli_progress", "install"}


@pytest.mark.parametrize("folder, forbidden", [("gpen_arch", {"gpen_pipeline", "nodes", "comfy", "cv2"} | COMMAND_LINE),
                                               ("gpen_pipeline", {"nodes", "comfy", "folder_paths"} | COMMAND_LINE)])
def test_lower_layers_never_import_higher_ones(folder, forbidden):
    for path in sources(folder):
        for module, line in imports(path):
            assert module.split(".")[0] not in forbidden, f"{path.relative_to(ROOT)}:{line} imports {module}"


def test_the_pipeline_names_and_options_load_without_numpy_torch_or_opencv():
    """What a front end offers and checks before any work (the command line's --help and argument
    errors) comes from gpen_pipeline.names and .options, which stay light; the rest loads when used."""
    probe = ("import sys; from gpen_pipeline import DETECTOR_NAMES, MASK_MODES, ORDERS, PasteOptions, SelectOptions; "
             "PasteOptions(); SelectOptions(indices='0,2'); "
             "print(sorted(m for m in ('numpy', 'torch', 'cv2', 'onnxruntime') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
