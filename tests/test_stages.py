"""The four stages every front end calls (gpen_pipeline/stages.py), each on its own, with real
parts: the bundled detector, the fixture models and skimage's photos."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import skimage.color
import torch

from gpen_pipeline import EnhanceOptions, enhance_images
from gpen_pipeline.face import Face
from gpen_pipeline.options import FACES_HELD, PasteOptions
from gpen_pipeline.parsenet import ParseNetForward
from gpen_pipeline.stages import align_faces, face_paste_masks, find_faces, paste_back, restore_faces


def host(image) -> np.ndarray:
    """A stage's image or mask as a numpy array, wherever it was."""
    return image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)


@pytest.fixture(scope="module")
def astronaut_face(astronaut, detector):
    """The one face the detector finds in the astronaut photo."""
    found = find_faces(astronaut, detector)
    assert len(found.selected) == 1
    return found.selected[0]


@pytest.fixture(scope="module")
def restored_astronaut(astronaut, astronaut_face, s64_model):
    """The astronaut's face aligned and restored by the s64 model: RestoredFace records of one image."""
    aligned, _ = align_faces(astronaut, [astronaut_face], s64_model.size)
    return restore_faces(s64_model, [astronaut], [aligned])[0]


@pytest.fixture(scope="module")
def grey_astronaut(astronaut):
    """The astronaut as a black-and-white photo: three equal channels."""
    grey = np.round(skimage.color.rgb2gray(astronaut) * 255).astype(np.uint8)
    return np.dstack([grey] * 3)


# --------------------------------------------------------------------------- restore_faces


def test_faces_of_a_run_of_frames_are_restored_together_in_chunks_and_come_back_per_frame(
        astronaut, detector, s64_model):
    # One face a frame, each frame a shade darker than the one before, and a frame without a face among them.
    frames = [np.round(astronaut * (1.0 - i / 40)).astype(np.uint8) for i in range(FACES_HELD + 3)]
    frames.insert(4, np.zeros_like(astronaut))
    aligned = [align_faces(frame, find_faces(frame, detector).selected, s64_model.size)[0] for frame in frames]
    assert [len(faces) for faces in aligned] == [1] * 4 + [0] + [1] * (FACES_HELD - 1)

    chunks = []
    records = restore_faces(s64_model, frames, aligned, progress=chunks.append)

    # The faces of many frames go through together: a full chunk first, then the rest.
    assert chunks == [FACES_HELD, 3]
    assert [len(faces) for faces in records] == [len(faces) for faces in aligned]
    for faces, asked in zip(records, aligned):
        assert [face.aligned for face in faces] == asked
    # Each record holds its own frame's face: the crops darken frame after frame, as the frames do.
    brightness = [float(faces[0].original.float().mean()) for faces in records if faces]
    assert all(earlier > later for earlier, later in zip(brightness, brightness[1:]))
    # ...and is the face that frame gives when restored on its own.
    for index in (0, 5, len(frames) - 1):
        alone = restore_faces(s64_model, [frames[index]], [aligned[index]])[0][0]
        assert torch.equal(alone.original, records[index][0].original)
        assert (alone.restored.int() - records[index][0].restored.int()).abs().max() <= 1


def test_inpaint_without_a_damage_mask_is_refused(astronaut, astronaut_face, s64_model):
    aligned, _ = align_faces(astronaut, [astronaut_face], s64_model.size)
    with pytest.raises(ValueError, match="damage mask"):
        restore_faces(s64_model, [astronaut], [aligned], task="inpaint")
    with pytest.raises(ValueError, match="damage mask"):
        restore_faces(s64_model, [astronaut], [aligned], task="inpaint", damage=[None])


# --------------------------------------------------------------------------- paste_back


@pytest.mark.parametrize("faces, strength", [("none", 1.0), ("restored", 0.0)], ids=["without-faces", "strength-0"])
def test_paste_back_without_faces_or_at_strength_0_returns_the_image_unchanged(astronaut, restored_astronaut,
                                                                               faces, strength):
    restored = restored_astronaut if faces == "restored" else []
    result = paste_back(astronaut, restored, PasteOptions(strength=strength))
    np.testing.assert_array_equal(host(result.image), astronaut)
    assert host(result.mask).shape == astronaut.shape[:2] and not host(result.mask).any()


def test_pasting_changes_the_face_and_nothing_outside_the_mask(astronaut, restored_astronaut):
    """The other side of the test above: with a face at full strength the image does change."""
    result = paste_back(astronaut, restored_astronaut, PasteOptions(mask_mode="box"))
    image, mask = host(result.image), host(result.mask)
    assert (mask > 0).sum() > 2000
    np.testing.assert_array_equal(image[mask == 0], astronaut[mask == 0])
    assert np.abs(image.astype(int) - astronaut)[mask > 0.5].mean() > 5


def test_a_colorized_face_stays_in_colour_in_a_black_and_white_photo_and_a_restored_one_turns_grey(
        grey_astronaut, astronaut_face, s64_model):
    aligned, _ = align_faces(grey_astronaut, [astronaut_face], s64_model.size)
    colorized = restore_faces(s64_model, [grey_astronaut], [aligned], task="colorize")[0]
    assert [face.task for face in colorized] == ["colorize"]
    options = PasteOptions(keep_gray="auto")

    pasted = paste_back(grey_astronaut, colorized, options)
    image, under = host(pasted.image).astype(int), host(pasted.mask) > 0.5
    assert under.sum() > 2000
    assert np.ptp(image[under], axis=1).mean() > 10  # the network's colours, not grey

    # The very same crops as a restored face: "auto" sees a black-and-white photo and re-greys them.
    restored = [dataclasses.replace(face, task="restore") for face in colorized]
    regreyed = paste_back(grey_astronaut, restored, options)
    image = host(regreyed.image).astype(int)
    assert np.array_equal(host(regreyed.mask) > 0.5, under)
    assert np.ptp(image, axis=2).max() == 0  # every pixel grey, the face's included
    assert np.abs(image[..., 0] - grey_astronaut[..., 0])[under].mean() > 5  # and the face was pasted


