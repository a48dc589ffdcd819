"""GPENDetectFaces: IMAGE -> GPEN_FACES (per image, the selected faces with 5 landmarks)."""
from __future__ import annotations

import dataclasses

import torch

from gpen_pipeline import (DEFAULT_DETECTOR, DETECTOR_NAMES, MAX_FACES, MIN_THRESHOLD, ORDERS, SelectOptions,
                           TrackOptions, find_clip_faces, find_faces)
from gpen_pipeline.identity import IdentityCheck, matching_faces, matching_tracks
from gpen_pipeline.selection import LARGEST

from . import common, core_boxes, face_helpers, face_preview, identity_inputs, tensors

ORDER_OPTIONS = (*ORDERS, LARGEST)


SMOOTHING_INPUT = ("FLOAT", {
    "default": TrackOptions().smoothing, "min": 0.0, "max": 1.0, "step": 0.05,
    "tooltip": "Batches of video frames: each face is followed from frame to frame as a track (numbered as "
               "'indices' counts them, the same person in every frame; a face missed for a few frames is "
               "filled in) and its alignment smoothed over time against flicker, 0 off to 1 strongest. "
               "A single image is never smoothed; 0 treats every image on its own."})


def tracks_clip(image: torch.Tensor, smoothing: float) -> bool:
    """Whether a batch is followed as a clip: more than one frame and smoothing on."""
    return image.shape[0] > 1 and smoothing > 0


def detect_batch(image: torch.Tensor, detector: str = DEFAULT_DETECTOR, select: SelectOptions = SelectOptions(),
                 pbar=None, smoothing: float = 0.0, identity: IdentityCheck | None = None,
                 bboxes=None, face_masks: torch.Tensor | None = None) -> tuple[common.DetectedFaces, list]:
    """The find stage on every image of an IMAGE batch: (the selected faces, every image's FoundFaces);
    a clip's faces tracked and smoothed (tracks_clip). With `identity` references, only the selected
    faces like a reference stay selected. bboxes: a core BOUNDING_BOX value, face_masks: a MASK per
    face; only the faces in those boxes (and the masks' boxes) are looked at (gpen_pipeline.boxed_faces)."""
    tensors.check_image_batch(image)
    boxes = given_boxes(image, bboxes, face_masks)
    found_by = face_helpers.get_detector(detector)
    pbar = pbar or common.progress_bar(image.shape[0])
    clip = tracks_clip(image, smoothing)
    if clip:
        found = find_clip_faces([image[i] for i in range(image.shape[0])], found_by, select,
                                TrackOptions(smoothing=smoothing), pbar.update, common.check_interrupt, boxes)
    else:
        found = []
        for index in range(image.shape[0]):
            common.check_interrupt()
            found.append(find_faces(image[index], found_by, select, None if boxes is None else boxes[index]))
            pbar.update(1)
    if clip:  # whole tracks, the same person in every frame
        kept = matching_tracks(identity, [image[i] for i in range(image.shape[0])], [f.selected for f in found])
    else:
        kept = [matching_faces(identity, image[index], faces.selected) for index, faces in enumerate(found)]
    found = [dataclasses.replace(faces, selected=tuple(chosen)) for faces, chosen in zip(found, kept)]
    for index, faces in enumerate(found):
        for box in faces.missed:
            common.LOG.info("[GPEN] image %d: no face found in the box %s given; skipped", index,
                            [round(v) for v in box])
        if not faces.selected:
            common.LOG.info("[GPEN] image %d: no face selected (%d found above threshold %.2f)",
                            index, len(faces.detected), select.threshold)
    selected = common.DetectedFaces(tuple(f.selected for f in found), (int(image.shape[1]), int(image.shape[2])))
    return selected, found


def given_boxes(image: torch.Tensor, bboxes=None, face_masks: torch.Tensor | None = None) -> list | None:
    """Per image, the face boxes given as core bounding boxes and as masks (both may be), or None."""
    if bboxes is None and face_masks is None:
        return None
    count, hw = image.shape[0], tuple(image.shape[1:3])
    boxes = [[] for _ in range(count)]
    for given in (core_boxes.boxes_per_image(bboxes, count) if bboxes is not None else (),
                  core_boxes.boxes_from_masks(face_masks, count, hw) if face_masks is not None else ()):
        for mine, theirs in zip(boxes, given):
            mine.extend(theirs)
    return boxes


THRESHOLD_TOOLTIP = (f"Minimum detection score, from {MIN_THRESHOLD} (lower finds only noise) to 1. Lower it "
                     "when faces are missed, raise it when things that are not faces are found. At most "
                     f"{MAX_FACES} faces per image are kept, the best scores first.")


def detection_summary(faces: common.DetectedFaces, found: list | None = None) -> str:
    counts = [len(f) for f in faces]
    text = f"{sum(counts)} face(s) in {len(counts)} image(s): " + ", ".join(map(str, counts))
    missed = sum(len(each.missed) for each in found or ())
    return text + (f"; {missed} box(es) given without a face, skipped" if missed else "")


