"""The one spelling of tests/fixtures/gpen and of the fixture model files in it.

Imported where a path is needed when a module is imported (a parametrize list, a module constant
of the ComfyUI harness or the robustness helpers, a script run in a subprocess) and where a test
hands a model file on by its path. Tests take the folder and the loaded models from the fixtures
of tests/conftest.py: `fixtures_dir`, `s64_model`, `s256_model`. `small_gpen` makes a fresh one in
the real layout of any resolution, for tests that need a file of a given size (a download of
GPEN-BFR-1024.pth, say).
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


def small_config(size: int):
    """The narrowest GPENConfig of `size` px that still has a channel at every level (about 1 MB)."""
    from gpen_arch import GPENConfig

    # The outermost level has 16384 / size channels before narrowing.
    return GPENConfig(size, style_dim=64, n_mlp=2, channel_multiplier=1, narrow=max(0.0625, size / 16384))


def small_gpen(seed: int, config) -> tuple[bytes, int]:
    """A freshly initialised GPEN of `config` saved as a .pth, and its parameter count as torch counts it."""
    import io

    import torch

    from gpen_arch import GPEN

    torch.manual_seed(seed)
    model = GPEN(config)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue(), sum(p.numel() for p in model.parameters())
