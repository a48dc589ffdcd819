"""The paste's blends and finishes: multi-band, the photo's grain, colour judged on the skin."""
import numpy as np
import pytest
import torch

from gpen_pipeline import PasteOptions, RestoredFace, align_faces, find_faces, paste_back
from gpen_pipeline.blend import mix, noise_level
from gpen_pipeline.cut import as_tensor, cut_crops
from gpen_pipeline.masks import skin_weight

SIZE = 128


@pytest.fixture(scope="module")
def grainy(astronaut):
    """The astronaut with sensor-like noise (deviation 8 levels)."""
    rng = np.random.default_rng(3)
    return np.clip(astronaut + rng.normal(0.0, 8.0, astronaut.shape), 0, 255).astype(np.uint8)


def _faces(photo, detector, restore) -> list[RestoredFace]:
    aligned, _ = align_faces(photo, find_faces(photo, detector).selected, SIZE)
    crops = cut_crops(as_tensor(photo), [a.affine for a in aligned], SIZE)
    return [RestoredFace(a, restore(c), c) for a, c in zip(aligned, crops)]


def _smoothed(crop: torch.Tensor) -> torch.Tensor:
    """A 'restorer' that removes the grain: a 5x5 box blur."""
    blurred = torch.nn.functional.avg_pool2d(crop[None].float(), 5, stride=1, padding=2, count_include_pad=False)
    return blurred[0].round().to(torch.uint8)


def _noise(image: np.ndarray, where: np.ndarray) -> float:
    return float(noise_level(torch.from_numpy(image).permute(2, 0, 1).float(), torch.from_numpy(where)).mean())


def test_multiband_on_a_flat_image_adds_nothing():
    base = torch.full((3, 60, 80), 128.0)
    weight = torch.rand((60, 80))
    assert torch.equal(mix(base.clone(), base.clone(), weight, "multiband", 40.0), base)


def test_multiband_is_the_feathered_blend_where_the_mask_is_flat():
    base, face = torch.rand((3, 64, 64)) * 255, torch.rand((3, 64, 64)) * 255
    for value in (0.0, 1.0):
        weight = torch.full((64, 64), value)
        np.testing.assert_allclose(mix(base.clone(), face, weight, "multiband", 30.0).numpy(),
                                   torch.lerp(base, face, weight).numpy(), atol=1e-3)


@pytest.mark.parametrize("options", [PasteOptions(blend="multiband"), PasteOptions(grain=True),
                                     PasteOptions(mask_mode="box", blend="multiband", grain=True, color_match=True)])
def test_new_finishes_leave_every_pixel_outside_the_mask_untouched(grainy, detector, options):
    faces = _faces(grainy, detector, _smoothed)
    result = paste_back(grainy, faces, options)
    outside = result.mask.numpy() == 0
    assert outside.any() and (~outside).sum() > 5000
    np.testing.assert_array_equal(result.image.numpy()[outside], grainy[outside])


def test_grain_brings_a_clean_face_back_to_the_photos_noise(grainy, detector):
    faces = _faces(grainy, detector, _smoothed)
    plain = paste_back(grainy, faces, PasteOptions())
    inside = plain.mask.numpy() > 0.95
    photo = _noise(grainy, inside)
    assert _noise(plain.image.numpy(), inside) < 0.6 * photo  # the restorer took the grain away
    grained = paste_back(grainy, faces, PasteOptions(grain=True)).image.numpy()
    assert 0.8 * photo <= _noise(grained, inside) <= 1.2 * photo
    np.testing.assert_array_equal(paste_back(grainy, faces, PasteOptions(grain=True)).image.numpy(), grained)


def test_grain_never_makes_a_face_noisier_than_the_photo(grainy, detector):
    faces = _faces(grainy, detector, lambda crop: crop)  # as noisy as the photo, but for the warps' smoothing
    result = paste_back(grainy, faces, PasteOptions(grain=True))
    inside = result.mask.numpy() > 0.95
    assert _noise(result.image.numpy(), inside) <= 1.2 * _noise(grainy, inside)


def test_grain_is_not_added_to_a_clean_photo(astronaut, detector):
    faces = _faces(astronaut, detector, lambda crop: crop)
    plain = paste_back(astronaut, faces, PasteOptions()).image.numpy()
    grained = paste_back(astronaut, faces, PasteOptions(grain=True)).image.numpy()
    assert np.abs(grained.astype(int) - plain).mean() < 0.5


def test_colour_match_undoes_a_tone_shift_up_to_the_masks_edge(astronaut, detector):
    def warmer(crop):
        return (crop.int() + torch.tensor([14, 4, -8])[:, None, None]).clamp(0, 255).to(torch.uint8)

    faces = _faces(astronaut, detector, warmer)
    result = paste_back(astronaut, faces, PasteOptions(color_match=True))
    mask = result.mask.numpy()
    for where in (mask > 0.95, (mask > 0.3) & (mask < 0.7)):  # the face, and where the mask crosses over
        shift = result.image.numpy()[where].astype(float).mean(0) - astronaut[where].astype(float).mean(0)
        assert np.abs(shift).max() < 2.0, shift


def test_skin_weight_covers_the_face_between_the_eyes_and_the_chin(astronaut, detector):
    aligned, _ = align_faces(astronaut, find_faces(astronaut, detector).selected, SIZE)
    weight = skin_weight(aligned[0], SIZE)
    points = (np.c_[aligned[0].face.landmarks, np.ones(5)] @ aligned[0].affine.T).round().astype(int)
    nose_x, nose_y = points[2]
    assert weight[nose_y, nose_x] == 1.0
    assert weight[0, 0] == 0.0 and weight[-1, -1] == 0.0  # the crop's corners: background
    assert 0.08 < (weight > 0.5).mean() < 0.5
