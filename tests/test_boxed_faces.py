"""Faces given as boxes by another detector: our landmarks inside each box, and nothing else."""
from __future__ import annotations

import numpy as np

from gpen_pipeline import SelectOptions, find_faces
from gpen_pipeline.boxed_faces import faces_in_boxes


def _grown(box, left, top, right, bottom):
    x1, y1, x2, y2 = box
    return (x1 - left, y1 - top, x2 + right, y2 + bottom)


def test_a_box_of_any_tightness_gets_the_landmarks_the_whole_photo_gives(astronaut, detector):
    (face,) = find_faces(astronaut, detector).detected
    size = face.width
    for box in (face.box, _grown(face.box, 0.3 * size, 0.4 * size, 0.3 * size, 0.2 * size),
                _grown(face.box, -0.2 * size, -0.2 * size, -0.2 * size, -0.15 * size)):
        found = faces_in_boxes(detector, astronaut, [box], 0.2)
        assert not found.missed and len(found.faces) == 1
        assert np.abs(found.faces[0].landmarks - face.landmarks).max() < 0.05 * size


def test_a_box_without_a_face_is_given_back_as_missed(astronaut, detector):
    found = faces_in_boxes(detector, astronaut, [(400.0, 300.0, 480.0, 380.0), (10.0, 10.0, 10.0, 40.0)], 0.2)
    assert found.faces == () and found.missed == ((400.0, 300.0, 480.0, 380.0), (10.0, 10.0, 10.0, 40.0))


def test_two_boxes_on_one_face_give_it_once(astronaut, detector):
    (face,) = find_faces(astronaut, detector).detected
    found = faces_in_boxes(detector, astronaut, [face.box, _grown(face.box, 5, 5, 5, 5)], 0.2)
    assert len(found.faces) == 1 and not found.missed


def test_only_the_faces_in_the_boxes_given_are_selected(two_people, detector):
    scene, places = two_people
    everyone = find_faces(scene, detector).selected
    assert len(everyone) == 2
    boxed = find_faces(scene, detector, SelectOptions(), boxes=[places["hopper"]])
    (chosen,) = boxed.selected
    x1, _, x2, _ = places["hopper"]
    assert x1 <= chosen.landmarks[:, 0].mean() <= x2 and not boxed.missed


def test_a_small_face_is_found_in_its_box(astronaut, detector):
    import cv2

    small = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)
    (face,) = find_faces(small, detector).detected
    found = faces_in_boxes(detector, small, [face.box], 0.2)
    assert len(found.faces) == 1 and np.abs(found.faces[0].landmarks - face.landmarks).max() < 2.0
