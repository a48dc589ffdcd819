"""GPEN face restoration from the command line.

    python gpen_cli.py restore photo.jpg --model GPEN-BFR-512.pth -o restored.png
    python gpen_cli.py restore photos/ --model GPEN-BFR-512.pth -o restored/
    python gpen_cli.py detect photo.jpg --json
    python gpen_cli.py info GPEN-BFR-512.pth --json
    python gpen_cli.py convert GPEN-BFR-512.pth -o GPEN-BFR-512-fp16.safetensors --fp16
    python gpen_cli.py download GPEN-BFR-512.pth --dir models/facerestore
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import gpen_cli_identity

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def keep_freed_memory() -> bool:
    """Let this process reuse the memory it frees instead of handing it back to the system.

    glibc serves every large block with a fresh mmap and unmaps it when freed, so each use
    pays for the kernel zero-filling new pages. The fp32 CPU forward avoids that with its own
    workspace; this covers the rest (bf16 or fp16 on a CPU, the pipeline's image buffers).
    Process-wide, so only for this standalone command (and the benchmark); it changes nothing
    but speed. False where there is no glibc.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 31))
    except (OSError, AttributeError):
        return False


class CliError(Exception):
    """A problem the user can fix; printed as one line."""


def _say(message: str) -> None:
    print(message, file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# --- subcommands -------------------------------------------------------------------------------


def _load_detector(args):
    from gpen_pipeline.detection import load_detector

    return load_detector(args.detector, args.detector_dir, device=None if args.device == "auto" else args.device)


def cmd_detect(args) -> int:
    from gpen_pipeline.detection import detect_faces
    from gpen_pipeline.image_files import read_image
    from gpen_pipeline.preview import numbered_faces

    # Numbered as `restore --faces` counts them with the same --order.
    faces = numbered_faces(detect_faces(_load_detector(args), read_image(Path(args.image), _say), args.threshold),
                           args.order, 0.0)
    if args.json:
        print(json.dumps([f.to_json() for f in faces]))
    else:
        for i, face in enumerate(faces):
            box = ", ".join(f"{v:.0f}" for v in face.box)
            print(f"face {i}: score {face.score:.3f}, box [{box}]")
        print(f"{len(faces)} face(s)")
    return 0


def cmd_info(args) -> int:
    import gpen_arch

    info = gpen_arch.describe(args.model)
    if args.json:
        print(json.dumps(info.to_json()))
    else:
        cfg = info.config.to_dict() if info.config else "unknown"
        params = f"{info.parameters:,}" if info.parameters else "n/a"
        print(f"{info.file}: GPEN-{info.size} ({info.format}, {info.dtype}), task {info.task}, "
              f"{params} parameters, {info.file_bytes:,} bytes, config {cfg}")
    return 0


def cmd_convert(args) -> int:
    import gpen_arch

    out = Path(args.output)
    if out.suffix.lower() != ".safetensors":
        raise CliError(f"output {out} must end in .safetensors")
    if out.resolve() == Path(args.model).resolve():
        raise CliError("output and input are the same file; choose another output name")
    model = gpen_arch.load_model(args.model, device="cpu")
    if model.backend == "onnx":
        raise CliError(f"{args.model} is an ONNX model; only PyTorch checkpoints can be converted")
    gpen_arch.save_safetensors(model, out, half=args.fp16)
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {'fp16' if args.fp16 else 'fp32'})")
    return 0


def cmd_download(args) -> int:
    from gpen_pipeline.catalog import model_names
    from gpen_pipeline.download import download_model

    if args.list:
        print("\n".join(model_names()))
        return 0
    if not args.name:
        raise CliError("name a model to download, or use --list")
    bar = _progress_bar(args.name)
    try:
        result = download_model(args.name, args.dir, url_base=args.url_base, progress=bar.update_to,
                                timeout=args.timeout)
    finally:
        bar.close()
    print(f"{result.path} ({result.bytes:,} bytes, sha256 {result.sha256})")
    return 0


def _progress_bar(name):
    from tqdm import tqdm

    # disable=None: a bar only on a terminal; piped or logged output gets just the result line.
    bar = tqdm(total=0, unit="B", unit_scale=True, desc=name, leave=False, disable=None)

    def update_to(done, total):
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    bar.update_to = update_to
    return bar


