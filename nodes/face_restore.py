"""GPENFaceRestore: the whole chain (load, detect, restore, paste) in one node."""
from __future__ import annotations

from gpen_pipeline.detection import DEFAULT_DETECTOR, DETECTOR_NAMES
from gpen_pipeline.paste import MASK_MODES

from . import common, tensors
from .detect_faces import DetectFaces, detect_batch, detection_summary
from .load_model import LoadGPENModel
from .paste_back import PasteBack, paste_batch
from .restore_faces import restore_batch


def _tooltip(node, name: str) -> str:
    inputs = node.INPUT_TYPES()
    spec = inputs["required"].get(name) or inputs.get("optional", {})[name]
    return spec[1]["tooltip"]


class FaceRestore:
    DESCRIPTION = ("Restores every face of the image with GPEN in one step: loads the model, detects the faces, "
                   "restores them and blends them back. Images without faces pass through untouched. Use the "
                   "four separate GPEN nodes for finer control.")
    CATEGORY = common.CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    OUTPUT_TOOLTIPS = ("The image with the restored faces.", "Where and how strongly faces were pasted (0..1).")
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
                "threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01,
                                        "tooltip": _tooltip(DetectFaces, "threshold")}),
                "max_faces": ("INT", {"default": 0, "min": 0, "max": 1000, "step": 1,
                                      "tooltip": "Restore at most this many faces per image, largest first "
                                                 "(0: all)."}),
                "mask_mode": (list(MASK_MODES), {"default": "official",
                                                 "tooltip": _tooltip(PasteBack, "mask_mode")}),
                "color_match": ("BOOLEAN", {"default": False, "tooltip": _tooltip(PasteBack, "color_match")}),
                "device": loader["device"],
                "precision": loader["precision"],
            },
            "optional": {
                "region_mask": ("MASK", {"tooltip": _tooltip(PasteBack, "region_mask")}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name):
        return LoadGPENModel.VALIDATE_INPUTS(model_name)

    @classmethod
    def IS_CHANGED(cls, model_name, **_):
        return common.file_stamp(model_name)

    def restore(self, image, model_name, strength=1.0, detector=DEFAULT_DETECTOR, threshold=0.5, max_faces=0,
                mask_mode="official", color_match=False, device="auto", precision="auto", region_mask=None):
        tensors.check_image_batch(image)
        handle = common.load_gpen_model(common.require_model_path(model_name), device, precision)
        batch = image.shape[0]
        pbar = common.progress_bar(2 * batch)  # re-sized once the number of faces is known
        faces = detect_batch(image, detector, threshold, "large-small", "", 0, max_faces, pbar=pbar)
        pbar.update_absolute(pbar.current, 2 * batch + sum(len(f) for f in faces))
        restored = restore_batch(handle, image, faces, pbar=pbar)
        out_image, out_mask = paste_batch(image, restored, mask_mode, strength, color_match=color_match,
                                          region_mask=region_mask, pbar=pbar)
        text = f"{handle.describe()}; {detection_summary(faces)}"
        return {"ui": {"text": [text]}, "result": (out_image, out_mask)}
