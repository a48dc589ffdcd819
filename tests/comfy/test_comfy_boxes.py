"""Interop with ComfyUI's core bounding boxes: our faces out as boxes, and other detectors' boxes in
as the faces to restore, in the real ComfyUI imported in-process."""
from __future__ import annotations

import numpy as np
import pytest
import torch

MODEL = "GPEN-tiny-64.pth"


def node(comfy, node_id):
    return comfy.nodes.NODE_CLASS_MAPPINGS[node_id]()


def as_image(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array[None].astype(np.float32) / 255.0)


def core_box(box, label="person", score=0.9) -> dict:
    """A box the way core detection nodes (RT-DETR, MediaPipe) give one."""
    x1, y1, x2, y2 = box
    return {"x": float(x1), "y": float(y1), "width": float(x2 - x1), "height": float(y2 - y1), "label": label,
            "score": score}


def test_detect_gives_its_faces_as_core_bounding_boxes(comfy, two_people):
    scene, _ = two_people
    faces, bboxes = node(comfy, "GPENDetectFaces").detect(as_image(scene))["result"]
    assert len(bboxes) == 1 and len(bboxes[0]) == len(faces[0]) == 2
    for box, face in zip(bboxes[0], faces[0]):
        assert box["label"] == "face" and box["score"] == pytest.approx(face.score)
        assert (box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]) == pytest.approx(face.box)


def test_boxes_from_another_detector_choose_the_faces_restored(comfy, two_people):
    scene, places = two_people
    image = as_image(scene)
    given = [[core_box(places["hopper"])]]
    faces, bboxes = node(comfy, "GPENDetectFaces").detect(image, bboxes=given)["result"]
    (face,) = faces[0]
    x1, _, x2, _ = places["hopper"]
    assert x1 <= face.landmarks[:, 0].mean() <= x2 and len(bboxes[0]) == 1
    out = node(comfy, "GPENFaceRestore").restore(image, MODEL, mask_mode="box", bboxes=given)["result"][0]
    changed = (out[0] != image[0]).any(dim=-1).numpy()
    ax1, _, ax2, _ = places["astronaut"]
    assert changed[:, x1:x2].any() and not changed[:, ax1:ax2].any()


def test_a_box_without_a_face_is_skipped_and_said(comfy, two_people):
    scene, _ = two_people
    answer = node(comfy, "GPENDetectFaces").detect(as_image(scene), bboxes=[core_box((540, 10, 556, 40))])
    assert answer["result"][0][0] == () and "1 box(es) given without a face, skipped" in answer["ui"]["text"][0]


@pytest.mark.parametrize("bboxes, words", [
    ([[], []], "bboxes has 2 lists of boxes for 1 images"),
    ({"x": 0, "y": 0, "width": -5, "height": 3}, "width and height above 0"),
    ([{"x": 0, "y": 0, "w": 5, "h": 3}], "each box must be a dict with x, y, width and height"),
    ("0,0,5,5", "bboxes must be bounding boxes"),
])
def test_boxes_that_are_not_boxes_are_refused_in_a_sentence(comfy, two_people, bboxes, words):
    scene, _ = two_people
    with pytest.raises(ValueError, match=words):
        node(comfy, "GPENDetectFaces").detect(as_image(scene), bboxes=bboxes)


def test_a_mask_per_face_chooses_the_faces_like_boxes(comfy, two_people):
    scene, places = two_people
    masks = torch.zeros((2,) + scene.shape[:2])
    x1, y1, x2, y2 = places["hopper"]
    masks[0, y1 + 60:y1 + 320, x1 + 120:x2 - 120] = 1.0  # a segmentation node's mask of Hopper's head
    faces, bboxes = node(comfy, "GPENDetectFaces").detect(as_image(scene), face_masks=masks)["result"]
    (face,) = faces[0]  # the empty second mask gives no face
    assert x1 <= face.landmarks[:, 0].mean() <= x2 and len(bboxes[0]) == 1
    with pytest.raises(ValueError, match="face_masks is 10x10 but the image is 1100x600"):
        node(comfy, "GPENDetectFaces").detect(as_image(scene), face_masks=torch.zeros((1, 10, 10)))
