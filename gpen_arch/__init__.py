"""GPEN (GAN Prior Embedded Network) in pure PyTorch: the network, a safe loader, ONNX and conversion.

No ComfyUI, no OpenCV: importable on its own with the repository root on sys.path.
"""
from .checkpoint import MODEL_SUFFIXES
from .config import RELEASED, GPENConfig, infer_config, task_hint
from .convert import ModelInfo, describe, save_safetensors
from .errors import ModelLoadError
from .export import export_onnx
from .loader import build_model, load_model
from .model import DTYPES, GPENModel
from .network import GPEN
from .onnx_model import OnnxGPEN

__all__ = [
    "DTYPES", "GPEN", "GPENConfig", "GPENModel", "MODEL_SUFFIXES", "ModelInfo", "ModelLoadError", "OnnxGPEN", "RELEASED",
    "build_model", "describe", "export_onnx", "infer_config", "load_model", "save_safetensors", "task_hint",
]