def _inputs_and_outputs(args) -> list[tuple[Path, Path]]:
    source, output = Path(args.input), Path(args.output)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise CliError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
        if output.exists() and not output.is_dir():
            raise CliError(f"input {source} is a folder, so the output {output} must be a folder too")
        pairs = [(p, output / p.name) for p in files]
    elif source.is_file():
        if output.is_dir():
            output = output / source.name
        if output.suffix.lower() not in IMAGE_SUFFIXES:
            raise CliError(f"output {output} has no image extension ({', '.join(IMAGE_SUFFIXES)})")
        pairs = [(source, output)]
    elif source.exists():  # a pipe or device: reading it could block
        raise CliError(f"input {source} is not an image file or a folder")
    else:
        raise CliError(f"input {source} does not exist")
    inputs = {p.resolve() for p, _ in pairs}
    for _, out in pairs:
        if out.resolve() in inputs:
            raise CliError(f"refusing to overwrite the input {out}; choose another output")
    return pairs


def cmd_restore(args) -> int:
    import gpen_arch
    from tqdm import tqdm

    from gpen_pipeline import EnhanceOptions, PasteOptions, SelectOptions, enhance_image
    from gpen_pipeline.image_files import read_image, read_mask, write_image

    pairs = _inputs_and_outputs(args)
    model = gpen_arch.load_model(args.model, device=None if args.device == "auto" else args.device,
                                 dtype=None if args.precision == "fp32" else args.precision,
                                 task=None if args.task == "auto" else args.task)
    task = model.task
    if task == "seg2face":
        raise CliError("Seg2face models turn segmentation maps into faces; they cannot restore photos")
    options = EnhanceOptions(
        task=task, colorize=args.colorize,
        select=SelectOptions(threshold=args.threshold, order=args.order, indices=args.faces, min_size=args.min_size,
                             max_count=args.max_faces),
        paste=PasteOptions(mask_mode=args.mask, strength=args.strength, feather=args.feather, grow=args.grow,
                           color_match=args.color_match, keep_gray=args.keep_gray))
    if task == "inpaint" and not args.inpaint_mask:
        raise CliError("the inpainting model needs --inpaint-mask (white = damaged)")
    parser = None
    if args.mask in ("parse", "official") and args.parser_dir:
        from gpen_pipeline.parsing import load_parser

        parser = load_parser("auto", args.parser_dir)
    elif args.mask == "parse":
        raise CliError("--mask parse needs --parser-dir with parsing_parsenet.pth or parsing_bisenet.pth")
    detector = _load_detector(args)
    identity = gpen_cli_identity.identity_check(args, detector, lambda path: read_image(path, _say))
    report = gpen_cli_identity.Report(args.report, pairs)
    restored, said = 0, set()
    for source, target in tqdm(pairs, desc="restoring", unit="image", disable=True if len(pairs) < 2 else None):
        image = read_image(source, _say)
        extra = {}
        if task == "inpaint":
            extra["inpaint_mask"] = read_mask(Path(args.inpaint_mask), image.shape[:2], _say)
        result = enhance_image(image, model, detector, options, parser=parser, identity=identity, **extra)
        report.add(source, target, result)
        for line in gpen_cli_identity.guard_notes(result):
            _say(f"{source.name}: {line}" if len(pairs) > 1 else line)
        for note in result.notes:
            if note not in said:
                said.add(note)
                print(f"{source.name}: {note}" if len(pairs) > 1 else note, file=sys.stderr)
        if not result.faces and source.suffix.lower() == target.suffix.lower():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)  # no face: the very same file
        else:
            write_image(target, result.image)
        restored += len(result.faces)
        if len(pairs) == 1:
            print(f"{target}: {len(result.faces)} face(s) restored")
    report.write()
    if len(pairs) > 1:
        print(f"{len(pairs)} image(s), {restored} face(s) restored -> {args.output}")
    return 0