FACE_MASKS_INPUT = ("MASK", {
    "tooltip": "Optional: faces given as masks, one per face (e.g. from a segmentation node): for one image every "
               "mask is one of its faces, for a batch mask i is image i's face. Each mask's box is searched like "
               "a box given in 'bboxes'; the paste keeps this pack's own soft mask."})

BBOXES_INPUT = (core_boxes.TYPE, {
    "forceInput": True,
    "tooltip": "Optional: faces another detector found (ComfyUI's bounding boxes, one list per image). Only "
               "these are restored; each gets its five landmarks from this node's detector, run inside the box, "
               "and a box without a face is skipped and said."})


class DetectFaces:
    DESCRIPTION = ("Finds faces and their five landmarks in every image of the batch, then keeps the ones you "
                   "select (order, positions, minimum size, how many). Connect the faces to GPEN Restore Faces.")
    CATEGORY = common.CATEGORY
    SEARCH_ALIASES = ["face detection", "find faces", "retinaface", "face bbox", "select faces"]
    # An output node, so that Detect alone can be queued to see which number each face has.
    OUTPUT_NODE = True
    # New outputs come last, so links of workflows saved before them keep their slots.
    RETURN_TYPES = (common.FACES_TYPE, core_boxes.TYPE)
    RETURN_NAMES = ("faces", "bboxes")
    OUTPUT_TOOLTIPS = ("Per image, the selected faces (box, score, 5 landmarks) in image pixels.",
                       "The same faces as ComfyUI's bounding boxes (per image, x/y/width/height, label 'face', "
                       "score), for Draw BBoxes and other packs' nodes.")
    FUNCTION = "detect"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images to search; a batch is searched image by image."}),
                "detector": (list(DETECTOR_NAMES), {
                    "default": DEFAULT_DETECTOR,
                    "tooltip": "retinaface_mobile0.25_bundled needs no download. The others read "
                               "detection_Resnet50_Final.pth / detection_mobilenet0.25_Final.pth from "
                               "models/facedetection, or insightface's det_10g.onnx from models/insightface."}),
                "threshold": ("FLOAT", {
                    "default": 0.5, "min": MIN_THRESHOLD, "max": 1.0, "step": 0.01, "tooltip": THRESHOLD_TOOLTIP}),
                "order": (list(ORDER_OPTIONS), {
                    "default": "large-small",
                    "tooltip": "How faces are numbered for 'indices'. 'largest' keeps only the largest face."}),
                "indices": ("STRING", {
                    "default": "",
                    "tooltip": "Which faces to keep, by position in that order from 0: '0', '0,2' or '1-3' "
                               "('2-999' is every face from the third on). Empty keeps all."}),
                "min_size": ("INT", {
                    "default": 0, "min": 0, "max": 8192, "step": 1,
                    "tooltip": "Skip faces whose box is smaller than this many pixels on its shorter side."}),
                "max_faces": ("INT", {
                    "default": 0, "min": 0, "max": MAX_FACES, "step": 1,
                    "tooltip": f"Keep at most this many faces per image (0: all found, at most {MAX_FACES})."}),
            },
            "optional": {
                "smoothing": common.advanced(SMOOTHING_INPUT),
                "reference": identity_inputs.REFERENCE_INPUT,
                "reference_threshold": common.advanced(identity_inputs.REFERENCE_THRESHOLD_INPUT),
                "recognizer": common.advanced(identity_inputs.recognizer_input(identity_inputs.RECOGNIZER_CHOICES[1])),
                "bboxes": BBOXES_INPUT,
                "face_masks": FACE_MASKS_INPUT,
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, threshold=0.5, indices="", smoothing=None, reference_threshold=None):
        refusal = common.options_refusal(SelectOptions, threshold=threshold, indices=indices)
        if refusal is True:
            refusal = common.options_refusal(TrackOptions, smoothing=smoothing)
        return identity_inputs.numbers_refusal(reference_threshold=reference_threshold) if refusal is True else refusal

    def detect(self, image, detector=DEFAULT_DETECTOR, threshold=0.5, order="large-small", indices="",
               min_size=0, max_faces=0, smoothing=SMOOTHING_INPUT[1]["default"], reference=None,
               reference_threshold=identity_inputs.DEFAULT_REFERENCE_THRESHOLD,
               recognizer=identity_inputs.RECOGNIZER_CHOICES[1], bboxes=None, face_masks=None):
        select = SelectOptions(threshold=threshold, order=order, indices=indices, min_size=min_size,
                               max_count=max_faces)
        identity = None
        if reference is not None:
            identity = identity_inputs.identity_check(recognizer, reference=reference,
                                                      reference_threshold=reference_threshold, detector=detector)
        faces, found = detect_batch(image, detector, select, smoothing=smoothing, identity=identity, bboxes=bboxes,
                                    face_masks=face_masks)
        # Every candidate, numbered the way `indices` counts them, for the editor's face picker. Not under
        # ui "images": the editor would show it a second time as its stock preview.
        boxes = face_preview.face_previews(image, found, order, min_size)
        text = detection_summary(faces, found)
        if identity is not None:
            text += f"; only faces like the reference kept (similarity >= {reference_threshold:.2f})"
        return {"ui": {"text": [text], "gpen_faces": boxes},
                "result": (faces, core_boxes.core_boxes(faces.per_image))}
