"""GPENRestoreFaces: GPEN_MODEL + IMAGE + GPEN_FACES -> GPEN_RESTORED_FACES (+ crop previews)."""
from __future__ import annotations

import torch

from gpen_pipeline import COLORIZE_MODES, TASKS, align_faces, restore_faces

from . import common, tensors


def check_task(handle: common.GPENModelHandle, inpaint_mask) -> None:
    if handle.model.task not in TASKS:
        raise ValueError(f"{handle.name} is a GPEN {handle.model.task} model, which draws faces from segmentation "
                         "maps and cannot restore photos; choose a GPEN-BFR, Colorization or Inpainting file.")
    if handle.model.task == "inpaint" and inpaint_mask is None:
        raise ValueError(f"{handle.name} is a GPEN inpainting model: connect a MASK to 'inpaint_mask' "
                         "(white where the face is damaged).")


COLORIZE_INPUT = (list(COLORIZE_MODES), {
    "default": COLORIZE_MODES[0],
    "tooltip": "Colorization models only. keep-luminance: the photo's own tones with the network's colours, so "
               "the face keeps its look and matches the picture around it. official: the official script's "
               "output at the model's size, the network's own tones."})


def restore_batch(handle: common.GPENModelHandle, image: torch.Tensor, faces: common.DetectedFaces,
                  batch_size: int | None = None, inpaint_mask: torch.Tensor | None = None,
                  pbar=None, colorize: str = COLORIZE_MODES[0]) -> common.RestoredPerImage:
    """The align and restore stages on every image of the batch: the selected faces' records."""
    tensors.check_image_batch(image)
    tensors.check_faces_batch(faces, image.shape[0])
    check_task(handle, inpaint_mask)
    aligned, notes = [], []
    for index in range(image.shape[0]):
        records, said = align_faces(image[index], common.faces_in(faces, index, image.shape[1:3]),
                                     handle.model.size)
        aligned.append(records)
        notes.append(said)
    common.log_notes(notes)
    damage = None
    if inpaint_mask is not None:
        damage = [tensors.mask_for_image(inpaint_mask, i, image.shape[1:3], "inpaint_mask") for i in range(len(aligned))]
    count = sum(map(len, aligned))
    pbar = pbar or common.progress_bar(count)
    model = common.ready_model(handle, min(batch_size or 1, count)) if count else handle.model
    return restore_faces(model, [image[i] for i in range(image.shape[0])], aligned, handle.model.task, damage,
                         batch_size, pbar.update, common.check_interrupt, colorize)


def crops_tensor(restored: common.RestoredPerImage, size: int, original: bool = False) -> torch.Tensor:
    """All crops as one IMAGE batch (an empty [0, S, S, 3] batch when there are none)."""
    crops = [(face.original if original else face.restored) for faces in restored for face in faces]
    if not crops:
        return torch.zeros((0, size, size, 3), dtype=torch.float32, device=tensors.output_device())
    return tensors.crops_to_image(torch.stack(crops))


class RestoreFaces:
    DESCRIPTION = ("Cuts each selected face out along GPEN's own alignment, restores it with the GPEN model and "
                   "keeps where it came from for GPEN Paste Back. Colorization and Inpainting models work too.")
    CATEGORY = common.CATEGORY
    SEARCH_ALIASES = ["gpen", "restore faces", "face enhance"]
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
                "colorize": common.advanced(COLORIZE_INPUT),
            },
        }

    def restore(self, gpen_model, image, faces, batch_size=4, inpaint_mask=None, colorize=COLORIZE_MODES[0]):
        restored = restore_batch(gpen_model, image, faces, batch_size, inpaint_mask, colorize=colorize)
        count = sum(len(r) for r in restored)
        text = f"{count} face(s) restored with {gpen_model.name}"
        return {"ui": {"text": [text]},
                "result": (restored, crops_tensor(restored, gpen_model.model.size),
                           crops_tensor(restored, gpen_model.model.size, original=True))}
