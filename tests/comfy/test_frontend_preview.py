"""What GPEN Detect Faces gives the editor's face picker (in-process ComfyUI): an unmarked preview PNG
in the temp folder (the picker draws the boxes and numbers, once), and every candidate's box as data,
numbered the way `indices` counts."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import comfy_harness as harness


def t1_photo() -> np.ndarray:
    spec = importlib.util.find_spec("insightface")
    if spec is None:
        pytest.fail("insightface is not installed; its wheel ships the 6-face photo t1.jpg used here")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / "t1.jpg"
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


def as_image(*arrays: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([a.astype(np.float32) / 255.0 for a in arrays]))


@pytest.fixture(scope="module")
def detect(comfy):
    return comfy.nodes.NODE_CLASS_MAPPINGS["GPENDetectFaces"]()


def preview_path(comfy, ref: dict) -> Path:
    assert ref["type"] == "temp"
    return Path(comfy.folder_paths.get_temp_directory()) / ref["subfolder"] / ref["filename"]


def test_preview_numbers_every_face_as_data_and_leaves_the_picture_unmarked(comfy, detect):
    photo = t1_photo()
    out = detect.detect(as_image(photo), order="left-right", indices="1,3")
    ui, (faces, _) = out["ui"], out["result"]
    assert comfy.nodes.NODE_CLASS_MAPPINGS["GPENDetectFaces"].OUTPUT_NODE is True
    assert "images" not in ui  # the editor's stock preview would show the picture a second time
    (data,) = ui["gpen_faces"]
    ref = data["preview"]
    assert (data["width"], data["height"]) == (photo.shape[1], photo.shape[0])
    listed = data["faces"]
    assert [f["index"] for f in listed] == list(range(6))
    centres = [(f["box"][0] + f["box"][2]) / 2 for f in listed]
    assert centres == sorted(centres)  # numbered left to right, as `indices` counts them
    assert [f["index"] for f in listed if f["selected"]] == [1, 3]
    chosen = [[round(float(v), 1) for v in face.box] for face in faces[0]]
    assert chosen == [listed[1]["box"], listed[3]["box"]]

    png = harness.read_png(preview_path(comfy, ref))
    scale = 1024 / photo.shape[1]  # long side capped at 1024 px
    assert png.shape == (round(photo.shape[0] * scale), 1024, 3)
    small = cv2.resize(photo, (png.shape[1], png.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(png.astype(int) - small.astype(int)).max() <= 1  # no box or number baked in
    assert "2 face(s)" in ui["text"][0]


def test_largest_numbers_by_size_and_keeps_one(comfy, detect):
    out = detect.detect(as_image(t1_photo()), order="largest")
    listed = out["ui"]["gpen_faces"][0]["faces"]
    areas = [(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) for f in listed]
    assert areas == sorted(areas, reverse=True)
    assert [f["index"] for f in listed if f["selected"]] == [0]


def test_a_long_batch_previews_its_first_images_only(comfy, detect):
    blank = harness.faceless_image(48, 64)
    out = detect.detect(as_image(*[blank] * 10))
    assert len(out["result"][0]) == 10
    assert [entry["image"] for entry in out["ui"]["gpen_faces"]] == list(range(8))
    assert all(entry["faces"] == [] for entry in out["ui"]["gpen_faces"])
    assert all(preview_path(comfy, entry["preview"]).is_file() for entry in out["ui"]["gpen_faces"])
