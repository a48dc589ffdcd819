"""The built-in list of released GPEN model files, with where to get them.

Sizes and hashes are recorded only where a public source states them (cited per
entry); ``None`` means unknown, and the downloader then records what it got in a
``NAME.sha256`` file beside the model instead of checking it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# Official hosting named by the GPEN README ("Download ... our pre-trained model",
# yangxy/GPEN README.md and weights/README.md).
_GPEN_OSS = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models"
# GPEN README news of 2023-02-15: 1024/2048 BFR are published on ModelScope as
# pytorch_model.pt (1024) and pytorch_model-2048.pt (2048) of
# damo/cv_gpen_image-portrait-enhancement-hires; the namespace is now "iic"
# (resolve URLs as used by third-party model catalogues).
_MODELSCOPE_HIRES = (
    "https://www.modelscope.cn/models/iic/cv_gpen_image-portrait-enhancement-hires"
    "/resolve/master"
)
# ONNX exports that ReActor users already have (HF dataset Gourieff/ReActor).
_REACTOR_HF = (
    "https://huggingface.co/datasets/Gourieff/ReActor/resolve/main/models/facerestore_models"
)

GPEN_LICENCE = (
    "GPEN weights: (c) Alibaba 2021, for academic and non-commercial use only "
    "(GPEN README, 'License')."
)
ONNX_LICENCE = (
    "ONNX export of the GPEN weights; the GPEN terms still apply: academic and "
    "non-commercial use only."
)


@dataclass(frozen=True)
class ModelFile:
    """One downloadable model file; ``name`` is also its file name on disk."""

    name: str
    url: str
    size_bytes: Optional[int]
    sha256: Optional[str]
    kind: str  # "bfr" (blind face restoration), "colorization" or "inpainting"
    licence_note: str


MODEL_FILES: tuple[ModelFile, ...] = (
    ModelFile(
        name="GPEN-BFR-256.pth",
        url=f"{_GPEN_OSS}/GPEN-BFR-256.pth",
        size_bytes=None,
        sha256=None,
        kind="bfr",
        licence_note=GPEN_LICENCE,
    ),
    # Size and hash: git-lfs pointer of akhaliq/GPEN-BFR-512 (commit e6e4f31) on
    # Hugging Face; the same oid appears on vinthony/videoretalking and
    # camenduru/video-retalking, and a third-party CPU benchmark report observed
    # the same 284085738 bytes / hash on the official file.
    ModelFile(
        name="GPEN-BFR-512.pth",
        url=f"{_GPEN_OSS}/GPEN-BFR-512.pth",
        size_bytes=284_085_738,
        sha256="f1002c41add95b0decad69604d80455576f7187dd99ca16bd611bcfd44c10b51",
        kind="bfr",
        licence_note=GPEN_LICENCE,
    ),
    ModelFile(
        name="GPEN-BFR-1024.pth",
        url=f"{_MODELSCOPE_HIRES}/pytorch_model.pt",
        size_bytes=None,
        sha256=None,
        kind="bfr",
        licence_note=GPEN_LICENCE,
    ),
    ModelFile(
        name="GPEN-BFR-2048.pth",
        url=f"{_MODELSCOPE_HIRES}/pytorch_model-2048.pt",
        size_bytes=None,
        sha256=None,
        kind="bfr",
        licence_note=GPEN_LICENCE,
    ),
    ModelFile(
        name="GPEN-Colorization-1024.pth",
        url=f"{_GPEN_OSS}/GPEN-Colorization-1024.pth",
        size_bytes=None,
        sha256=None,
        kind="colorization",
        licence_note=GPEN_LICENCE,
    ),
    ModelFile(
        name="GPEN-Inpainting-1024.pth",
        url=f"{_GPEN_OSS}/GPEN-Inpainting-1024.pth",
        size_bytes=None,
        sha256=None,
        kind="inpainting",
        licence_note=GPEN_LICENCE,
    ),
    # ONNX sizes and hashes: git-lfs pointers of the Gourieff/ReActor dataset
    # commits 2631477 (512), 834d2a8 (1024) and 8fe1882 (2048) on Hugging Face.
    ModelFile(
        name="GPEN-BFR-512.onnx",
        url=f"{_REACTOR_HF}/GPEN-BFR-512.onnx",
        size_bytes=284_244_491,
        sha256="bf80acb8e91ba8852e3f012505be2c3b6cd6b3eed5ec605e3db87863c4e74d4e",
        kind="bfr",
        licence_note=ONNX_LICENCE,
    ),
    ModelFile(
        name="GPEN-BFR-1024.onnx",
        url=f"{_REACTOR_HF}/GPEN-BFR-1024.onnx",
        size_bytes=285_101_993,
        sha256="cec8892093d7b99828acde97bf231fb0964d3fb11b43f3b0951e36ef1e192a3e",
        kind="bfr",
        licence_note=ONNX_LICENCE,
    ),
    ModelFile(
        name="GPEN-BFR-2048.onnx",
        url=f"{_REACTOR_HF}/GPEN-BFR-2048.onnx",
        size_bytes=285_469_146,
        sha256="d0229ff43f979c360bd19daa9cd0ce893722d59f41a41822b9223ebbe4f89b3e",
        kind="bfr",
        licence_note=ONNX_LICENCE,
    ),
)

DEFAULT_MODEL = "GPEN-BFR-512.pth"


def model_names() -> tuple[str, ...]:
    """Names of every catalogued model file, in catalogue order."""
    return tuple(m.name for m in MODEL_FILES)


def find_model_file(name: str) -> ModelFile:
    """The catalogue entry called ``name``; ValueError listing the valid names otherwise."""
    for model in MODEL_FILES:
        if model.name == name:
            return model
    raise ValueError(
        f"Unknown GPEN model file {name!r}; choose one of: {', '.join(model_names())}."
    )
