"""The GPEN nodes in a real ComfyUI imported in-process: registration, the four-node
chain and the one-node restore on a real photo with the tiny real GPEN fixture,
pass-through, alpha, masks, progress, interrupts and errors."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import comfy_harness as harness

CLASS_NAMES = {"GPENLoadModel": "LoadGPENModel", "GPENDetectFaces": "DetectFaces",
               "GPENRestoreFaces": "RestoreFaces", "GPENPasteBack": "PasteBack", "GPENFaceRestore": "FaceRestore"}
MODEL = "GPEN-tiny-64.pth"


def node(comfy, node_id):
    return comfy.nodes.NODE_CLASS_MAPPINGS[node_id]()


def as_image(*arrays: np.ndarray) -> torch.Tensor:
    """uint8 HxWxC arrays -> a ComfyUI IMAGE batch, the way LoadImage converts."""
    return torch.from_numpy(np.stack([a.astype(np.float32) / 255.0 for a in arrays]))


@pytest.fixture(scope="module")
def photo():
    return harness.face_photo(256)


@pytest.fixture(scope="module")
def gpen(comfy):
    return node(comfy, "GPENLoadModel").load(MODEL, "auto", "auto")["result"][0]


def run_chain(comfy, gpen, image, mask_mode="box", **paste):
    faces = node(comfy, "GPENDetectFaces").detect(image)["result"][0]
    restored, crops, originals = node(comfy, "GPENRestoreFaces").restore(gpen, image, faces)["result"]
    out, mask, *_ = node(comfy, "GPENPasteBack").paste(image, restored, mask_mode=mask_mode, **paste)["result"]
    return faces, restored, crops, originals, out, mask


# --------------------------------------------------------------------------- registration


def test_nodes_are_registered_with_ids_names_and_category(comfy):
    mappings, names = comfy.nodes.NODE_CLASS_MAPPINGS, comfy.nodes.NODE_DISPLAY_NAME_MAPPINGS
    for node_id in harness.NODE_IDS:
        cls = mappings[node_id]
        assert cls.__name__ == CLASS_NAMES[node_id]
        assert cls.CATEGORY == "GPEN"
        assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 40
        assert names[node_id] and names[node_id] != node_id
        assert cls.RELATIVE_PYTHON_MODULE == f"custom_nodes.{harness.PACK_NAME}"
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)


@pytest.mark.parametrize("node_id", harness.NODE_IDS)
def test_every_input_has_a_tooltip_and_a_default(comfy, node_id):
    spec = comfy.nodes.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            options = entry[1] if len(entry) > 1 else {}
            assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
            kind = entry[0]
            if kind in ("INT", "FLOAT", "STRING", "BOOLEAN") or (isinstance(kind, list) and name != "model_name"):
                assert "default" in options, f"{node_id}.{name} widget has no default"


# The widgets a node shows before "Show advanced inputs" (frontends from 1.49 on; older ones show all).
SHOWN_WIDGETS = {
    "GPENFaceRestore": ["model_name", "strength", "detector", "threshold", "max_faces", "mask_mode", "color_match"],
    "GPENPasteBack": ["mask_mode", "strength", "feather", "grow", "color_match", "keep_gray"],
    "GPENDetectFaces": ["detector", "threshold", "order", "indices", "min_size", "max_faces"],
}


@pytest.mark.parametrize("node_id", sorted(SHOWN_WIDGETS))
def test_rarely_changed_widgets_are_advanced_inputs_in_their_old_places(comfy, node_id):
    spec = comfy.nodes.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    widgets = harness.widget_inputs(spec)
    shown = [name for name, entry in widgets if not entry[1].get("advanced")]
    assert shown == SHOWN_WIDGETS[node_id]
    assert [name for name, _ in widgets][:len(shown)] == shown  # advanced ones only after: nothing moved
    sockets = [entry for section in spec.values() for entry in section.values()
               if not isinstance(entry[0], list) and entry[0] not in harness.WIDGET_TYPES]
    assert sockets and not any(entry[1].get("advanced") for entry in sockets)  # links stay in sight


@pytest.mark.parametrize("node_id", harness.NODE_IDS)
def test_every_node_can_be_found_by_what_it_does(comfy, node_id):
    aliases = comfy.nodes.NODE_CLASS_MAPPINGS[node_id].SEARCH_ALIASES
    assert aliases and all(isinstance(alias, str) and alias == alias.lower() for alias in aliases)


# --------------------------------------------------------------------------- the chain


def test_four_node_chain_restores_the_face_and_leaves_the_rest(comfy, gpen, photo):
    image = as_image(photo)
    faces, restored, crops, originals, out, mask = run_chain(comfy, gpen, image)
    assert len(faces) == 1 and len(faces[0]) == 1
    x1, y1, x2, y2 = faces[0][0].box
    assert 60 < (x1 + x2) / 2 < 160 and 20 < (y1 + y2) / 2 < 110  # the astronaut's face
    assert crops.shape == originals.shape == (1, 64, 64, 3)
    assert out.shape == image.shape and out.dtype == torch.float32 and mask.shape == (1, 256, 256)

    untouched = mask[0] == 0
    assert torch.equal(out[0][untouched], image[0][untouched])  # not a pixel lost outside the mask
    centre = (int((y1 + y2) / 2), int((x1 + x2) / 2))
    assert mask[0][centre] > 0.9
    assert (out[0] - image[0]).abs()[~untouched].max() > 0.05  # the face itself did change
    assert 0 < untouched.logical_not().float().mean() < 0.25


def test_one_node_matches_the_chain(comfy, gpen, photo):
    image = as_image(photo)
    *_, out, mask = run_chain(comfy, gpen, image, mask_mode="box", strength=0.8)
    one_out, one_mask, *_ = node(comfy, "GPENFaceRestore").restore(
        image, MODEL, strength=0.8, mask_mode="box")["result"]
    assert torch.equal(one_out, out) and torch.equal(one_mask, mask)


def test_image_without_faces_passes_through_bit_exact(comfy, gpen, caplog):
    image = as_image(harness.faceless_image())
    with caplog.at_level(logging.INFO, logger="GPEN"):
        *_, crops, originals, out, mask = run_chain(comfy, gpen, image, mask_mode="official")
        one_out, one_mask, *_ = node(comfy, "GPENFaceRestore").restore(image, MODEL)["result"]
    assert crops.shape == (0, 64, 64, 3)
    assert torch.equal(out, image) and torch.equal(one_out, image)
    assert not mask.any() and not one_mask.any()
    assert "passed through unchanged" in caplog.text


def test_batch_mixes_faces_and_no_faces(comfy, gpen, photo):
    plain = harness.faceless_image(256, 256)
    image = as_image(photo, plain)
    faces, restored, crops, _, out, mask = run_chain(comfy, gpen, image)
    assert [len(f) for f in faces] == [1, 0] and crops.shape[0] == 1
    assert torch.equal(out[1], image[1]) and not mask[1].any()
    assert not torch.equal(out[0], image[0])


def test_alpha_channel_is_kept(comfy, gpen, photo):
    alpha = np.tile(np.linspace(0, 255, 256, dtype=np.float32).astype(np.uint8)[None, :, None], (256, 1, 1))
    image = as_image(np.concatenate([photo, alpha], axis=-1))
    *_, out, mask = run_chain(comfy, gpen, image)
    assert out.shape == (1, 256, 256, 4)
    assert torch.equal(out[..., 3], image[..., 3])
    assert mask.any() and not torch.equal(out[..., :3], image[..., :3])


def test_official_mode_without_parser_falls_back_and_says_so(comfy, gpen, photo, caplog):
    with caplog.at_level(logging.INFO, logger="GPEN"):
        *_, out, mask = run_chain(comfy, gpen, as_image(photo), mask_mode="official")
    assert mask.any()
    assert "parsing_parsenet.pth" in caplog.text and "rectangle" in caplog.text


def test_parse_mode_without_parser_is_an_error_naming_the_file(comfy, gpen, photo):
    image = as_image(photo)
    faces = node(comfy, "GPENDetectFaces").detect(image)["result"][0]
    restored = node(comfy, "GPENRestoreFaces").restore(gpen, image, faces)["result"][0]
    with pytest.raises(FileNotFoundError, match="parsing_parsenet.pth"):
        node(comfy, "GPENPasteBack").paste(image, restored, mask_mode="parse")


# --------------------------------------------------------------------------- masks and options


@pytest.mark.parametrize("shape", ["HW", "BHW"])
def test_region_mask_limits_the_paste(comfy, gpen, photo, shape):
    image = as_image(photo)
    region = torch.zeros((256, 256))
    region[:, :112] = 1.0  # the left part of the face only
    if shape == "BHW":
        region = region[None]
    *_, out, mask = run_chain(comfy, gpen, image, region_mask=region)
    assert torch.equal(out[0, :, 112:], image[0, :, 112:])
    assert mask[0, :, :112].any() and not mask[0, :, 112:].any()


def test_region_mask_of_another_size_is_refused(comfy, gpen, photo):
    with pytest.raises(ValueError, match="region_mask is 64x64 but the image is 256x256"):
        run_chain(comfy, gpen, as_image(photo), region_mask=torch.ones((1, 64, 64)))


def test_strength_zero_changes_nothing(comfy, gpen, photo):
    image = as_image(photo)
    *_, out, _ = run_chain(comfy, gpen, image, strength=0.0)
    assert torch.equal(out, image)


def test_faces_from_another_batch_are_refused(comfy, gpen, photo):
    image = as_image(photo)
    faces = node(comfy, "GPENDetectFaces").detect(image)["result"][0]
    with pytest.raises(ValueError, match="batch of 1 images but the image input has 2"):
        node(comfy, "GPENRestoreFaces").restore(gpen, as_image(photo, photo), faces)


def test_selection_options_and_index_validation(comfy, photo):
    detect = node(comfy, "GPENDetectFaces")
    image = as_image(photo)
    assert len(detect.detect(image, indices="1")["result"][0][0]) == 0  # only one face: position 1 is empty
    assert len(detect.detect(image, min_size=200)["result"][0][0]) == 0
    cls = comfy.nodes.NODE_CLASS_MAPPINGS["GPENDetectFaces"]
    assert cls.VALIDATE_INPUTS(indices="0,2") is True
    message = cls.VALIDATE_INPUTS(indices="first")
    assert isinstance(message, str) and "'first'" in message


def test_colorization_model_keeps_its_colours_on_a_gray_photo(comfy, photo):
    harness.put_model(comfy.base / "models" / "facerestore", "GPEN-Colorization-tiny.pth")
    handle = node(comfy, "GPENLoadModel").load("GPEN-Colorization-tiny.pth", "cpu", "fp32")["result"][0]
    assert handle.model.task == "colorize"
    gray = np.repeat(photo.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    image = as_image(gray)
    *_, out, mask = run_chain(comfy, handle, image)
    face = out[0][mask[0] > 0.99]
    assert (face.max(dim=-1).values - face.min(dim=-1).values).max() > 0.02  # not re-greyed


def test_inpainting_model_needs_a_mask(comfy, photo):
    harness.put_model(comfy.base / "models" / "facerestore", "GPEN-Inpainting-tiny.pth")
    handle = node(comfy, "GPENLoadModel").load("GPEN-Inpainting-tiny.pth", "cpu", "fp32")["result"][0]
    image = as_image(photo)
    faces = node(comfy, "GPENDetectFaces").detect(image)["result"][0]
    restore = node(comfy, "GPENRestoreFaces")
    with pytest.raises(ValueError, match="inpaint_mask"):
        restore.restore(handle, image, faces)
    damage = torch.zeros((1, 256, 256))
    damage[0, 40:70, 90:130] = 1.0
    restored, crops, originals = restore.restore(handle, image, faces, inpaint_mask=damage)["result"]
    assert crops.shape == (1, 64, 64, 3) and restored[0][0].task == "inpaint"


# --------------------------------------------------------------------------- ComfyUI integration


def test_progress_is_reported_through_comfy(comfy, gpen, photo):
    calls = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: calls.append((value, total)))
    try:
        node(comfy, "GPENFaceRestore").restore(as_image(photo, photo), MODEL)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    assert calls, "no progress was reported"
    assert calls[-1][0] == calls[-1][1] == 2 + 2 + 2  # 2 detections, 2 faces, 2 pastes
    assert [v for v, _ in calls] == sorted(v for v, _ in calls)


def test_interrupt_stops_the_node(comfy, photo):
    comfy.mm.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.mm.InterruptProcessingException):
            node(comfy, "GPENFaceRestore").restore(as_image(photo), MODEL)
    finally:
        comfy.mm.interrupt_current_processing(False)
    assert not comfy.mm.processing_interrupted()


def test_restore_loads_the_model_through_comfy_memory_management(comfy, gpen, photo):
    comfy.mm.unload_all_models()
    assert not any(p is gpen.patcher for p in comfy.mm.loaded_models())
    run_chain(comfy, gpen, as_image(photo))
    assert any(p is gpen.patcher for p in comfy.mm.loaded_models())


def test_faces_found_on_a_small_copy_restore_the_large_image(comfy, gpen, photo):
    import cv2

    small = as_image(cv2.resize(photo, (128, 128), interpolation=cv2.INTER_AREA))
    large = as_image(photo)
    faces = node(comfy, "GPENDetectFaces").detect(small)["result"][0]
    assert faces.image_size == (128, 128)
    restored = node(comfy, "GPENRestoreFaces").restore(gpen, large, faces)["result"][0]
    direct = node(comfy, "GPENDetectFaces").detect(large)["result"][0]
    scaled_box = np.array(restored[0][0].aligned.face.box)
    assert np.abs(scaled_box - np.array(direct[0][0].box)).max() < 8  # same face, in large-image pixels
    out, mask, *_ = node(comfy, "GPENPasteBack").paste(large, restored, mask_mode="box")["result"]
    assert out.shape == large.shape and mask[0].any()
    with pytest.raises(ValueError, match="not a resized copy"):
        node(comfy, "GPENRestoreFaces").restore(gpen, as_image(photo[:, :200]), faces)


# --------------------------------------------------------------------------- frame batches


def noisy_frames(photo: np.ndarray, count: int) -> list[np.ndarray]:
    """The photo `count` times, each with its own sensor noise: a still shot from a video."""
    rng = np.random.default_rng(7)
    return [np.clip(photo + rng.normal(0, 4, photo.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def test_a_frame_batch_is_tracked_and_smoothed_and_a_single_image_is_not(comfy, photo):
    detect = node(comfy, "GPENDetectFaces")
    clip = as_image(*noisy_frames(photo, 6))
    smoothed = detect.detect(clip, smoothing=1.0)
    apart = detect.detect(clip, smoothing=0.0)
    assert all([f.track for f in faces] == [0] for faces in smoothed["result"][0])
    assert all([f.track for f in faces] == [None] for faces in apart["result"][0])
    assert all([face["index"] for face in shown["faces"]] == [0] for shown in smoothed["ui"]["gpen_faces"])

    def shake(faces):
        return np.abs(np.diff([found[0].landmarks for found in faces], axis=0)).mean()

    assert shake(smoothed["result"][0]) < shake(apart["result"][0]) / 2

    alone = as_image(photo)
    one = detect.detect(alone, smoothing=1.0)["result"][0][0][0]
    assert one.track is None and np.array_equal(one.landmarks, detect.detect(alone, smoothing=0.0)["result"][0][0][0].landmarks)


def test_the_one_node_restores_a_still_clip_the_same_in_every_frame(comfy, photo):
    restore = node(comfy, "GPENFaceRestore")
    out, mask = restore.restore(as_image(photo, photo, photo), MODEL, mask_mode="box", smoothing=0.5)["result"][:2]
    single = restore.restore(as_image(photo), MODEL, mask_mode="box", smoothing=0.5)["result"][0]
    assert mask.amax() > 0.9 and all(torch.equal(frame, single[0]) for frame in out)
