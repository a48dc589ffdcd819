"""Faces where they are hard: cut by the border, 10 px, filling the image, turned 90/180
degrees, fifty in one photo, and landmarks that cannot define a crop. Real photos and the
real detector wherever a detector can produce the case; a stand-in detector only for
landmarks no detector returns (placed 10 px faces, coincident or collinear points)."""
from __future__ import annotations

import logging
import warnings

import cv2
import numpy as np
import pytest
import torch

from gpen_pipeline import EnhanceOptions, PasteOptions, enhance_image
from gpen_pipeline.face import Face

import robustness_support as support

BOX = EnhanceOptions(paste=PasteOptions(mask_mode="box"))


def restore(image, model, detector, options=BOX):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return enhance_image(image, model, detector, options)


def changed(result, image) -> np.ndarray:
    return np.any(result.image != image, axis=-1)


# --------------------------------------------------------------------------- border, size


@pytest.mark.parametrize("side", ["left", "top"])
def test_face_cut_by_the_border_is_restored_without_a_dark_rim(s64_model, detector, side):
    photo = support.astronaut()
    image = np.ascontiguousarray(photo[:, 215:] if side == "left" else photo[110:, :])  # through the face
    result = restore(image, s64_model, detector)
    assert len(result.faces) == 1
    support.assert_untouched_outside(result.image, image, result.mask)
    # Geometry alone, with a restorer that changes nothing: the crop's black surround must not
    # come back as a dark line along the image border.
    same = restore(image, support.identity_model(64), detector)
    edge = (np.s_[:, 0] if side == "left" else np.s_[0, :])
    under = same.mask[edge] > 0.5
    assert under.sum() > 20  # the paste reaches the border...
    before = image[edge][under].astype(float).mean()
    after = same.image[edge][under].astype(float).mean()
    assert abs(after - before) < 6, (before, after)  # ...without darkening it


