"""The one spelling of tests/fixtures/gpen and of the fixture model files in it.

Imported where a path is needed when a module is imported (a parametrize list, a module constant
of the ComfyUI harness or the robustness helpers, a script run in a subprocess) and where a test
hands a model file on by its path. Tests take the folder and the loaded models from the fixtures
of tests/conftest.py: `fixtures_dir`, `s64_model`, `s256_model`.
"""
from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "gpen"
# Real GPEN networks with random weights, each with the official code's outputs beside it (.json, _io.npz).
S64_MODEL_FILE = FIXTURES / "gpen_s64_cm1_n0125.pth"  # 64 px, 4.5 MB
S64_NOCONCAT_MODEL_FILE = FIXTURES / "gpen_s64_cm2_n0125_noconcat.pth"  # 64 px, another layout
S256_MODEL_FILE = FIXTURES / "gpen_s256_cm1_n00625.pth"  # 256 px


def load_fixture_model(path: Path):
    """A model of its own from a fixture file, as users load one (gpen_arch.load_model).

    The session fixtures load theirs with it; a test that changes its model (gives back its
    workspace, say) loads a fresh one with it rather than taking the shared one."""
    import gpen_arch

    return gpen_arch.load_model(path)
