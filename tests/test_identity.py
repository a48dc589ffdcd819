"""Identity: the recognition backend, the score per face, the guard and selection by reference,
with a small random ArcFace-layout ONNX model on onnxruntime (and insightface's own where a developer
has it)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from gpen_pipeline import EnhanceOptions, PasteOptions, enhance_image
from gpen_pipeline.detection import detect_faces
from gpen_pipeline.identity import (IdentityCheck, NoReferenceFace, identity_scores, matching_faces,
                                    reference_embeddings, reference_similarities)
from gpen_pipeline.recognition import (RecognizerInvalid, RecognizerMissing, embed_faces, find_recognizer,
                                       load_recognizer)
from helpers.detector_scrfd_onnx import make_scrfd_onnx
from helpers.recognizer_onnx import make_arcface_onnx

BOX = PasteOptions(mask_mode="box")


def _crop(image: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def _centre_x(face) -> float:
    return (face.box[0] + face.box[2]) / 2


# --------------------------------------------------------------------------- the backend


def test_a_face_compared_with_itself_scores_one(recognizer, detector, astronaut):
    faces = detect_faces(detector, astronaut)
    scores = identity_scores(recognizer, astronaut, astronaut.copy(), faces)
    np.testing.assert_allclose(scores, [1.0], atol=1e-5)


def test_embeddings_are_unit_length_and_tell_two_people_apart(recognizer, detector, two_people):
    scene, _ = two_people
    faces = detect_faces(detector, scene)
    embeddings = embed_faces(recognizer, scene, faces)
    assert embeddings.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert embeddings[0] @ embeddings[1] < 0.8


def test_the_normalisation_is_read_from_the_model(arcface_file, recognizer, detector, astronaut, tmp_path):
    """An mxnet-style export subtracts and scales in its first nodes: fed 0..255, it must embed a face
    as the plain export with the same weights does when fed (x - 127.5) / 127.5."""
    own = load_recognizer(make_arcface_onnx(tmp_path / "mxnet.onnx", self_normalising=True), device="cpu")
    assert (own.mean, own.std) == (0.0, 1.0) and (recognizer.mean, recognizer.std) == (127.5, 127.5)
    faces = detect_faces(detector, astronaut)
    np.testing.assert_allclose(embed_faces(own, astronaut, faces), embed_faces(recognizer, astronaut, faces),
                               atol=1e-5)


def test_a_model_exported_for_batch_one_embeds_several_faces(recognizer, detector, two_people, tmp_path):
    scene, _ = two_people
    single = load_recognizer(make_arcface_onnx(tmp_path / "batch1.onnx", batch=1), device="cpu")
    assert single.fixed_batch == 1
    faces = detect_faces(detector, scene)
    np.testing.assert_allclose(embed_faces(single, scene, faces), embed_faces(recognizer, scene, faces), atol=1e-5)


def test_a_detector_in_the_recognition_slot_is_refused_in_one_sentence(tmp_path):
    detector_file = make_scrfd_onnx(tmp_path / "det_10g.onnx")
    with pytest.raises(RecognizerInvalid) as caught:
        load_recognizer(detector_file)
    message = str(caught.value)
    assert "det_10g.onnx is not a face recognition model (a face detector?)" in message
    assert "\n" not in message


def test_a_file_that_is_no_onnx_model_is_refused_naming_it(tmp_path):
    broken = tmp_path / "w600k_r50.onnx"
    broken.write_bytes(b"<html>not found</html>")
    with pytest.raises(RecognizerInvalid, match="w600k_r50.onnx is not a readable ONNX model"):
        load_recognizer(broken)


def test_a_missing_model_names_every_folder_searched_and_where_to_get_it(tmp_path):
    with pytest.raises(RecognizerMissing) as caught:
        find_recognizer("w600k_r50.onnx", [tmp_path])
    message = str(caught.value)
    assert str(tmp_path / "models" / "buffalo_l") in message and str(tmp_path / "antelopev2") in message
    assert "buffalo_l" in message and "insightface/releases" in message and "non-commercial" in message


def test_the_model_is_found_where_insightface_packs_are_unpacked(arcface_file):
    base = arcface_file.parents[2]  # <folder>/models/buffalo_l/w600k_r50.onnx
    assert Path(find_recognizer("w600k_r50.onnx", [base]).source) == arcface_file


# --------------------------------------------------------------------------- the score and the guard


def test_restoring_lowers_the_score_and_strength_zero_keeps_it(s64_model, detector, recognizer, astronaut):
    check = IdentityCheck(recognizer)
    full = enhance_image(astronaut, s64_model, detector, EnhanceOptions(paste=BOX), identity=check)
    none = enhance_image(astronaut, s64_model, detector, EnhanceOptions(paste=PasteOptions(mask_mode="box",
                                                                                           strength=0.0)),
                         identity=check)
    assert len(full.pasted) == 1 and full.pasted[0].identity < 0.99
    assert none.pasted[0].identity == pytest.approx(1.0, abs=1e-5)


def test_without_a_recognizer_faces_are_pasted_as_asked_and_unscored(s64_model, detector, astronaut):
    result = enhance_image(astronaut, s64_model, detector, EnhanceOptions(paste=BOX))
    (pasted,) = result.pasted
    assert pasted.identity is None and pasted.strength == pasted.asked == 1.0
    assert pasted.to_json()["identity"] is None


@pytest.fixture(scope="module")
def unguarded(s64_model, detector, recognizer, astronaut):
    return enhance_image(astronaut, s64_model, detector, EnhanceOptions(paste=BOX), identity=IdentityCheck(recognizer))


def test_the_guard_never_lowers_a_face_above_the_floor(s64_model, detector, recognizer, astronaut, unguarded):
    score = unguarded.pasted[0].identity
    guarded = enhance_image(astronaut, s64_model, detector, EnhanceOptions(paste=BOX),
                            identity=IdentityCheck(recognizer, min_identity=score - 0.02))
    assert guarded.pasted[0].strength == 1.0 and not guarded.pasted[0].lowered
    np.testing.assert_array_equal(guarded.image, unguarded.image)


def test_the_guard_lowers_strength_to_the_floor_and_further_for_higher_floors(s64_model, detector, recognizer,
                                                                               astronaut, unguarded):
    score = unguarded.pasted[0].identity
    floors = [score + (1 - score) * share for share in (0.25, 0.5, 0.75)]
    used = []
    for floor in floors:
        result = enhance_image(astronaut, s64_model, detector, EnhanceOptions(paste=BOX),
                               identity=IdentityCheck(recognizer, min_identity=floor))
        (pasted,) = result.pasted
        assert pasted.lowered and pasted.identity >= floor
        used.append(pasted.strength)
    assert 0 < used[0] < 1.0
    assert used == sorted(used, reverse=True)


# --------------------------------------------------------------------------- selection by reference


def test_reference_selection_restores_the_referenced_person_only(s64_model, detector, recognizer, two_people):
    scene, boxes = two_people
    for person, other in (("astronaut", "hopper"), ("hopper", "astronaut")):
        references = reference_embeddings(recognizer, detector, [_crop(scene, boxes[person])])
        faces = detect_faces(detector, scene)
        similar = reference_similarities(IdentityCheck(recognizer, references=references), scene, faces)
        threshold = float(np.mean(similar))  # halfway: the random model's scale is not insightface's
        check = IdentityCheck(recognizer, references=references, reference_threshold=threshold)
        kept = matching_faces(check, scene, faces)
        x0, _, x1, _ = boxes[person]
        assert len(kept) == 1 and x0 < _centre_x(kept[0]) < x1
        result = enhance_image(scene, s64_model, detector, EnhanceOptions(paste=BOX), identity=check)
        changed = np.any(result.image != scene, axis=2)
        ox0, _, ox1, _ = boxes[other]
        assert changed[:, x0:x1].any() and not changed[:, ox0:ox1].any()


def test_a_reference_without_a_face_is_refused_naming_it(recognizer, detector):
    plain = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(NoReferenceFace, match="^me.png: no face found"):
        reference_embeddings(recognizer, detector, [plain], names=["me.png"])


@pytest.mark.parametrize("field, value", [("min_identity", 1.5), ("min_identity", float("nan")),
                                          ("reference_threshold", -0.1)])
def test_identity_options_out_of_range_are_refused_naming_them(recognizer, field, value):
    with pytest.raises(ValueError, match=f"^{field} must be a number within"):
        IdentityCheck(recognizer, **{field: value})


# --------------------------------------------------------------------------- insightface's own model

REAL_MODEL = Path(os.environ.get("GPEN_ARCFACE_MODEL",
                                 Path.home() / ".insightface" / "models" / "buffalo_l" / "w600k_r50.onnx"))


@pytest.mark.skipif(not REAL_MODEL.is_file(), reason=f"insightface's w600k_r50.onnx is not at {REAL_MODEL} "
                                                     "(set GPEN_ARCFACE_MODEL to run this)")
def test_the_real_model_knows_one_person_from_another(detector, two_people, astronaut):
    real = load_recognizer(REAL_MODEL, device="cpu")
    scene, boxes = two_people
    faces = sorted(detect_faces(detector, scene), key=_centre_x)
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    same = embed_faces(real, mirrored, detect_faces(detector, mirrored)) @ embed_faces(real, scene, faces).T
    assert same[0, 0] > 0.5 and same[0, 1] < 0.3


def test_reference_selection_on_a_clip_keeps_whole_tracks(detector, recognizer, two_people):
    # The same person in every frame: a track is judged as a whole, so a frame where its face alone
    # would fall short of the threshold still keeps it, and the other person is never restored.
    from gpen_pipeline import SelectOptions, TrackOptions, find_clip_faces
    from gpen_pipeline.identity import matching_tracks

    scene, boxes = two_people
    frames = [scene] * 4
    found = find_clip_faces(frames, detector, SelectOptions(), TrackOptions(smoothing=0.5))
    assert all(len(f.selected) == 2 for f in found)
    references = reference_embeddings(recognizer, detector, [_crop(scene, boxes["hopper"])])
    similar = reference_similarities(IdentityCheck(recognizer, references=references), scene, list(found[0].selected))
    check = IdentityCheck(recognizer, references=references, reference_threshold=float(np.mean(similar)))
    kept = matching_tracks(check, frames, [f.selected for f in found])
    x0, _, x1, _ = boxes["hopper"]
    assert all(len(faces) == 1 and x0 < _centre_x(faces[0]) < x1 for faces in kept)
    assert len({faces[0].track for faces in kept}) == 1
    assert matching_tracks(None, frames, [f.selected for f in found]) == [list(f.selected) for f in found]
