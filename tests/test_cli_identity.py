"""The command line's identity options and its JSON report, run as users run it (a subprocess), with
the small random ArcFace-layout recognizer of conftest.py."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import skimage.data

from fixture_files import S64_MODEL_FILE
from gpen_pipeline.detection import detect_faces
from gpen_pipeline.identity import IdentityCheck, reference_embeddings, reference_similarities
from helpers.detector_scrfd_onnx import make_scrfd_onnx
from test_cli import gpen, load_rgb, save_rgb


@pytest.fixture(scope="module")
def astronaut_file(tmp_path_factory):
    return save_rgb(tmp_path_factory.mktemp("identity_cli") / "astronaut.png", skimage.data.astronaut())


def restore(image, out, *args, check=True):
    return gpen("restore", image, "--model", S64_MODEL_FILE, "-o", out, "--mask", "box", *args, check=check)


@pytest.fixture(scope="module")
def measured(astronaut_file, arcface_file, tmp_path_factory):
    """The report of a run with the recognizer, its output beside it."""
    folder = tmp_path_factory.mktemp("measured")
    restore(astronaut_file, folder / "out.png", "--recognizer", arcface_file, "--report", folder / "report.json")
    return json.loads((folder / "report.json").read_text()), folder


def test_the_report_gives_each_face_its_box_score_identity_and_strength(astronaut_file, measured, tmp_path):
    report, folder = measured
    (image,) = report["images"]
    assert image["input"] == str(astronaut_file) and image["output"] == str(folder / "out.png")
    (face,) = image["faces"]
    assert len(face["box"]) == 4 and face["score"] > 0.9
    assert -1.0 <= face["identity"] < 0.99 and face["strength"] == 1.0 and face["lowered"] is False
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temporary name left over
    restore(astronaut_file, tmp_path / "out.png", "--report", tmp_path / "plain.json")
    (plain,) = json.loads((tmp_path / "plain.json").read_text())["images"][0]["faces"]
    assert plain["identity"] is None and plain["box"] == face["box"]


def test_min_identity_lowers_the_strength_and_the_report_says_so(astronaut_file, arcface_file, measured, tmp_path):
    score = measured[0]["images"][0]["faces"][0]["identity"]
    floor = round(score + (1 - score) / 2, 3)
    done = restore(astronaut_file, tmp_path / "guarded.png", "--recognizer", arcface_file, "--min-identity", floor,
                   "--report", tmp_path / "guarded.json")
    (face,) = json.loads((tmp_path / "guarded.json").read_text())["images"][0]["faces"]
    assert face["lowered"] is True and face["strength_asked"] == 1.0 and 0 <= face["strength"] < 1.0
    assert face["identity"] >= floor
    assert "strength lowered from 1 to" in done.stderr


def test_a_reference_photo_restores_that_person_only(two_people, arcface_file, recognizer, detector, tmp_path):
    scene, boxes = two_people
    x0, y0, x1, y1 = boxes["hopper"]
    reference = save_rgb(tmp_path / "hopper_face.png", np.ascontiguousarray(scene[y0:y1, x0:x1]))
    # The random model's similarities are not insightface's: the threshold goes halfway between the two faces.
    refs = reference_embeddings(recognizer, detector, [load_rgb(reference)])
    similar = reference_similarities(IdentityCheck(recognizer, references=refs), scene, detect_faces(detector, scene))
    photo = save_rgb(tmp_path / "two.png", scene)
    restore(photo, tmp_path / "out.png", "--recognizer", arcface_file, "--reference", reference,
            "--reference-threshold", f"{np.mean(similar):.3f}", "--report", tmp_path / "report.json")
    changed = np.any(load_rgb(tmp_path / "out.png") != scene, axis=2)
    ax0, _, ax1, _ = boxes["astronaut"]
    assert changed[:, x0:x1].any() and not changed[:, ax0:ax1].any()
    (face,) = json.loads((tmp_path / "report.json").read_text())["images"][0]["faces"]
    assert x0 < face["box"][0] < x1


@pytest.mark.parametrize("case", ["detector", "missing", "no recognizer"])
def test_identity_mistakes_exit_with_one_line(case, astronaut_file, tmp_path):
    args = {"detector": ["--recognizer", make_scrfd_onnx(tmp_path / "det_10g.onnx")],
            "missing": ["--recognizer", tmp_path / "w600k_r50.onnx"],
            "no recognizer": ["--min-identity", "0.5"]}[case]
    done = restore(astronaut_file, tmp_path / "out.png", *args, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    expected = {"detector": "det_10g.onnx is not a face recognition model (a face detector?)",
                "missing": "w600k_r50.onnx does not exist",
                "no recognizer": "--min-identity and --reference need --recognizer"}[case]
    assert expected in line
    assert not (tmp_path / "out.png").exists()
