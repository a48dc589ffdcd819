"""GPENPasteBack: IMAGE + GPEN_RESTORED_FACES -> IMAGE, MASK (the blend weights used)."""
from __future__ import annotations

import torch

from gpen_pipeline import (BLENDS, FEATHER_RANGE, GROW_RANGE, KEEP_GRAY, MASK_MODES, SHARPNESS_LIMIT_RANGE,
                           PasteOptions, TrackMemory, TrackOptions, paste_guarded)
from gpen_pipeline.identity import IdentityCheck
from gpen_pipeline.values import number_in

from . import common, face_helpers, identity_inputs, tensors

# Saved workflows from before keep_gray took on/off still say yes/no.
_OLD_KEEP_GRAY = {"yes": "on", "no": "off"}


def paste_options(mask_mode: str = "official", strength: float = 1.0, feather: float = -1.0, grow: float = 0.0,
                  color_match: bool = False, keep_gray: str = "auto", blend: str = "feather",
                  match_grain: bool = False, sharpness_limit: float = 0.0) -> PasteOptions:
    """The node inputs as the pipeline's options (feather -1: the mask mode's own)."""
    feather = number_in("feather (-1: the mask mode's own)", feather, -1.0, FEATHER_RANGE[1])
    return PasteOptions(mask_mode=mask_mode, strength=strength, feather=None if feather < 0 else feather, grow=grow,
                        color_match=color_match, keep_gray=_OLD_KEEP_GRAY.get(keep_gray, keep_gray), blend=blend,
                        grain=match_grain, sharpness_limit=sharpness_limit)


# Appended as optional inputs, so workflows saved before them keep their widget order.
BLEND_INPUTS = {
    "blend": (list(BLENDS), {
        "default": "feather",
        "tooltip": "feather: one soft edge for everything. multiband: tone and colour fade over the whole "
                   "soft edge, fine detail over a narrow strip in its middle (no half-transparent double "
                   "texture)."}),
    "match_grain": ("BOOLEAN", {
        "default": False,
        "tooltip": "Give each restored face the grain the photo has at that place, so a clean face does not "
                   "look pasted onto a grainy or JPEG photo."}),
}

# After the identity inputs, the last ones added.
SHARPNESS_INPUT = ("FLOAT", {
    "default": 0.0, "min": 0.0, "max": SHARPNESS_LIMIT_RANGE[1], "step": 0.05,
    "tooltip": "Auto strength: lower a face's strength until it is at most this many times as sharp as the "
               f"photo around it (0: off; {SHARPNESS_LIMIT_RANGE[0]:g}-{SHARPNESS_LIMIT_RANGE[1]:g}, e.g. 1.5), so "
               "a crisp face does not look pasted into a soft photo."})


def paste_batch(image: torch.Tensor, restored: common.RestoredPerImage, options: PasteOptions = PasteOptions(),
                region_mask: torch.Tensor | None = None, pbar=None,
                identity: IdentityCheck | None = None) -> tuple[torch.Tensor, torch.Tensor, list]:
    """The paste stage on every image of the batch; images without faces come back bit for bit.
    Also, per image, how each face went in (PastedFace: strength used, identity kept with `identity`)."""
    tensors.check_image_batch(image)
    tensors.check_faces_batch(restored, image.shape[0], "restored faces")
    parser = None
    if options.mask_mode != "box" and any(restored):
        parser = face_helpers.get_parser(required=options.mask_mode == "parse")
        if parser is None:
            common.LOG.info("[GPEN] no face parser weights (parsing_parsenet.pth) in %s: pasting with "
                            "GPEN's soft rectangle instead of a face-shaped mask",
                            ", ".join(common.folder_list(common.DETECTOR_FOLDERS)))
    pbar = pbar or common.progress_bar(image.shape[0])
    device = tensors.output_device()
    # Filled image by image: collecting the results and stacking them would hold the batch twice.
    images = torch.empty(image.shape, dtype=image.dtype, device=device)
    masks = torch.zeros(image.shape[:3], dtype=torch.float32, device=device)
    pasted = []
    # Faces a detect node tracked (a clip): their masks steadied along each track, as much as the
    # default smoothing does it.
    tracked = any(each.aligned.face.track is not None for faces in restored for each in faces)
    memory = TrackMemory.for_smoothing(TrackOptions().smoothing) if tracked else None
    for index, faces in enumerate(restored):
        common.check_interrupt()
        if not faces:
            common.LOG.info("[GPEN] image %d: no faces to paste, passed through unchanged", index)
        region = tensors.mask_for_image(region_mask, index, image.shape[1:3], "region_mask")
        result, how = paste_guarded(image[index], faces, options, parser, region, identity, memory)
        if memory is not None:
            memory.next_frame()
        images[index] = result.image
        masks[index] = result.mask
        pasted.append(how)
        pbar.update(1)
    return images, masks, pasted


