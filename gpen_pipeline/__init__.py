"""The face pipeline around GPEN: detect, select, align, restore, paste back.

Pure numpy/OpenCV/torch; no ComfyUI import. Records (`Face`, `AlignedFace`) are
frozen dataclasses and every step is a function of its inputs.
"""
from .align import DegenerateLandmarks, align_face, ffhq_template, gpen_template
from .detection import DEFAULT_DETECTOR, DETECTOR_NAMES, detect_faces, load_detector
from .face import AlignedFace, Face
from .paste import MASK_MODES, PasteResult, paste_faces
from .restore import TASKS, restore_crops
from .selection import ORDERS, select_faces

__all__ = [
    "DEFAULT_DETECTOR", "DETECTOR_NAMES", "MASK_MODES", "ORDERS", "TASKS",
    "AlignedFace", "DegenerateLandmarks", "EnhanceOptions", "EnhanceResult", "Face", "PasteResult",
    "align_face", "detect_faces", "enhance_image", "enhance_images", "ffhq_template", "find_faces",
    "gpen_template", "load_detector", "paste_faces", "restore_crops", "select_faces",
]

# The whole-image pipeline is imported when first asked for, so the steps it is built from import on
# their own (and a half-built pipeline cannot keep them from importing).
_ENHANCE_NAMES = ("EnhanceOptions", "EnhanceResult", "enhance_image", "enhance_images", "find_faces")


def __getattr__(name: str):
    if name in _ENHANCE_NAMES:
        from . import enhance

        return getattr(enhance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
