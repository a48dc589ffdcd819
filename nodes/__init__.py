"""The GPEN nodes (V1 API; see nodes/README.md for why).

Node ids carry the GPEN prefix because ComfyUI's node ids are global (`DetectFaces`
alone is already taken by another pack); the Python class names stay short.
"""
from . import common, routes
from .detect_faces import DetectFaces
from .face_restore import FaceRestore
from .load_model import LoadGPENModel
from .paste_back import PasteBack
from .restore_faces import RestoreFaces

common.register_all_folders()
routes.register_with_comfy()  # the editor extension's routes (js/)

NODE_CLASS_MAPPINGS = {
    "GPENLoadModel": LoadGPENModel,
    "GPENDetectFaces": DetectFaces,
    "GPENRestoreFaces": RestoreFaces,
    "GPENPasteBack": PasteBack,
    "GPENFaceRestore": FaceRestore,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "GPENLoadModel": "Load GPEN Model",
    "GPENDetectFaces": "GPEN Detect Faces",
    "GPENRestoreFaces": "GPEN Restore Faces",
    "GPENPasteBack": "GPEN Paste Back",
    "GPENFaceRestore": "GPEN Face Restore",
}
