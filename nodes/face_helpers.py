"""Face detectors and parsers for the nodes, built from ComfyUI's model folders and kept
between runs (they take 0.2-2 s to build)."""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import comfy.model_management as model_management

from .common import DETECTOR_FOLDERS, file_identity, folder_list, pipeline_device

# The last few are kept, each with the stamp of its weights file so that a replaced file is read again.
_HELPER_CACHE: "OrderedDict[tuple, tuple[Any, str]]" = OrderedDict()
HELPER_CACHE_SIZE = 4


def _source_stamp(source: Any) -> str:
    path = str(source)
    if not os.path.isfile(path):
        return ""
    return ":".join(map(str, file_identity(os.stat(path))))


def _cached_helper(key: tuple, build, source_of) -> Any:
    hit = _HELPER_CACHE.get(key)
    if hit is not None and _source_stamp(source_of(hit[0])) == hit[1]:
        _HELPER_CACHE.move_to_end(key)
        return hit[0]
    helper = build()
    _HELPER_CACHE[key] = (helper, _source_stamp(source_of(helper)))
    while len(_HELPER_CACHE) > HELPER_CACHE_SIZE:
        _HELPER_CACHE.popitem(last=False)
    return helper


def get_detector(name: str):
    """A face detector of gpen_pipeline.detection; weights from models/facedetection and models/insightface."""
    from gpen_pipeline.detection import load_detector

    dirs = tuple(folder_list(DETECTOR_FOLDERS))
    device = pipeline_device(model_management.get_torch_device())
    return _cached_helper(("detector", name, dirs, device),
                          lambda: load_detector(name, dirs, device=device), lambda d: d.source)


def get_parser(required: bool):
    """The face parser (parsing_parsenet.pth / parsing_bisenet.pth in models/facedetection), or None
    when its weights are missing and `required` is False. A missing parser raises when required."""
    from gpen_pipeline.parsing import ParserNotFound, load_parser

    dirs = tuple(folder_list(DETECTOR_FOLDERS))
    device = model_management.get_torch_device()
    try:
        return _cached_helper(("parser", dirs, str(device)),
                              lambda: load_parser("auto", dirs, device=device), lambda p: p.path)
    except ParserNotFound:
        if required:
            raise
        return None
