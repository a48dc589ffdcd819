"""The face pipeline around GPEN: find, align, restore, paste back.

No ComfyUI import. Records (`Face`, `AlignedFace`, `RestoredFace`) are frozen
dataclasses, options are validated groups (`EnhanceOptions`), and each stage
(stages.py) is a function of its inputs; `enhance_images` runs them all.

Each name below is imported from its module when first used, so that importing the
package (or its light modules, names.py and options.py) does not load torch or OpenCV.
"""
import importlib

_HOMES = {
    "align": ("DegenerateLandmarks", "ffhq_template", "gpen_template"),
    "detection": ("detect_faces", "load_detector"),
    "enhance": ("EnhanceResult", "enhance_image", "enhance_images"),
    "face": ("AlignedFace", "Face", "RestoredFace"),
    "names": ("BLENDS", "COLORIZE_MODES", "DEFAULT_DETECTOR", "DETECTOR_FOLDERS", "DETECTOR_NAMES", "KEEP_GRAY",
              "MASK_MODES", "RESTORER_FOLDERS"),
    "guarded_paste": ("paste_guarded",),
    "options": ("FEATHER_RANGE", "GROW_RANGE", "MAX_FACES", "MIN_THRESHOLD", "SHARPNESS_LIMIT_RANGE", "TASKS",
                "EnhanceOptions", "PasteOptions", "SelectOptions", "TrackOptions"),
    "paste": ("PasteResult",),
    "selection": ("ORDERS", "select_faces"),
    "stages": ("FoundFaces", "align_faces", "find_clip_faces", "find_faces", "paste_back", "restore_faces"),
    "track_memory": ("TrackMemory",),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
