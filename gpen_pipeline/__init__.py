"""The face pipeline around GPEN: find, align, restore, paste back.

No ComfyUI import. Records (`Face`, `AlignedFace`, `RestoredFace`) are frozen
dataclasses, options are validated groups (`EnhanceOptions`), and each stage
(stages.py) is a function of its inputs; `enhance_images` runs them all.
"""
from .align import DegenerateLandmarks, ffhq_template, gpen_template
from .detection import DEFAULT_DETECTOR, DETECTOR_NAMES, detect_faces, load_detector
from .enhance import EnhanceResult, enhance_image, enhance_images
from .face import AlignedFace, Face, RestoredFace
from .options import COLORIZE_MODES, KEEP_GRAY, MASK_MODES, TASKS, EnhanceOptions, PasteOptions, SelectOptions
from .paste import PasteResult
from .selection import ORDERS, select_faces
from .stages import FoundFaces, align_faces, find_clip_faces, find_faces, paste_back, restore_faces
from .tracking import TrackOptions

__all__ = [
    "COLORIZE_MODES", "DEFAULT_DETECTOR", "DETECTOR_NAMES", "KEEP_GRAY", "MASK_MODES", "ORDERS", "TASKS",
    "AlignedFace", "DegenerateLandmarks", "EnhanceOptions", "EnhanceResult", "Face", "FoundFaces", "PasteOptions",
    "PasteResult", "RestoredFace", "SelectOptions", "TrackOptions",
    "align_faces", "detect_faces", "enhance_image", "enhance_images", "ffhq_template", "find_clip_faces", "find_faces",
    "gpen_template", "load_detector", "paste_back", "restore_faces", "select_faces",
]
