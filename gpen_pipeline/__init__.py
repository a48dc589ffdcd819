"""The face pipeline around GPEN: detect, select, align, restore, paste back.

Pure numpy/OpenCV/torch; no ComfyUI import. Records (`Face`, `AlignedFace`) are
frozen dataclasses and every step is a function of its inputs.
"""
from .align import DegenerateLandmarks, align_face, ffhq_template, gpen_template
from .detection import DEFAULT_DETECTOR, DETECTOR_NAMES, detect_faces, load_detector
from .enhance import EnhanceOptions, EnhanceResult, enhance_image, enhance_images, find_faces
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