# --- argument parsing ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from gpen_pipeline import (COLORIZE_MODES, DEFAULT_DETECTOR, DETECTOR_NAMES, KEEP_GRAY, MASK_MODES, ORDERS,
                               EnhanceOptions, PasteOptions, SelectOptions)
    from gpen_pipeline.selection import LARGEST

    select, paste = SelectOptions(), PasteOptions()  # the defaults every front end shares

    parser = _Parser(prog="gpen", description="GPEN face restoration.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def detector_options(p):
        p.add_argument("--detector", choices=DETECTOR_NAMES, default=DEFAULT_DETECTOR,
                       help="face detector (default: the bundled offline RetinaFace)")
        p.add_argument("--detector-dir", action="append", default=[],
                       help="folder with detector weights (facexlib .pth / insightface .onnx); repeatable")
        p.add_argument("--threshold", type=float, default=select.threshold,
                       help=f"minimum face score, 0-1 (default {select.threshold})")
        p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")

    def order_option(p):
        p.add_argument("--order", choices=ORDERS + (LARGEST,), default=select.order,
                       help=f"face order for --faces (default {select.order}: 0 is the largest face)")

    p = sub.add_parser("restore", help="restore the faces of an image or a folder of images")
    p.add_argument("input", help="an image file or a folder of images")
    p.add_argument("--model", required=True, help="GPEN model file (.pth, .safetensors, .onnx)")
    p.add_argument("-o", "--output", required=True, help="output file (for a file) or folder (for a folder)")
    detector_options(p)
    p.add_argument("--task", choices=("auto", "restore", "colorize", "inpaint"), default="auto",
                   help="auto: from the model file name")
    p.add_argument("--colorize", choices=COLORIZE_MODES, default=EnhanceOptions().colorize,
                   help="colorization models: keep-luminance (the photo's own tones, only colour added; default) "
                        "or official (the official script's output at the model size: the network's tones)")
    p.add_argument("--inpaint-mask", help="image marking damaged areas in white (inpainting)")
    p.add_argument("--strength", type=float, default=paste.strength, help="0 = original, 1 = fully restored")
    p.add_argument("--mask", choices=MASK_MODES, default=paste.mask_mode,
                   help="paste mask: official (GPEN recipe; a blurred rectangle without a face parser), parse, box")
    p.add_argument("--parser-dir", action="append", default=[],
                   help="folder with parsing_parsenet.pth / parsing_bisenet.pth (parse and official masks)")
    p.add_argument("--feather", type=float, default=paste.feather,
                   help="soft edge of the paste mask in %% of the face crop (default: the mask mode's own)")
    p.add_argument("--grow", type=float, default=paste.grow, help="grow (+) or shrink (-) the mask, %% of the crop")
    p.add_argument("--color-match", action="store_true", help="match the restored faces' colours to the photo")
    p.add_argument("--keep-gray", choices=KEEP_GRAY, default=paste.keep_gray,
                   help="keep black-and-white photos black-and-white (auto: detect them)")
    order_option(p)
    p.add_argument("--faces", default="", help='which faces, e.g. "0,2" (default: all)')
    p.add_argument("--min-size", type=float, default=select.min_size, help="ignore faces smaller than this (px)")
    p.add_argument("--max-faces", type=int, default=select.max_count, help="restore at most this many faces (0 = all)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    gpen_cli_identity.add_arguments(p)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("detect", help="list the faces in an image, numbered as restore's --faces counts them")
    p.add_argument("image")
    p.add_argument("--json", action="store_true", help="print a JSON list of {box, score, landmarks}")
    detector_options(p)
    order_option(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("info", help="describe a model file")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="save a model as .safetensors")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    p.add_argument("--fp16", action="store_true", help="store fp16 tensors (half the size)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("download", help="download a released GPEN model")
    p.add_argument("name", nargs="?", help="e.g. GPEN-BFR-512.pth (see --list)")
    p.add_argument("--dir", default="models/facerestore", help="where to put it (default models/facerestore)")
    p.add_argument("--url-base", help="download from this mirror instead (URL = BASE/NAME)")
    p.add_argument("--list", action="store_true", help="list the downloadable models")
    p.add_argument("--timeout", type=float, default=60, help="seconds without data before giving up (default 60)")
    p.set_defaults(func=cmd_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    from gpen_arch import ModelLoadError
    from gpen_pipeline.download import DownloadError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        # Ctrl-C: whatever was being written is removed by its writer (downloads) or never begun.
        print(f"gpen {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CliError, ModelLoadError, DownloadError, ValueError, OSError, ImportError, RuntimeError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"gpen {args.command}: error: {message}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug of ours: still one line; GPEN_DEBUG=1 shows where
        if os.environ.get("GPEN_DEBUG"):
            raise
        message = " ".join(str(exc).split())
        print(f"gpen {args.command}: error: unexpected {type(exc).__name__}: {message} "
              "(set GPEN_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
