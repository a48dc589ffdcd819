"""The whole pipeline on whole images: detect -> select -> align -> restore -> paste."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from fixture_files import S64_MODEL_FILE, load_fixture_model
from gpen_pipeline import EnhanceOptions, PasteOptions, SelectOptions, enhance_image, enhance_images
from gpen_pipeline.options import FACES_HELD
from gpen_pipeline.detection import Detector


def fixed_detector(boxes, landmarks, scores, width=512):
    """A stand-in detector returning given faces (the official fixtures stub the detector the same way).

    Runners see the resized working copy of the image, so the given pixels are scaled to it."""
    def runner(_model, work, threshold):
        scale = work.shape[1] / width
        keep = np.asarray(scores) > threshold
        return (np.asarray(boxes, float)[keep] * scale, np.asarray(scores, float)[keep],
                np.asarray(landmarks, float)[keep] * scale)
    return Detector(name="fixed", model=None, source="test", device="cpu", runner=runner)


def test_astronaut_is_restored_and_nothing_outside_the_mask_changes(s256_model, detector):
    image = skimage.data.astronaut()
    result = enhance_image(image, s256_model, detector)
    assert len(result.faces) == 1 and len(result.crops) == 1
    assert result.image.shape == image.shape and result.image.dtype == image.dtype
    outside = result.mask == 0
    assert outside.mean() > 0.8
    np.testing.assert_array_equal(result.image[outside], image[outside])
    assert np.abs(result.image.astype(int) - image).max() > 20


def test_float_rgba_image_keeps_alpha_and_untouched_pixels_bit_for_bit(s256_model, detector):
    rgb = skimage.data.astronaut().astype(np.float32) / 255
    alpha = np.linspace(0, 1, 512 * 512, dtype=np.float32).reshape(512, 512, 1)
    image = np.concatenate([rgb, alpha], axis=2)
    result = enhance_image(image, s256_model, detector)
    assert result.image.dtype == np.float32 and result.image.shape == image.shape
    np.testing.assert_array_equal(result.image[..., 3], image[..., 3])
    outside = result.mask == 0
    np.testing.assert_array_equal(result.image[outside], image[outside])


def test_no_face_returns_the_very_same_image(s256_model, detector):
    image = skimage.data.coffee()
    result = enhance_image(image, s256_model, detector)
    assert result.faces == () and result.image is image
    assert not result.mask.any()


def test_a_batch_of_images_restores_each_with_its_own_faces(s256_model, detector):
    astronaut, coffee = skimage.data.astronaut(), skimage.data.coffee()
    results = enhance_images([astronaut, coffee, astronaut[:, ::-1].copy()], s256_model, detector)
    assert [len(r.faces) for r in results] == [1, 0, 1]
    single = enhance_image(astronaut, s256_model, detector)
    # Batched and single runs differ only by float rounding in the network.
    assert np.abs(results[0].image.astype(int) - single.image).max() <= 1
    assert results[1].image is coffee
    mirrored = results[2].faces[0].face.box
    assert abs((512 - mirrored[2]) - single.faces[0].face.box[0]) < 3


def test_degenerate_landmarks_skip_that_face_and_restore_the_others(s256_model):
    good = [[203, 101.5], [246, 103.5], [223, 127], [203, 141.5], [243, 141.5]]
    flat = [[300, 300]] * 5
    detector = fixed_detector([[180, 60, 270, 180], [290, 290, 310, 310]], [good, flat], [0.99, 0.98])
    result = enhance_image(skimage.data.astronaut(), s256_model, detector)
    assert len(result.faces) == 1
    assert any("skipped a face" in note for note in result.notes)


def test_selection_options_pick_faces(s256_model):
    photo = skimage.data.astronaut()
    left = [[203, 101.5], [246, 103.5], [223, 127], [203, 141.5], [243, 141.5]]
    right = [[x + 200, y + 250] for x, y in left]
    detector = fixed_detector([[180, 60, 270, 180], [380, 310, 470, 430]], [left, right], [0.95, 0.99])
    both = enhance_image(photo, s256_model, detector)
    assert len(both.faces) == 2
    second = enhance_image(photo, s256_model, detector,
                           EnhanceOptions(select=SelectOptions(order="left-right", indices="1")))
    assert len(second.faces) == 1 and second.faces[0].face.box[0] == 380
    strict = enhance_image(photo, s256_model, detector, EnhanceOptions(select=SelectOptions(threshold=0.97)))
    assert len(strict.faces) == 1 and strict.faces[0].face.score > 0.97


def test_colorize_keeps_the_photo_luminance(s256_model, detector):
    grey = np.repeat(skimage.color.rgb2gray(skimage.data.astronaut())[..., None] * 255, 3, axis=2).astype(np.uint8)
    result = enhance_image(grey, s256_model, detector,
                           EnhanceOptions(task="colorize", paste=PasteOptions(mask_mode="box")))
    assert len(result.faces) == 1
    out = result.image.astype(np.float32)
    luma = out @ np.array([0.299, 0.587, 0.114], np.float32)
    inside = result.mask > 0.99
    assert np.abs(luma[inside] - grey[..., 0][inside]).mean() < 3.0  # the photo's light, the network's colour
    assert np.ptp(out[inside], axis=1).mean() > 0.5  # channels differ: it is no longer grey


def test_inpaint_touches_only_the_face(s256_model, detector):
    photo = skimage.data.astronaut()
    damage = np.zeros(photo.shape[:2], np.float32)
    damage[110:130, 200:250] = 1.0
    result = enhance_image(photo, s256_model, detector, EnhanceOptions(task="inpaint"), inpaint_mask=damage)
    assert len(result.faces) == 1
    outside = result.mask == 0
    np.testing.assert_array_equal(result.image[outside], photo[outside])
    assert np.abs(result.image[110:130, 200:250].astype(int) - photo[110:130, 200:250]).mean() > 5


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="unknown task"):
        EnhanceOptions(task="sharpen")
    with pytest.raises(ValueError, match="strength"):
        PasteOptions(strength=2)
    with pytest.raises(ValueError, match="mask mode"):
        PasteOptions(mask_mode="circle")


def test_a_long_batch_gives_back_the_workspace_and_a_short_one_keeps_it(detector):
    model = load_fixture_model(S64_MODEL_FILE)  # its own: the shared models keep their workspace
    frame = skimage.data.astronaut()
    enhance_images([frame], model, detector)
    assert "_workspace" in model.network.__dict__  # one face: kept for the next call
    results = enhance_images([frame] * (FACES_HELD + 1), model, detector)
    assert sum(len(r.faces) for r in results) == FACES_HELD + 1
    assert "_workspace" not in model.network.__dict__  # freed before the pastes allocate their results
    again = enhance_images([frame], model, detector)  # the workspace is rebuilt: the same restoration
    assert np.array_equal(again[0].image, results[0].image)
