"""The identity inputs and outputs the nodes share (gpen_pipeline.identity): which recognition model,
the guard's floor, reference faces, and the score as a FLOAT, a JSON STRING and UI text."""
from __future__ import annotations

import json
import math
from typing import Sequence

import torch

from gpen_pipeline.identity import (DEFAULT_REFERENCE_THRESHOLD, FILE_NAMES, IdentityCheck, PastedFace,
                                    reference_embeddings)
from gpen_pipeline.values import number_in

from . import face_helpers

OFF = "none"
RECOGNIZER_CHOICES = (OFF,) + FILE_NAMES
LICENCE = "insightface's packs are for non-commercial research only"


def numbers_refusal(**values) -> str | bool:
    """For VALIDATE_INPUTS: the sentence refusing an identity number outside [0, 1] (NaN and infinity
    included, which ComfyUI's own min/max let through), or True."""
    for name, value in values.items():
        if value is not None:
            try:
                number_in(name, value, 0.0, 1.0)
            except ValueError as err:
                return str(err)
    return True


def recognizer_input(default: str = OFF) -> tuple:
    return (list(RECOGNIZER_CHOICES), {
        "default": default,
        "tooltip": "ArcFace recognition model that measures how much of each person a restoration kept: "
                   "w600k_r50.onnx (buffalo_l) or glintr100.onnx (antelopev2) in models/insightface/models/"
                   f"<pack>/ ({LICENCE}). none: no measuring."})


MIN_IDENTITY_INPUT = ("FLOAT", {
    "default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
    "tooltip": "Identity guard (needs a recognizer): a face whose identity score falls below this is pasted at "
               "a lower strength, searched until it reaches it or 0. 0 = off. Faces above keep their strength."})
REFERENCE_INPUT = ("IMAGE", {
    "tooltip": "Optional photo(s) of the person to restore (needs a recognizer): only faces like the largest "
               "face of one of these images are kept."})
REFERENCE_THRESHOLD_INPUT = ("FLOAT", {
    "default": DEFAULT_REFERENCE_THRESHOLD, "min": 0.0, "max": 1.0, "step": 0.01,
    "tooltip": "How similar (cosine, 0-1) a face must be to a reference face to be restored."})
OUTPUTS = (("FLOAT", "identity", "The lowest identity score of the faces pasted (1 = the same person as "
                                 "before); NaN without a recognizer or without faces."),
           ("STRING", "identity_report", "JSON: per image, each face's box, detection score, identity score "
                                         "and the strength used (lowered by the guard or not)."))


def identity_check(recognizer: str, min_identity: float = 0.0, reference: torch.Tensor | None = None,
                   reference_threshold: float = DEFAULT_REFERENCE_THRESHOLD,
                   detector: str | None = None) -> IdentityCheck | None:
    """What the node's identity inputs ask for; None when they ask for nothing."""
    if recognizer == OFF:
        if min_identity > 0 or reference is not None:
            raise ValueError("min_identity and a reference image need a recognizer: choose w600k_r50.onnx (in "
                             "models/insightface/models/buffalo_l/) or glintr100.onnx in 'recognizer'")
        return None
    model = face_helpers.get_recognizer(recognizer)
    references = None
    if reference is not None:
        references = reference_embeddings(model, face_helpers.get_detector(detector),
                                          [reference[i] for i in range(reference.shape[0])])
    return IdentityCheck(model, min_identity=min_identity, references=references,
                         reference_threshold=reference_threshold)


def identity_outputs(pasted: Sequence[Sequence[PastedFace]]) -> tuple[float, str]:
    """(the lowest score or NaN, the JSON report) of every image's pasted faces."""
    scores = [face.identity for faces in pasted for face in faces
              if face.identity is not None and math.isfinite(face.identity)]
    report = {"images": [{"faces": [face.to_json() for face in faces]} for faces in pasted]}
    return (min(scores) if scores else math.nan), json.dumps(report)


def identity_text(pasted: Sequence[Sequence[PastedFace]]) -> list[str]:
    """One line per face measured or lowered (identity guard, sharpness limit), for the node's UI text."""
    lines = []
    for index, faces in enumerate(pasted):
        for number, face in enumerate(faces):
            if face.identity is None and not face.lowered:
                continue
            how = (f"strength lowered {face.asked:.2f} -> {face.strength:.3f} for {face.lowered_by}"
                   if face.lowered else f"strength {face.strength:.2f}")
            kept = "" if face.identity is None else f"identity {face.identity:.3f} "
            lines.append(f"image {index} face {number}: {kept}({how})")
    return lines
