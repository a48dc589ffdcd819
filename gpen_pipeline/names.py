"""The names front ends offer as choices (mask modes, detectors, face regions...), with the
standard library alone: the command line's --help and its argument checks need no numpy, torch
or OpenCV, so they answer at once. The modules that implement each choice import its names here."""
from __future__ import annotations

# Image files the command line reads and writes.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

# How a face's paste mask is made (masks.paste_masks).
MASK_MODES = ("official", "parse", "box")
# The face parser's precision for masks other than the official recipe's (parsing.load_parser).
PARSER_PRECISIONS = ("auto", "fp32")
# Whether a black-and-white photo stays black-and-white (paste.pastes_gray).
KEEP_GRAY = ("auto", "on", "off")
# How a warped face is mixed into the photo (blend.mix).
BLENDS = ("feather", "multiband")
# Colorize: keep the photo's luminance (the default), or the official script's output at the model's size.
COLORIZE_MODES = ("keep-luminance", "official")

# Face detectors (detection.load_detector); the bundled one needs no weights folder.
BUNDLED_NAME = "retinaface_mobile0.25_bundled"
DETECTOR_NAMES = (BUNDLED_NAME, "retinaface_resnet50", "retinaface_mobile0.25", "scrfd")
DEFAULT_DETECTOR = BUNDLED_NAME

# Model folders (under ComfyUI's models/, or any models folder): restorers, primary folder first
# (ReActor/facerestore_cf users keep GPEN-BFR-*.onnx/.pth in the second); then the detector and
# face-parser weights (facexlib files; insightface's model packs).
RESTORER_FOLDERS = ("facerestore", "facerestore_models")
DETECTOR_FOLDERS = ("facedetection", "insightface")

# User-facing face regions of the "parse" mask -> the CelebAMask-HQ classes they cover
# (parsing.py). All of them together is GPEN's own choice (everything but background, hat and cloth).
REGION_CLASSES = {
    "skin": ("skin",),
    "brows": ("l_brow", "r_brow"),
    "eyes": ("l_eye", "r_eye"),
    "nose": ("nose",),
    "mouth": ("mouth",),
    "lips": ("u_lip", "l_lip"),
    "hair": ("hair",),
    "ears": ("l_ear", "r_ear", "ear_r"),
    "neck": ("neck", "neck_l"),
    "glasses": ("eye_g",),
}
PARSE_REGIONS = tuple(REGION_CLASSES)
