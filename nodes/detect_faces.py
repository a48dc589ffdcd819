"""GPENDetectFaces: IMAGE -> GPEN_FACES (per image, the selected faces with 5 landmarks)."""
from __future__ import annotations

import torch

from gpen_pipeline.detection import DEFAULT_DETECTOR, DETECTOR_NAMES, detect_faces
from gpen_pipeline.face import Face
from gpen_pipeline.selection import LARGEST, ORDERS, parse_indices, select_faces

from . import common, face_helpers, face_preview, tensors

ORDER_OPTIONS = (*ORDERS, LARGEST)


def find_faces(image: torch.Tensor, detector: str = DEFAULT_DETECTOR, threshold: float = 0.5,
               pbar=None) -> list[list[Face]]:
    """Every face above `threshold` in each image of an IMAGE batch, before selection."""
    tensors.check_image_batch(image)
    found = face_helpers.get_detector(detector)
    pbar = pbar or common.progress_bar(image.shape[0])
    per_image = []
    for index in range(image.shape[0]):
        common.check_interrupt()
        per_image.append(detect_faces(found, tensors.image_to_numpy(image, index), threshold))
        pbar.update(1)
    return per_image


def select_batch(found: list[list[Face]], image_hw: tuple[int, int], threshold: float = 0.5,
                 order: str = "large-small", indices: str = "", min_size: int = 0,
                 max_faces: int = 0) -> common.DetectedFaces:
    per_image = []
    for index, faces in enumerate(found):
        chosen = select_faces(faces, order=order, indices=indices, min_size=min_size, max_count=max_faces)
        if not chosen:
            common.LOG.info("[GPEN] image %d: no face selected (%d found above threshold %.2f)",
                            index, len(faces), threshold)
        per_image.append(tuple(chosen))
    return common.DetectedFaces(tuple(per_image), (int(image_hw[0]), int(image_hw[1])))


def detect_batch(image: torch.Tensor, detector: str = DEFAULT_DETECTOR, threshold: float = 0.5,
                 order: str = "large-small", indices: str = "", min_size: int = 0, max_faces: int = 0,
                 pbar=None) -> common.DetectedFaces:
    """The selected faces of every image of an IMAGE batch."""
    found = find_faces(image, detector, threshold, pbar)
    return select_batch(found, (image.shape[1], image.shape[2]), threshold, order, indices, min_size, max_faces)


def index_error(indices: str) -> str | None:
    """The selection's own message for a malformed 'indices' string, or None."""
    try:
        parse_indices(indices)
    except ValueError as err:
        return str(err)
    return None


def detection_summary(faces: common.DetectedFaces) -> str:
    counts = [len(f) for f in faces]
    return f"{sum(counts)} face(s) in {len(counts)} image(s): " + ", ".join(map(str, counts))


class DetectFaces:
    DESCRIPTION = ("Finds faces and their five landmarks in every image of the batch, then keeps the ones you "
                   "select (order, positions, minimum size, how many). Connect the faces to GPEN Restore Faces.")
    CATEGORY = common.CATEGORY
    RETURN_TYPES = (common.FACES_TYPE,)
    RETURN_NAMES = ("faces",)
    OUTPUT_TOOLTIPS = ("Per image, the selected faces (box, score, 5 landmarks) in image pixels.",)
    FUNCTION = "detect"
    # An output node, so that Detect alone can be queued to see which number each face has.
    OUTPUT_NODE = True

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
                    "default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "Minimum detection score. Lower it when faces are missed, raise it when "
                               "things that are not faces are found."}),
                "order": (list(ORDER_OPTIONS), {
                    "default": "large-small",
                    "tooltip": "How faces are numbered for 'indices'. 'largest' keeps only the largest face."}),
                "indices": ("STRING", {
                    "default": "",
                    "tooltip": "Which faces to keep, by position in that order from 0: '0', '0,2' or '1-3'. "
                               "Empty keeps all."}),
                "min_size": ("INT", {
                    "default": 0, "min": 0, "max": 8192, "step": 1,
                    "tooltip": "Skip faces whose box is smaller than this many pixels on its shorter side."}),
                "max_faces": ("INT", {
                    "default": 0, "min": 0, "max": 1000, "step": 1,
                    "tooltip": "Keep at most this many faces per image (0: no limit)."}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, indices=""):
        return index_error(indices) or True

    def detect(self, image, detector=DEFAULT_DETECTOR, threshold=0.5, order="large-small", indices="",
               min_size=0, max_faces=0):
        found = find_faces(image, detector, threshold)
        faces = select_batch(found, (image.shape[1], image.shape[2]), threshold, order, indices, min_size, max_faces)
        # The preview numbers every candidate the way `indices` counts them; the editor makes them clickable.
        shown = min(image.shape[0], face_preview.MAX_PREVIEW_IMAGES)
        arrays = [tensors.image_to_numpy(image, i) for i in range(shown)]
        images, boxes = face_preview.face_previews(arrays, found, faces, order, min_size)
        return {"ui": {"text": [detection_summary(faces)], "images": images, "gpen_faces": boxes},
                "result": (faces,)}