@pytest.mark.parametrize("side", [48, 96])
def test_faces_of_8_to_20_pixels_found_in_small_photos(s64_model, detector, side):
    image = cv2.resize(support.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    result = restore(image, s64_model, detector, EnhanceOptions())  # official mode: small-face smoothing
    assert len(result.faces) == 1 and result.faces[0].face.width < side / 4
    support.assert_untouched_outside(result.image, image, result.mask)
    assert result.mask.any()


def test_placed_10px_faces_in_a_large_photo_are_pasted_only_where_they_are(s64_model):
    """Two 10 px faces in 1000 px (what a crowd shot gives): the 64 px crops are upsampled from
    a few pixels, and the paste stays within a few face widths of each face."""
    base = cv2.resize(support.group_photo(), (1000, 692), interpolation=cv2.INTER_AREA)
    unit = (support.ASTRONAUT_LANDMARKS - support.ASTRONAUT_LANDMARKS.mean(0)) / 43.0 * 10.0  # eyes 10 px apart
    faces = [((x - 8, y - 10, x + 8, y + 12), 0.99, unit + (x, y)) for x, y in ((200.0, 300.0), (700.0, 500.0))]
    result = restore(base, s64_model, support.fixed_detector(faces, 1000), EnhanceOptions())
    assert len(result.faces) == 2
    support.assert_untouched_outside(result.image, base, result.mask)
    ys, xs = np.nonzero(result.mask)
    for x, y in ((200, 300), (700, 500)):
        near = (np.abs(xs - x) < 40) & (np.abs(ys - y) < 40)
        assert near.any()
    assert ((np.abs(xs[:, None] - [200, 700]) < 40) & (np.abs(ys[:, None] - [300, 500]) < 40)).any(1).all()


@pytest.mark.parametrize("crop", ["loose", "tight"])
def test_face_filling_the_whole_image(s64_model, detector, crop):
    photo = support.astronaut()
    part = photo[60:180, 165:285] if crop == "loose" else photo[85:160, 190:260]
    image = cv2.resize(part, (256, 256), interpolation=cv2.INTER_CUBIC)
    result = restore(image, s64_model, detector)
    assert len(result.faces) >= 1
    support.assert_untouched_outside(result.image, image, result.mask)
    assert (result.mask > 0).mean() > 0.3  # the face is most of the picture


# --------------------------------------------------------------------------- rotation


def upright_and_unmirrored(crop: np.ndarray, detector) -> bool:
    """The real detector, run on the crop, sees an upright face: eyes above nose above mouth,
    the image-left eye on the left."""
    from gpen_pipeline import detect_faces

    found = detect_faces(detector, cv2.resize(crop, (256, 256), interpolation=cv2.INTER_CUBIC), 0.5)
    if not found:
        return False
    (lx, ly), (rx, ry), (_, ny), (_, my1), (_, my2) = max(found, key=lambda f: f.score).landmarks
    return lx < rx and max(ly, ry) < ny < min(my1, my2)


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_turned_photo_gives_an_upright_crop_and_is_pasted_turned(s64_model, detector, turns):
    from reference_cv2 import warp_crop

    photo = support.astronaut()
    upright = restore(photo, s64_model, detector)
    image = np.ascontiguousarray(np.rot90(photo, turns))
    result = restore(image, s64_model, detector)
    assert result.faces, "no face found in the turned photo"
    support.assert_untouched_outside(result.image, image, result.mask)
    best = max(result.faces, key=lambda f: f.face.score)
    assert upright_and_unmirrored(warp_crop(image, best.affine, 64), detector)  # alignment undid the turn
    # Turned back, the face found lies on the upright face (where its restored pixels went).
    x1, y1, x2, y2 = best.face.box
    spot = np.zeros(image.shape[:2], bool)
    spot[int((y1 + y2) / 2), int((x1 + x2) / 2)] = True
    y, x = np.argwhere(np.rot90(spot, -turns))[0]
    ux1, uy1, ux2, uy2 = upright.faces[0].face.box
    assert ux1 < x < ux2 and uy1 < y < uy2
    assert result.mask[int((y1 + y2) / 2), int((x1 + x2) / 2)] > 0.5


# --------------------------------------------------------------------------- many faces


def face_cells() -> list[np.ndarray]:
    """Square crops around the eight faces of three real photos (astronaut, Grace Hopper, t1.jpg)."""
    from gpen_pipeline import DEFAULT_DETECTOR, detect_faces, load_detector

    detector = load_detector(DEFAULT_DETECTOR, device="cpu")
    cells = []
    for photo in (support.astronaut(), support.grace_hopper(), support.group_photo()):
        for face in detect_faces(detector, photo):
            x1, y1, x2, y2 = face.box
            cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 0.9 * max(x2 - x1, y2 - y1)
            padded = cv2.copyMakeBorder(photo, 400, 400, 400, 400, cv2.BORDER_REFLECT)
            y0, x0 = int(cy - half) + 400, int(cx - half) + 400
            cells.append(padded[y0:y0 + int(2 * half), x0:x0 + int(2 * half)])
    return cells


def test_fifty_faces_in_one_photo_all_restored(s64_model, detector):
    cells = face_cells()
    assert len(cells) == 8
    grid = [cv2.flip(cells[i % 8], 1) if (i // 8) % 2 else cells[i % 8] for i in range(50)]
    image = support.tile(grid, columns=10, cell=128)  # 1280 x 640
    result = restore(image, s64_model, detector)
    assert len(result.faces) >= 48, len(result.faces)
    support.assert_untouched_outside(result.image, image, result.mask)
    diff = changed(result, image)
    cells_changed = sum(diff[r * 128:(r + 1) * 128, c * 128:(c + 1) * 128].sum() > 500
                        for r in range(5) for c in range(10))
    assert cells_changed >= 48
    assert len(result.crops) == len(result.faces)


# --------------------------------------------------------------------------- landmarks that cannot work


def degenerate_detector():
    good = support.ASTRONAUT_LANDMARKS
    other = good + np.float32([200, 250])  # a second real-looking face (bottom right)
    coincident = np.full((5, 2), 300.0, np.float32)
    collinear = np.stack([np.linspace(350, 450, 5), np.full(5, 60.0)], 1).astype(np.float32)
    nan = good.copy()
    nan[2] = np.nan
    faces = [(support.ASTRONAUT_BOX, 0.99, good), ((380, 310, 470, 430), 0.98, other),
             ((290, 290, 310, 310), 0.97, coincident), ((340, 40, 460, 80), 0.96, collinear),
             ((180, 60, 270, 180), 0.95, nan)]
    return support.fixed_detector(faces, 512)


def test_degenerate_landmarks_skip_that_face_with_a_note_and_restore_the_others(s64_model):
    photo = support.astronaut()
    result = restore(photo, s64_model, degenerate_detector())
    assert len(result.faces) == 2
    notes = " | ".join(result.notes)
    assert "coincide" in notes and "collinear" in notes, notes
    assert "[290, 290, 310, 310]" in notes and "[340, 40, 460, 80]" in notes
    support.assert_untouched_outside(result.image, photo, result.mask)
    assert not result.mask[290:311, 290:311].any() and not result.mask[40:81, 340:461].any()


def test_node_skips_degenerate_faces_with_a_warning(comfy, caplog):
    photo = support.astronaut()
    boxes, scores, points = degenerate_detector().runner(None, photo, 0.0)
    faces = tuple(Face(tuple(map(float, b)), float(s), p.astype(np.float32)) for b, s, p in zip(boxes, scores, points))
    detected = comfy.common.DetectedFaces((faces,), (512, 512))
    loader = comfy.nodes.NODE_CLASS_MAPPINGS["GPENLoadModel"]()
    handle = loader.load("GPEN-robust-64.pth", "cpu", "fp32")["result"][0]
    image = torch.from_numpy(photo[None].astype(np.float32) / 255)
    with caplog.at_level(logging.WARNING, logger="GPEN"):
        restored = comfy.nodes.NODE_CLASS_MAPPINGS["GPENRestoreFaces"]().restore(handle, image, detected)["result"][0]
    assert len(restored[0]) == 2
    assert caplog.text.count("skipped a face") == 3, caplog.text  # coincident, collinear, NaN
    out, mask, *_ = comfy.nodes.NODE_CLASS_MAPPINGS["GPENPasteBack"]().paste(image, restored,
                                                                             mask_mode="box")["result"]
    assert not mask[0, 290:311, 290:311].any() and mask[0].any()