def test_parse_mask_mode_without_a_face_parser_is_refused_naming_the_parser_file(astronaut, restored_astronaut):
    with pytest.raises(ValueError, match=r"parsing_(parsenet|bisenet)\.pth"):
        paste_back(astronaut, restored_astronaut, PasteOptions(mask_mode="parse"), parser=None)


def test_a_region_mask_of_another_size_is_refused_naming_both_sizes(astronaut, restored_astronaut):
    with pytest.raises(ValueError) as refused:
        paste_back(astronaut, restored_astronaut, region_mask=np.ones((100, 200), np.float32))
    message = str(refused.value)
    assert re.search(r"\b200\D{1,3}100\b|\b100\D{1,3}200\b", message), message  # the mask's size
    assert re.search(r"\b512\D{1,3}512\b", message), message  # the image's


# --------------------------------------------------------------------------- align_faces


def test_align_faces_skips_a_degenerate_face_and_notes_it_and_the_nan_pixels(astronaut, astronaut_face):
    image = astronaut.astype(np.float32) / 255
    image[0, 0] = np.nan  # three values
    image[-1, -1, 0] = np.inf  # and a fourth
    flat = Face((290.0, 290.0, 310.0, 310.0), 0.98, np.full((5, 2), 300.0, np.float32))  # five points in one

    aligned, notes = align_faces(image, [astronaut_face, flat], 64)

    assert [face.face for face in aligned] == [astronaut_face]
    assert aligned[0].size == 64 and aligned[0].image_size == (512, 512)
    skipped = [note for note in notes if "skipped" in note]
    assert len(skipped) == 1 and "290" in skipped[0] and "310" in skipped[0], notes
    assert any("NaN" in note and re.search(r"\b4\b", note) for note in notes), notes


def test_align_faces_has_no_notes_for_a_clean_photo(astronaut, astronaut_face):
    aligned, notes = align_faces(astronaut, [astronaut_face], 64)
    assert len(aligned) == 1 and notes == []


# --------------------------------------------------------------------------- enhance_images


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_enhance_images_gives_tensors_for_tensors_and_arrays_for_arrays_with_the_same_pixels(
        astronaut, detector, s64_model, dtype):
    array = astronaut.copy() if dtype == np.uint8 else astronaut.astype(np.float32) / 255
    tensor = torch.from_numpy(array.copy())

    from_array = enhance_images([array], s64_model, detector, EnhanceOptions())[0]
    from_tensor = enhance_images([tensor], s64_model, detector, EnhanceOptions())[0]

    assert isinstance(from_array.image, np.ndarray) and isinstance(from_array.mask, np.ndarray)
    assert isinstance(from_tensor.image, torch.Tensor) and isinstance(from_tensor.mask, torch.Tensor)
    assert len(from_array.faces) == len(from_tensor.faces) == 1
    assert from_tensor.image.dtype == tensor.dtype and from_tensor.image.shape == tensor.shape
    np.testing.assert_array_equal(from_tensor.image.numpy(), from_array.image)
    np.testing.assert_array_equal(from_tensor.mask.numpy(), from_array.mask)
    assert (from_array.mask > 0).any() and not np.array_equal(from_array.image, array)  # a face was restored


def test_official_masks_are_parsed_in_float32_and_parse_masks_by_the_parsers_fast_forward(restored_astronaut,
                                                                                          narrow_parser):
    weights = narrow_parser.forward.weights
    parser = dataclasses.replace(narrow_parser, forward=ParseNetForward(weights),
                                 fast=ParseNetForward(weights, dtype=torch.bfloat16))
    exact_only = dataclasses.replace(parser, fast=None)
    official = PasteOptions(mask_mode="official")
    assert torch.equal(face_paste_masks(restored_astronaut, official, parser),
                       face_paste_masks(restored_astronaut, official, exact_only))
    assert parser.fast.workspace_bytes == 0  # never run
    parse = PasteOptions(mask_mode="parse")
    fast_masks = face_paste_masks(restored_astronaut, parse, parser)
    assert parser.fast.workspace_bytes > 0
    # The narrow random parser is near a tie at every pixel, so bf16 shows in its mask.
    assert not torch.equal(fast_masks, face_paste_masks(restored_astronaut, parse, exact_only))


def test_a_clips_tracked_faces_are_parsed_in_float32_even_where_the_parser_has_a_fast_forward(restored_astronaut,
                                                                                              narrow_parser):
    from gpen_pipeline import TrackMemory

    weights = narrow_parser.forward.weights
    parser = dataclasses.replace(narrow_parser, forward=ParseNetForward(weights),
                                 fast=ParseNetForward(weights, dtype=torch.bfloat16))
    tracked = [dataclasses.replace(face, aligned=dataclasses.replace(
        face.aligned, face=dataclasses.replace(face.aligned.face, track=0))) for face in restored_astronaut]
    parse = PasteOptions(mask_mode="parse")
    masks = face_paste_masks(tracked, parse, parser, TrackMemory.for_smoothing(0.5))
    assert parser.fast.workspace_bytes == 0
    assert torch.equal(masks, face_paste_masks(tracked, parse, dataclasses.replace(parser, fast=None),
                                               TrackMemory.for_smoothing(0.5)))
    face_paste_masks(restored_astronaut, parse, parser, TrackMemory.for_smoothing(0.5))  # untracked: a photo's
    assert parser.fast.workspace_bytes > 0
