"""detect -> align -> restore -> paste against the official FaceEnhancement fixture (pipeline.npz).

The fixture replaced the learned helpers with stand-ins (read pipeline.json):
detector -> the given dets/landms, parser -> parse_mask512_u8 whatever the
face, super-resolution -> cv2 bicubic x2. Everything else is official code.
"""
import json

import cv2
import numpy as np
import pytest
import torch

from gpen_pipeline.align import gpen_template
from gpen_pipeline.cut import as_tensor, cut_crops
from gpen_pipeline.face import Face, crops_from_numpy, crops_to_numpy
from gpen_pipeline.masks import paste_masks
from gpen_pipeline.paste import paste_faces
from reference_cv2 import align_face
from restore_arrays import restore_crops

THRESHOLD = 0.9  # FaceEnhancement.threshold
SIZE = 64  # in_size of the fixture run

torch.set_num_threads(1)


def _rgb(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bgr[..., ::-1])


@pytest.fixture(scope="module")
def fx(fixtures_dir):
    return np.load(fixtures_dir / "pipeline.npz")


def _faces(fx, scale: float = 1.0) -> list[Face]:
    """The stand-in detector's output; landms rows are x1..x5, y1..y5."""
    faces = [Face(tuple(float(v) for v in det[:4]), float(det[4]), lm.reshape(2, 5).T.astype(np.float32))
             for det, lm in zip(fx["dets"], fx["landms"])]
    return [f.scaled(scale) if scale != 1.0 else f for f in faces]


def _kept(faces):
    return [f for f in faces if f.score >= THRESHOLD]


def _assert_close_u8(ours: np.ndarray, official: np.ndarray) -> None:
    assert ours.shape == official.shape and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - official)
    assert diff.max() <= 1, f"max diff {diff.max()} at {int((diff > 1).sum())} px"


def test_fixture_is_what_the_json_says(fx, fixtures_dir):
    meta = json.loads((fixtures_dir / "pipeline.json").read_text())
    assert meta["in_size"] == SIZE and meta["n_faces_processed"] == 2
    faces = _faces(fx)
    assert len(faces) == 3 and len(_kept(faces)) == 2 and faces[2].score < THRESHOLD
    assert min(faces[1].width, faces[1].height) < 100 <= min(faces[0].width, faces[0].height)
    np.testing.assert_allclose(gpen_template(SIZE), fx["reference_5pts"], atol=1e-9)


@pytest.mark.parametrize("index", [0, 1])
def test_crops_and_inverse_transforms(fx, index):
    image = _rgb(fx["img_bgr_u8"])
    aligned, crop = align_face(image, _kept(_faces(fx))[index], SIZE)
    np.testing.assert_allclose(aligned.inverse, fx[f"face{index}_tfm_inv"], rtol=1e-6, atol=2e-5)
    _assert_close_u8(crop, _rgb(fx[f"face{index}_crop"]))
    cut = cut_crops(as_tensor(image), [aligned.affine], SIZE)[0]
    _assert_close_u8(crops_to_numpy(cut), _rgb(fx[f"face{index}_crop"]))


def _paste(fx, image: np.ndarray, aligned, enhanced, originals=None, strength: float = 1.0) -> np.ndarray:
    """The official paste (its parser stood in by the fixture's parse map) with the torch paste."""
    crop_masks = paste_masks("official", enhanced, lambda crop: fx["parse_mask512_u8"], None, 0.0)
    result = paste_faces(as_tensor(image), aligned, crops_from_numpy(enhanced), torch.from_numpy(crop_masks),
                         mode="official", strength=strength, originals=None if originals is None else crops_from_numpy(originals))
    assert result.mask.shape == image.shape[:2] and result.mask.dtype == torch.float32
    assert 0.0 <= result.mask.min() and result.mask.max() <= 1.0
    return result.image.numpy()


def _aligned_all(image, faces):
    pairs = [align_face(image, f, SIZE) for f in faces]
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.mark.parametrize("alpha, key", [(1.0, "out_alpha1"), (0.8, "out_alpha08")])
def test_paste_reproduces_official_output(fx, alpha, key):
    image = _rgb(fx["img_bgr_u8"])
    aligned, crops = _aligned_all(image, _kept(_faces(fx)))
    enhanced = [_rgb(fx[f"face{i}_enhanced"]) for i in range(2)]
    _assert_close_u8(_paste(fx, image, aligned, enhanced, crops, alpha), _rgb(fx[key]))


def test_whole_flow_with_the_s64_model(fx, s64_model):
    image = _rgb(fx["img_bgr_u8"])
    aligned, crops = _aligned_all(image, _kept(_faces(fx)))
    enhanced = restore_crops(s64_model, crops, round_output=False)  # the official FaceGAN truncates
    for i, face in enumerate(enhanced):
        assert np.abs(face.astype(int) - _rgb(fx[f"face{i}_enhanced"])).max() <= 1
    _assert_close_u8(_paste(fx, image, aligned, enhanced), _rgb(fx["out_alpha1"]))


def test_super_resolution_flow(fx, s64_model):
    """use_sr: detect and crop on the bilinear x2 image, paste onto the SR (bicubic x2) background."""
    image = _rgb(fx["img_bgr_u8"])
    h, w = image.shape[:2]
    background = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC)  # the SR stand-in
    upscaled = cv2.resize(image, (2 * w, 2 * h))  # official: img resized (bilinear) to the SR size
    faces = _kept(_faces(fx, scale=2.0))  # the stand-in detector returned the detections x2
    assert min(faces[1].width, faces[1].height) >= 100  # at x2 no face takes the small-face smoothing
    aligned, crops = _aligned_all(upscaled, faces)
    enhanced = restore_crops(s64_model, crops, round_output=False)
    _assert_close_u8(_paste(fx, background, aligned, enhanced), _rgb(fx["out_sr2"]))
