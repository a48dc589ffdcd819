"""GPENLoadModel: a GPEN file from the facerestore folders -> GPEN_MODEL."""
from __future__ import annotations

from . import common


class LoadGPENModel:
    DESCRIPTION = ("Loads a GPEN face-restoration model (GPEN-BFR-256/512/1024/2048, Colorization, Inpainting; "
                   ".pth, .safetensors or .onnx) from models/facerestore or models/facerestore_models. The size "
                   "and task are read from the weights. A loaded model is reused until the file changes.")
    CATEGORY = common.CATEGORY
    SEARCH_ALIASES = ["gpen model", "face restore model", "load face restorer"]
    RETURN_TYPES = (common.MODEL_TYPE,)
    RETURN_NAMES = ("gpen_model",)
    OUTPUT_TOOLTIPS = ("The loaded GPEN model, for GPEN Restore Faces.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (common.list_model_files(), {
                    "tooltip": "GPEN model file in models/facerestore (or models/facerestore_models, where "
                               "ReActor keeps GPEN-BFR-*.onnx). The network size is read from the file."}),
                "device": (list(common.DEVICE_OPTIONS), {
                    "default": "auto",
                    "tooltip": "auto: the device ComfyUI runs models on (its VRAM management loads and "
                               "offloads the model). cpu: always run on the CPU."}),
                "precision": (list(common.PRECISION_OPTIONS), {
                    "default": "auto",
                    "tooltip": "auto: fp16 where ComfyUI considers the device fast at it, otherwise fp32. "
                               "bf16 halves memory on recent GPUs, and on CPUs with AMX (recent Xeons) runs "
                               "about twice as fast as fp32, a little less exactly; fp16 can overflow on some faces. "
                               "ONNX files keep the precision they were exported with."}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name):
        # Replaces the plain "value not in list" with where to put the file.
        if common.resolve_model_path(model_name) is None:
            return common.missing_model_message(model_name)
        return True

    @classmethod
    def IS_CHANGED(cls, model_name, device="auto", precision="auto"):
        return common.file_stamp(model_name)

    def load(self, model_name: str, device: str = "auto", precision: str = "auto"):
        handle = common.load_gpen_model(common.require_model_path(model_name), device, precision)
        summary = handle.describe()
        common.LOG.info("[GPEN] loaded %s", summary)
        return {"ui": {"text": [summary]}, "result": (handle,)}
