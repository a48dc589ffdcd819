"""Auto strength (sharpness_limit): a face no sharper than the photo around it, times the limit."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from bench.seams import sharpness_ratio
from fixture_files import S64_MODEL_FILE
from gpen_pipeline import PasteOptions, RestoredFace, align_faces, find_faces, paste_guarded
from gpen_pipeline.cut import as_tensor, cut_crops
from test_cli import gpen, save_rgb

SIZE = 256


@pytest.fixture(scope="module")
def soft(astronaut):
    """The astronaut out of focus: every edge of the photo spread over a few pixels."""
    return cv2.GaussianBlur(astronaut, (0, 0), 2.5)


def _faces(photo, detector, source) -> list[RestoredFace]:
    """The faces of `photo`, 'restored' into the same crop of `source` (the sharp photo): a restorer
    that gives back exactly the detail the photo lost."""
    aligned, _ = align_faces(photo, find_faces(photo, detector).selected, SIZE)
    crops = cut_crops(as_tensor(photo), [a.affine for a in aligned], SIZE)
    sharp = cut_crops(as_tensor(source), [a.affine for a in aligned], SIZE)
    return [RestoredFace(a, s, c) for a, c, s in zip(aligned, crops, sharp)]


@pytest.mark.parametrize("mode", ["official", "box"])
def test_a_crisp_face_in_a_soft_photo_is_softened_towards_its_surroundings(soft, astronaut, detector, mode):
    faces = _faces(soft, detector, astronaut)
    full, _ = paste_guarded(soft, faces, PasteOptions(mask_mode=mode))
    limited, how = paste_guarded(soft, faces, PasteOptions(mask_mode=mode, sharpness_limit=1.5))
    main = how[0]
    assert 0.0 < main.strength < 0.9 and main.asked == 1.0 and main.lowered_by == "sharpness"
    box = main.face.box
    # Measured as the seam benchmark measures it (Sobel gradients), not as sharpness.py does.
    as_was, crisp, softened = (sharpness_ratio(np.asarray(image), box) for image in (soft, full.image, limited.image))
    assert softened < crisp and softened < as_was + 0.6 * (crisp - as_was)


def test_a_face_as_sharp_as_its_photo_keeps_its_strength(astronaut, detector):
    faces = _faces(astronaut, detector, astronaut)
    result, how = paste_guarded(astronaut, faces, PasteOptions(strength=0.8, sharpness_limit=1.2))
    assert [(face.strength, face.lowered_by) for face in how] == [(0.8, "")] * len(faces)
    plain, _ = paste_guarded(astronaut, faces, PasteOptions(strength=0.8))
    assert torch.equal(torch.as_tensor(result.image), torch.as_tensor(plain.image))


def test_a_higher_limit_never_gives_a_lower_strength(soft, astronaut, detector):
    faces = _faces(soft, detector, astronaut)
    strengths = [[face.strength for face in paste_guarded(soft, faces, PasteOptions(mask_mode="box",
                                                                                     sharpness_limit=limit))[1]]
                 for limit in (1.0, 1.2, 1.5, 2.0, 3.0, 4.0)]
    for lower, higher in zip(strengths, strengths[1:]):
        assert all(a <= b for a, b in zip(lower, higher))
    assert strengths[0][0] < strengths[-1][0]


def test_the_limit_never_raises_the_strength_asked(soft, astronaut, detector):
    faces = _faces(soft, detector, astronaut)
    _, how = paste_guarded(soft, faces, PasteOptions(mask_mode="box", strength=0.3, sharpness_limit=4.0))
    assert all(0.0 <= face.strength <= 0.3 for face in how)


@pytest.mark.parametrize("value", [0.5, -1.0, 4.5, float("nan"), "1.5"])
def test_a_limit_out_of_range_is_refused_in_a_sentence(value):
    with pytest.raises(ValueError, match=r"sharpness_limit \(0: off\) must be"):
        PasteOptions(sharpness_limit=value)


def test_the_command_line_takes_the_limit_and_refuses_a_bad_one(soft, tmp_path):
    photo = save_rgb(tmp_path / "soft.png", soft)
    # A random GPEN draws smooth colour: never sharper than the photo, so nothing is lowered.
    gpen("restore", photo, "--model", S64_MODEL_FILE, "-o", tmp_path / "out.png", "--mask", "box",
         "--sharpness-limit", "1.2", "--report", tmp_path / "report.json")
    faces = json.loads((tmp_path / "report.json").read_text())["images"][0]["faces"]
    assert faces and all(f["strength"] == 1.0 and f["lowered"] is False and f["lowered_by"] is None for f in faces)
    refused = gpen("restore", photo, "--model", S64_MODEL_FILE, "-o", tmp_path / "no.png", "--sharpness-limit",
                   "0.5", check=False)
    assert refused.returncode != 0 and "must be 0 or a number from 1 to 4, got 0.5" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "no.png").exists()
