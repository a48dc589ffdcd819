"""facexlib's RetinaFace networks (ResNet-50 and MobileNet-0.25) with the user's
own weights. facexlib builds the network; this module loads the state_dict
itself (facexlib's `init_detection_model` would download missing files), runs
the forward pass and decodes with the shared numpy decoder.

facexlib (and torch, torchvision) are imported only here, when such a detector
is loaded, so the pack works without them.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from . import retinaface
from .common import (BUNDLED_NAME, Detector, DetectorDependencyMissing, DetectorWeightsInvalid,
                     RawDetections, find_weights, missing_weights_error)

RELEASE_URL = "https://github.com/xinntao/facexlib/releases/download/v0.1.0/"
# detector name -> (facexlib network name, weights file, size for the message)
NETWORKS = {
    "retinaface_resnet50": ("resnet50", "detection_Resnet50_Final.pth", "about 104 MB"),
    "retinaface_mobile0.25": ("mobile0.25", "detection_mobilenet0.25_Final.pth", "about 1.7 MB"),
}


def weights_file(name: str, model_dirs: Sequence[str | os.PathLike]) -> Path:
    _, file_name, size = NETWORKS[name]
    path, searched = find_weights([file_name], model_dirs)
    if path is None:
        raise missing_weights_error(
            name, file_name, searched,
            f"Download it ({size}) from {RELEASE_URL}{file_name} into one of these folders "
            f"(ComfyUI: models/facedetection).")
    return path


def _import_facexlib():
    try:
        import torch
        from facexlib.detection.retinaface import RetinaFace
    except Exception as exc:  # a broken torchvision raises RuntimeError/AttributeError too
        raise DetectorDependencyMissing(
            f"The facexlib face detectors need the package facexlib, whose import failed with "
            f"{type(exc).__name__}: {exc}. Install or repair it with `pip install facexlib` (it needs "
            f"torch and torchvision), or choose the detector '{BUNDLED_NAME}', which needs neither."
        ) from exc
    return torch, RetinaFace


def load(name: str, model_dirs: Sequence[str | os.PathLike], device: str | None = None) -> Detector:
    path = weights_file(name, model_dirs)
    torch, RetinaFace = _import_facexlib()
    from gpen_arch import ModelLoadError
    from gpen_arch.checkpoint import read_weights

    network = NETWORKS[name][0]
    use_cuda = device != "cpu" and torch.cuda.is_available()
    torch_device = torch.device("cuda" if use_cuda else "cpu")
    try:
        state = read_weights(path, label="Face detector file")
    except ModelLoadError as exc:
        raise DetectorWeightsInvalid(str(exc)) from None
    with warnings.catch_warnings():  # torchvision's `pretrained=False` deprecation notice
        warnings.simplefilter("ignore", UserWarning)
        net = RetinaFace(network_name=network, half=False, phase="test", device=torch_device)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DetectorWeightsInvalid(
            f"{path} does not match facexlib's {name} network (is it the right file?): {exc}") from exc
    net.eval().requires_grad_(False)
    return Detector(name=name, model=net, source=str(path), device=torch_device.type, runner=run)


def run(net, rgb: np.ndarray, threshold: float) -> RawDetections:
    import torch

    x = torch.from_numpy(retinaface.preprocess(rgb)).to(net.device)
    with torch.inference_mode():
        loc, conf, landmarks = net(x)
    loc, conf, landmarks = (t.float().cpu().numpy() for t in (loc, conf, landmarks))
    return retinaface.decode(loc, conf, landmarks, rgb.shape[0], rgb.shape[1], threshold)
