"""Identity in the nodes, in a real ComfyUI (in-process, and a server subprocess): the score as UI
text, a FLOAT and a JSON STRING, the guard on Paste Back, faces picked by a reference IMAGE on Detect
Faces and Face Restore; with the small random ArcFace-layout recognizer of tests/conftest.py put
where insightface's pack goes (models/insightface/models/buffalo_l/w600k_r50.onnx)."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

import comfy_harness as harness
from gpen_pipeline.detection import detect_faces
from gpen_pipeline.identity import IdentityCheck, reference_embeddings, reference_similarities

MODEL = "GPEN-tiny-64.pth"
RECOGNIZER = "w600k_r50.onnx"


def as_image(*arrays: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([a.astype(np.float32) / 255.0 for a in arrays]))


def install_recognizer(base, arcface_file) -> None:
    folder = base / "models" / "insightface" / "models" / "buffalo_l"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(arcface_file, folder / RECOGNIZER)


@pytest.fixture(scope="module")
def nodes(comfy, arcface_file):
    """Our node classes by id, in a ComfyUI whose insightface folder holds the recognizer."""
    install_recognizer(comfy.base, arcface_file)
    return lambda node_id: comfy.nodes.NODE_CLASS_MAPPINGS[node_id]()


@pytest.fixture(scope="module")
def restored_photo(nodes):
    image = as_image(harness.face_photo(256))
    gpen = nodes("GPENLoadModel").load(MODEL, "auto", "auto")["result"][0]
    faces = nodes("GPENDetectFaces").detect(image)["result"][0]
    return image, nodes("GPENRestoreFaces").restore(gpen, image, faces)["result"][0]


@pytest.fixture(scope="module")
def people(two_people, recognizer, detector):
    """The two-person scene as an IMAGE, Grace Hopper's photo as the reference, and a threshold halfway
    between the two faces' similarities to it (the random model's scale is not insightface's)."""
    scene, boxes = two_people
    x0, y0, x1, y1 = boxes["hopper"]
    reference = np.ascontiguousarray(scene[y0:y1, x0:x1])
    refs = reference_embeddings(recognizer, detector, [reference])
    similar = reference_similarities(IdentityCheck(recognizer, references=refs), scene, detect_faces(detector, scene))
    return scene, as_image(reference), float(np.mean(similar)), boxes


def test_paste_back_gives_each_face_its_identity_as_text_number_and_json(nodes, restored_photo):
    image, restored = restored_photo
    answer = nodes("GPENPasteBack").paste(image, restored, mask_mode="box", recognizer=RECOGNIZER)
    _, _, lowest, report = answer["result"]
    (face,) = json.loads(report)["images"][0]["faces"]
    assert -1.0 <= lowest < 0.99 and face["identity"] == pytest.approx(lowest, abs=1e-4)
    assert face["strength"] == 1.0 and face["lowered"] is False
    assert answer["ui"]["text"] == [f"image 0 face 0: identity {lowest:.3f} (strength 1.00)"]


def test_without_a_recognizer_the_identity_is_not_a_number_and_null(nodes, restored_photo):
    image, restored = restored_photo
    _, _, lowest, report = nodes("GPENPasteBack").paste(image, restored, mask_mode="box")["result"]
    assert math.isnan(lowest)
    assert json.loads(report)["images"][0]["faces"][0]["identity"] is None


def test_the_guard_on_paste_back_lowers_the_strength_to_the_floor(nodes, restored_photo):
    image, restored = restored_photo
    paste = nodes("GPENPasteBack").paste
    free = paste(image, restored, mask_mode="box", recognizer=RECOGNIZER)["result"]
    floor = round(free[2] + (1 - free[2]) / 2, 2)
    answer = paste(image, restored, mask_mode="box", recognizer=RECOGNIZER, min_identity=floor)
    out, _, lowest, report = answer["result"]
    (face,) = json.loads(report)["images"][0]["faces"]
    assert face["lowered"] is True and face["strength"] < 1.0 and lowest >= floor
    assert "strength lowered 1.00 ->" in answer["ui"]["text"][0]
    assert (out - image).abs().max() < (free[0] - image).abs().max()


def test_min_identity_without_a_recognizer_asks_for_one(nodes, restored_photo):
    image, restored = restored_photo
    with pytest.raises(ValueError, match="need a recognizer: choose w600k_r50.onnx"):
        nodes("GPENPasteBack").paste(image, restored, mask_mode="box", min_identity=0.5)


def test_a_recognizer_that_is_not_there_names_the_folders_searched(nodes, comfy, restored_photo):
    image, restored = restored_photo
    with pytest.raises(FileNotFoundError) as caught:
        nodes("GPENPasteBack").paste(image, restored, mask_mode="box", recognizer="glintr100.onnx")
    message = str(caught.value)
    assert "'glintr100.onnx' is in none of these folders" in message
    assert str(comfy.base / "models" / "insightface" / "models" / "antelopev2") in message


def test_detect_faces_keeps_only_the_face_like_the_reference(nodes, people):
    scene, reference, threshold, boxes = people
    answer = nodes("GPENDetectFaces").detect(as_image(scene), reference=reference, reference_threshold=threshold)
    (faces,) = answer["result"][0]
    (face,) = faces
    x0, _, x1, _ = boxes["hopper"]
    assert x0 < (face.box[0] + face.box[2]) / 2 < x1
    assert "only faces like the reference kept" in answer["ui"]["text"][0]
    assert [f["selected"] for f in answer["ui"]["gpen_faces"][0]["faces"]].count(True) == 1


def test_face_restore_restores_the_reference_person_only_and_scores_it(nodes, people):
    scene, reference, threshold, boxes = people
    image = as_image(scene)
    answer = nodes("GPENFaceRestore").restore(image, MODEL, mask_mode="box", recognizer=RECOGNIZER,
                                              reference=reference, reference_threshold=threshold)
    out, _, lowest, report = answer["result"]
    changed = (out[0] - image[0]).abs().amax(dim=2) > 0
    (hx0, _, hx1, _), (ax0, _, ax1, _) = boxes["hopper"], boxes["astronaut"]
    assert changed[:, hx0:hx1].any() and not changed[:, ax0:ax1].any()
    (face,) = json.loads(report)["images"][0]["faces"]
    assert face["identity"] == pytest.approx(lowest, abs=1e-4)
    assert any(line.startswith("image 0 face 0: identity") for line in answer["ui"]["text"])


# --------------------------------------------------------------------------- a real server


def test_the_identity_outputs_feed_other_nodes_through_the_server(server, arcface_file):
    install_recognizer(server.base, arcface_file)
    harness.save_png(harness.face_photo(256), server.base / "input" / "identity.png")
    one = harness.gpen_one_node(MODEL, mask_mode="box")
    one["inputs"].update(recognizer=RECOGNIZER, min_identity=0.0)
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "identity.png"}}, "2": one,
             "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}},
             "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 3]}}}
    entry = server.run(graph)
    assert entry["status"]["status_str"] == "success", harness.history_error(entry)
    lowest = float(entry["outputs"]["3"]["text"][0])
    (face,) = json.loads(entry["outputs"]["4"]["text"][0])["images"][0]["faces"]
    assert -1.0 <= lowest < 0.99 and face["identity"] == pytest.approx(lowest, abs=1e-4)
