"""GPENFaceRestore: the whole chain (load, detect, restore, paste) in one node."""
from __future__ import annotations

import torch

from gpen_pipeline import (DEFAULT_DETECTOR, DETECTOR_NAMES, MASK_MODES, MAX_FACES, MIN_THRESHOLD, EnhanceOptions,
                           SelectOptions, TrackMemory, TrackOptions, enhance_images)

from . import common, face_helpers, identity_inputs, tensors
from .detect_faces import BBOXES_INPUT, FACE_MASKS_INPUT, SMOOTHING_INPUT, DetectFaces, detect_batch, tracks_clip
from .load_model import LoadGPENModel
from .paste_back import BLEND_INPUTS, SHARPNESS_INPUT, PasteBack, paste_options
from .restore_faces import COLORIZE_INPUT, check_task


def _tooltip(node, name: str) -> str:
    inputs = node.INPUT_TYPES()
    spec = inputs["required"].get(name) or inputs.get("optional", {})[name]
    return spec[1]["tooltip"]


class FaceRestore:
    DESCRIPTION = ("Restores every face of the image with GPEN in one step: loads the model, detects the faces, "
                   "restores them and blends them back. Images without faces pass through untouched. Use the "
                   "four separate GPEN nodes for finer control.")
    CATEGORY = common.CATEGORY
    SEARCH_ALIASES = ["face restore", "face restoration", "restore face", "face enhance", "face fix", "gpen",
                      "after face swap", "reactor restore"]
    # The same outputs as the chain's last node.
    RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS = PasteBack.RETURN_TYPES, PasteBack.RETURN_NAMES, PasteBack.OUTPUT_TOOLTIPS
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        loader = LoadGPENModel.INPUT_TYPES()["required"]
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images whose faces are restored."}),
                "model_name": loader["model_name"],
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": _tooltip(PasteBack, "strength")}),
                "detector": (list(DETECTOR_NAMES), {"default": DEFAULT_DETECTOR,
                                                    "tooltip": _tooltip(DetectFaces, "detector")}),
                "threshold": ("FLOAT", {"default": 0.5, "min": MIN_THRESHOLD, "max": 1.0, "step": 0.01,
                                        "tooltip": _tooltip(DetectFaces, "threshold")}),
                "max_faces": ("INT", {"default": 0, "min": 0, "max": MAX_FACES, "step": 1,
                                      "tooltip": "Restore at most this many faces per image, largest first "
                                                 f"(0: all found, at most {MAX_FACES})."}),
                "mask_mode": (list(MASK_MODES), {"default": "official",
                                                 "tooltip": _tooltip(PasteBack, "mask_mode")}),
                "color_match": ("BOOLEAN", {"default": False, "tooltip": _tooltip(PasteBack, "color_match")}),
                # The rarely changed ones are advanced inputs: the node shows what most runs need.
                "device": common.advanced(loader["device"]),
                "precision": common.advanced(loader["precision"]),
            },
            "optional": {
                "region_mask": ("MASK", {"tooltip": _tooltip(PasteBack, "region_mask")}),
                "colorize": common.advanced(COLORIZE_INPUT),
                "smoothing": common.advanced(SMOOTHING_INPUT),
                **{name: common.advanced(spec) for name, spec in BLEND_INPUTS.items()},
                "recognizer": common.advanced(identity_inputs.recognizer_input()),
                "min_identity": common.advanced(identity_inputs.MIN_IDENTITY_INPUT),
                "reference": identity_inputs.REFERENCE_INPUT,
                "reference_threshold": common.advanced(identity_inputs.REFERENCE_THRESHOLD_INPUT),
                "sharpness_limit": common.advanced(SHARPNESS_INPUT),
                "bboxes": BBOXES_INPUT,
                "face_masks": FACE_MASKS_INPUT,
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name, strength=1.0, threshold=0.5, smoothing=None, min_identity=None,
                        reference_threshold=None, sharpness_limit=0.0):
        for build, inputs in ((paste_options, {"strength": strength, "sharpness_limit": sharpness_limit}),
                              (SelectOptions, {"threshold": threshold}), (TrackOptions, {"smoothing": smoothing})):
            refusal = common.options_refusal(build, **inputs)
            if refusal is not True:
                return refusal
        refusal = identity_inputs.numbers_refusal(min_identity=min_identity, reference_threshold=reference_threshold)
        if refusal is not True:
            return refusal
        return LoadGPENModel.VALIDATE_INPUTS(model_name)

    @classmethod
    def IS_CHANGED(cls, model_name, **_):
        return common.file_stamp(model_name)

    def restore(self, image, model_name, strength=1.0, detector=DEFAULT_DETECTOR, threshold=0.5, max_faces=0,
                mask_mode="official", color_match=False, device="auto", precision="auto", region_mask=None,
                colorize=COLORIZE_INPUT[1]["default"], smoothing=SMOOTHING_INPUT[1]["default"], blend="feather",
                match_grain=False, recognizer=identity_inputs.OFF, min_identity=0.0, reference=None,
                reference_threshold=identity_inputs.DEFAULT_REFERENCE_THRESHOLD, sharpness_limit=0.0, bboxes=None,
                face_masks=None):
        tensors.check_image_batch(image)
        handle = common.load_gpen_model(common.require_model_path(model_name), device, precision)
        check_task(handle, None)
        options = EnhanceOptions(task=handle.model.task, colorize=colorize,
                                 select=SelectOptions(threshold=threshold, order="large-small", max_count=max_faces),
                                 paste=paste_options(mask_mode, strength, color_match=color_match, blend=blend,
                                                     match_grain=match_grain, sharpness_limit=sharpness_limit))
        batch = image.shape[0]
        masks = [tensors.mask_for_image(region_mask, i, image.shape[1:3], "region_mask") for i in range(batch)]
        parser = face_helpers.get_parser(required=mask_mode == "parse") if mask_mode != "box" else None
        identity = identity_inputs.identity_check(recognizer, min_identity, reference, reference_threshold, detector)
        pbar = common.progress_bar(batch)  # re-sized once the number of faces is known
        detector_model = face_helpers.get_detector(detector)
        # A clip's faces are tracked first (and faces in boxes given found first), a step per frame:
        # enhance_images' own detection steps are then instant, and the progress does not go back over them.
        faces, found = None, 0
        clip = tracks_clip(image, smoothing)
        memory = TrackMemory.for_smoothing(smoothing) if clip else None
        if clip or bboxes is not None or face_masks is not None:  # the detect node's stage
            selected, _ = detect_batch(image, detector, options.select, pbar, smoothing, identity, bboxes,
                                       face_masks)
            faces, found = list(selected.per_image), batch
        results = enhance_images([image[i] for i in range(batch)], common.ready_model(handle),
                                 detector_model, options, parser=parser, region_masks=masks,
                                 progress=lambda done, total: pbar.update_absolute(max(done, found), max(total, 1)),
                                 check_interrupt=common.check_interrupt, identity=identity, faces=faces,
                                 memory=memory)
        common.log_notes([result.notes for result in results])
        out_image = torch.stack([result.image for result in results]).to(tensors.output_device())
        out_mask = torch.stack([result.mask for result in results]).to(tensors.output_device())
        counts = [len(result.restored) for result in results]
        text = (f"{handle.describe()}; {sum(counts)} face(s) restored in {batch} image(s): "
                + ", ".join(map(str, counts)))
        pasted = [result.pasted for result in results]
        return {"ui": {"text": [text] + identity_inputs.identity_text(pasted)},
                "result": (out_image, out_mask) + identity_inputs.identity_outputs(pasted)}