class PasteBack:
    DESCRIPTION = ("Blends the restored faces back into the image through a soft mask. Only pixels under the "
                   "mask change; images without faces pass through untouched. Alpha is kept.")
    CATEGORY = common.CATEGORY
    SEARCH_ALIASES = ["paste faces", "face blend", "uncrop faces"]
    # The identity outputs come last, so links of workflows saved before them keep their slots.
    RETURN_TYPES = ("IMAGE", "MASK") + tuple(kind for kind, _, _ in identity_inputs.OUTPUTS)
    RETURN_NAMES = ("image", "mask") + tuple(name for _, name, _ in identity_inputs.OUTPUTS)
    OUTPUT_TOOLTIPS = (("The image with the restored faces.", "Where and how strongly faces were pasted (0..1).")
                       + tuple(tip for _, _, tip in identity_inputs.OUTPUTS))
    FUNCTION = "paste"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {
                    "tooltip": "The image to paste into: the one the faces came from, or a resized copy of it."}),
                "restored_faces": (common.RESTORED_TYPE, {"tooltip": "Faces from GPEN Restore Faces."}),
                "mask_mode": (list(MASK_MODES), {
                    "default": "official",
                    "tooltip": "official: GPEN's recipe (face-shaped with parsing_parsenet.pth in "
                               "models/facedetection, else a soft rectangle). parse: face-shaped, needs the "
                               "parser weights. box: a feathered square, needs nothing."}),
                "strength": ("FLOAT", {
                    "default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                    "tooltip": "How much of the restored face to use: 1 = all, 0 = the image unchanged."}),
                "feather": ("FLOAT", {
                    "default": -1.0, "min": -1.0, "max": FEATHER_RANGE[1], "step": 0.1,
                    "tooltip": "Soft edge width in % of the face crop; -1 uses the mask mode's own default."}),
                "grow": ("FLOAT", {
                    "default": 0.0, "min": GROW_RANGE[0], "max": GROW_RANGE[1], "step": 0.1,
                    "tooltip": "Grow (+) or shrink (-) the mask, in % of the face crop."}),
                "color_match": ("BOOLEAN", {
                    "default": False,
                    "tooltip": "Give each restored face the colour of the original face, judged on its skin "
                               "(helps when the restorer shifts skin tone; not the official recipe)."}),
                "keep_gray": (list(KEEP_GRAY), {
                    "default": "auto",
                    "tooltip": "auto: faces pasted into a black-and-white photo stay black-and-white "
                               "(not for Colorization models). on/off: always/never."}),
            },
            "optional": {
                "region_mask": ("MASK", {
                    "tooltip": "Optional: faces are pasted only where this mask is white (same size as the image)."}),
                **{name: common.advanced(spec) for name, spec in BLEND_INPUTS.items()},
                "recognizer": common.advanced(identity_inputs.recognizer_input()),
                "min_identity": common.advanced(identity_inputs.MIN_IDENTITY_INPUT),
                "sharpness_limit": common.advanced(SHARPNESS_INPUT),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, keep_gray="auto", strength=1.0, feather=-1.0, grow=0.0, min_identity=None,
                        sharpness_limit=0.0):
        # keep_gray is declared so that ComfyUI leaves this combo to us: the yes/no of older saved
        # workflows still load (paste_options reads them).
        refusal = common.options_refusal(paste_options, keep_gray=keep_gray, strength=strength, feather=feather,
                                         grow=grow, sharpness_limit=sharpness_limit)
        return identity_inputs.numbers_refusal(min_identity=min_identity) if refusal is True else refusal

    def paste(self, image, restored_faces, mask_mode="official", strength=1.0, feather=-1.0, grow=0.0,
              color_match=False, keep_gray="auto", region_mask=None, blend="feather", match_grain=False,
              recognizer=identity_inputs.OFF, min_identity=0.0, sharpness_limit=0.0):
        options = paste_options(mask_mode, strength, feather, grow, color_match, keep_gray, blend, match_grain,
                                sharpness_limit)
        identity = identity_inputs.identity_check(recognizer, min_identity)
        images, masks, pasted = paste_batch(image, restored_faces, options, region_mask, identity=identity)
        return {"ui": {"text": identity_inputs.identity_text(pasted)},
                "result": (images, masks) + identity_inputs.identity_outputs(pasted)}
