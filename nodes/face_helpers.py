"""Face detectors and parsers for the nodes, built from ComfyUI's model folders and kept
between runs (they take 0.2-2 s to build)."""
from __future__ import annotations

import comfy.model_management as model_management

from .common import DETECTOR_FOLDERS, folder_list, pipeline_device
from .file_cache import FileCache

HELPERS = FileCache(size=4)


def get_detector(name: str):
    """A face detector of gpen_pipeline.detection; weights from models/facedetection and models/insightface."""
    from gpen_pipeline.detection import load_detector

    dirs = tuple(folder_list(DETECTOR_FOLDERS))
    device = pipeline_device(model_management.get_torch_device())
    return HELPERS.get(("detector", name, dirs, device),
                       lambda: load_detector(name, dirs, device=device), lambda d: d.source)


def get_parser(required: bool):
    """The face parser (parsing_parsenet.pth / parsing_bisenet.pth in models/facedetection), or None
    when its weights are missing and `required` is False. A missing parser raises when required."""
    from gpen_pipeline.parsing import ParserNotFound, load_parser

    dirs = tuple(folder_list(DETECTOR_FOLDERS))
    device = model_management.get_torch_device()
    try:
        return HELPERS.get(("parser", dirs, str(device)),
                           lambda: load_parser("auto", dirs, device=device), lambda p: p.path)
    except ParserNotFound:
        if required:
            raise
        return None


def get_recognizer(name: str):
    """An ArcFace recognition model (gpen_pipeline.recognition) by file name, from models/insightface
    (its models/buffalo_l and antelopev2 sub-folders) or models/facedetection."""
    from gpen_pipeline.identity import find_recognizer

    dirs = tuple(folder_list(DETECTOR_FOLDERS))
    device = pipeline_device(model_management.get_torch_device())
    return HELPERS.get(("recognizer", name, dirs, device),
                       lambda: find_recognizer(name, dirs, device=device), lambda r: r.source)
