"""GPENRestoreFaces: GPEN_MODEL + IMAGE + GPEN_FACES -> GPEN_RESTORED_FACES (+ crop previews)."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from gpen_pipeline.align import DegenerateLandmarks, align_face
from gpen_pipeline.color import count_nonfinite
from gpen_pipeline.restore import TASKS, restore_crops

from . import common, tensors


def _face_mask_crop(mask: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """An image-space mask cut out like the face crop (outside the image: no damage)."""
    return cv2.warpAffine(mask.astype(np.float32), np.asarray(affine, np.float64), (size, size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def check_task(handle: common.GPENModelHandle, inpaint_mask) -> None:
    if handle.task not in TASKS:
        raise ValueError(f"{handle.name} is a GPEN {handle.task} model, which draws faces from segmentation "
                         "maps and cannot restore photos; choose a GPEN-BFR, Colorization or Inpainting file.")
    if handle.task == "inpaint" and inpaint_mask is None:
        raise ValueError(f"{handle.name} is a GPEN inpainting model: connect a MASK to 'inpaint_mask' "
                         "(white where the face is damaged).")


def restore_batch(handle: common.GPENModelHandle, image: torch.Tensor, faces: common.DetectedFaces,
                  batch_size: int = 4, inpaint_mask: torch.Tensor | None = None,
                  pbar=None) -> common.RestoredPerImage:
    """Align every selected face, run GPEN on the crops `batch_size` at a time, keep the records."""
    tensors.check_image_batch(image)
    tensors.check_faces_batch(faces, image.shape[0])
    check_task(handle, inpaint_mask)
    size = handle.size
    aligned, crops, damage, owner = [], [], [], []
    for index in range(len(faces)):
        pixels = tensors.image_to_numpy(image, index)
        invalid = count_nonfinite(pixels)
        if invalid:
            common.LOG.warning("[GPEN] image %d has %d NaN/infinite values (a node before this one misbehaved): "
                               "treated as black/white inside the faces, left as they are elsewhere", index, invalid)
        mask = tensors.mask_for_image(inpaint_mask, index, pixels.shape[:2], "inpaint_mask")
        for face in common.faces_in(faces, index, pixels.shape[:2]):
            try:
                record, crop = align_face(pixels, face, size)
            except DegenerateLandmarks as err:
                common.LOG.warning("[GPEN] image %d: skipped a face whose landmarks cannot be aligned (%s)",
                                   index, err)
                continue
            aligned.append(record)
            crops.append(crop)
            owner.append(index)
            if mask is not None:
                damage.append(_face_mask_crop(mask, record.affine, size))

    restored: list[np.ndarray] = []
    pbar = pbar or common.progress_bar(len(crops))
    if crops:
        model = common.ready_model(handle, min(batch_size, len(crops)))
        for start in range(0, len(crops), batch_size):
            common.check_interrupt()
            chunk = slice(start, start + batch_size)
            restored += restore_crops(model, crops[chunk], task=handle.task,
                                      inpaint_masks=damage[chunk] if damage else None, batch_size=batch_size)
            pbar.update(len(crops[chunk]))

    per_image: common.RestoredPerImage = [[] for _ in faces]
    for record, crop, out, index in zip(aligned, crops, restored, owner):
        per_image[index].append(common.RestoredFace(record, out, crop, handle.task))
    return per_image


def crops_tensor(restored: common.RestoredPerImage, size: int, original: bool = False) -> torch.Tensor:
    """All crops as one IMAGE batch (an empty [0, S, S, 3] batch when there are none)."""
    crops = [(r.original if original else r.restored) for faces in restored for r in faces]
    if not crops:
        return torch.zeros((0, size, size, 3), dtype=torch.float32, device=tensors.output_device())
    stacked = np.stack(crops).astype(np.float32) / 255.0
    return torch.from_numpy(stacked).to(tensors.output_device())


class RestoreFaces:
    DESCRIPTION = ("Cuts each selected face out along GPEN's own alignment, restores it with the GPEN model and "
                   "keeps where it came from for GPEN Paste Back. Colorization and Inpainting models work too.")
    CATEGORY = common.CATEGORY
    RETURN_TYPES = (common.RESTORED_TYPE, "IMAGE", "IMAGE")
    RETURN_NAMES = ("restored_faces", "restored_crops", "original_crops")
    OUTPUT_TOOLTIPS = (
        "The restored faces with their transforms, for GPEN Paste Back.",
        "Every restored face crop (model size), for previews.",
        "The same faces before restoration, aligned the same way.",
    )
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gpen_model": (common.MODEL_TYPE, {"tooltip": "A model from Load GPEN Model."}),
                "image": ("IMAGE", {"tooltip": "The images the faces were detected in, or a resized copy of them."}),
                "faces": (common.FACES_TYPE, {
                    "tooltip": "Faces from GPEN Detect Faces, found on these images or on a resized copy."}),
                "batch_size": ("INT", {
                    "default": 4, "min": 1, "max": 64, "step": 1,
                    "tooltip": "Faces per network call. Larger is faster on a GPU; it is halved "
                               "automatically when memory runs out."}),
            },
            "optional": {
                "inpaint_mask": ("MASK", {
                    "tooltip": "For GPEN-Inpainting models only: white where the face is damaged."}),
            },
        }

    def restore(self, gpen_model, image, faces, batch_size=4, inpaint_mask=None):
        restored = restore_batch(gpen_model, image, faces, batch_size, inpaint_mask)
        count = sum(len(r) for r in restored)
        text = f"{count} face(s) restored with {gpen_model.name}"
        return {"ui": {"text": [text]},
                "result": (restored, crops_tensor(restored, gpen_model.size),
                           crops_tensor(restored, gpen_model.size, original=True))}
