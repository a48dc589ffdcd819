"""GPEN face restoration from the command line.

    python gpen_cli.py restore photo.jpg --model GPEN-BFR-512.pth -o restored.png
    python gpen_cli.py restore photos/ --model GPEN-BFR-512.pth -o restored/
    python gpen_cli.py restore clip.mp4 --model GPEN-BFR-512.pth -o restored.mp4
    python gpen_cli.py detect photo.jpg --json
    python gpen_cli.py info GPEN-BFR-512.pth --json
    python gpen_cli.py convert GPEN-BFR-512.pth -o GPEN-BFR-512-fp16.safetensors --fp16
    python gpen_cli.py download GPEN-BFR-512.pth --dir models/facerestore
    python gpen_cli.py doctor

torch, OpenCV and the pipeline are imported only once a command starts its work, so --help and
argument errors answer at once.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import gpen_cli_args
import gpen_cli_identity
from gpen_cli_doctor import cmd_doctor
from gpen_cli_progress import RestoreProgress, close_all, say
from gpen_pipeline.names import IMAGE_SUFFIXES


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


def _say(message: str, file=None) -> None:
    say(message, file)


# --- subcommands -------------------------------------------------------------------------------


def _load_detector(args):
    from gpen_pipeline.detection import load_detector

    return load_detector(args.detector, args.detector_dir, device=None if args.device == "auto" else args.device)


def cmd_detect(args) -> int:
    from gpen_pipeline.detection import detect_faces
    from gpen_pipeline.image_files import detection_view, read_pixels
    from gpen_pipeline.preview import numbered_faces

    import gpen_video_cli

    if gpen_video_cli.is_video(args.image):
        return gpen_video_cli.detect_video(args, _load_detector(args))
    # Numbered as `restore --faces` counts them with the same --order, in the upright image.
    image = detection_view(read_pixels(Path(args.image), _say).pixels)
    faces = numbered_faces(detect_faces(_load_detector(args), image, args.threshold), args.order, 0.0)
    if args.json:
        _report(json.dumps([f.to_json() for f in faces]))
    else:
        lines = [f"face {i}: score {face.score:.3f}, box [{', '.join(f'{v:.0f}' for v in face.box)}]"
                 for i, face in enumerate(faces)]
        _report("\n".join(lines + [f"{len(faces)} face(s)"]))
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
    from gpen_arch.files import same_file

    out = Path(args.output)
    if out.suffix.lower() != ".safetensors":
        raise CliError(f"output {out} must end in .safetensors")
    if same_file(out, args.model):
        raise CliError("output and input are the same file; choose another output name")
    model = gpen_arch.load_model(args.model, device="cpu", prepare=False)  # written out, never run
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
    from gpen_arch.files import identity

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
    # By identity, not by name: a hard link or a symlink to an input is that input.
    inputs = {identity(p) for p in [p for p, _ in pairs] + [args.model, args.inpaint_mask] if p} - {None}
    for _, out in pairs:
        if identity(out) in inputs:
            raise CliError(f"refusing to overwrite the input {out}; choose another output")
    return pairs


def cmd_restore(args) -> int:
    progress = RestoreProgress("starting torch")
    import gpen_arch

    from gpen_pipeline import EnhanceOptions, PasteOptions, SelectOptions
    from gpen_pipeline.file_restore import restore_file

    import gpen_video_cli

    video = gpen_video_cli.video_paths(args.input, args.output) if gpen_video_cli.is_video(args.input) else None
    if video is not None and (args.min_identity or args.report):
        # A guard judging each frame alone would give a face a strength that changes from frame to frame.
        raise CliError("--min-identity and --report work on images and folders of frames, not on video files "
                       "(a strength chosen frame by frame would flicker); --reference selects whole face tracks "
                       "of a video. Leave them out, or extract the frames (e.g. ffmpeg -i clip.mp4 "
                       "frames/%06d.png)")
    pairs = _inputs_and_outputs(args) if video is None else []
    todo = pairs if args.overwrite or video is not None else [(s, t) for s, t in pairs if not t.exists()]
    if len(todo) < len(pairs):  # complete, as every output is written whole or not at all
        kept = pairs[0][1] if len(pairs) == 1 else f"{len(pairs) - len(todo)} of {len(pairs)} outputs"
        _say(f"{kept} already there, kept (--overwrite redoes {'it' if len(pairs) == 1 else 'them'})", file=sys.stdout)
    if not todo and video is None:
        progress.close()
        return 0
    progress.stage(f"loading {Path(args.model).name}")
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
                           color_match=args.color_match, keep_gray=args.keep_gray, blend=args.blend,
                           grain=args.grain, sharpness_limit=args.sharpness_limit))
    if task == "inpaint" and not args.inpaint_mask:
        raise CliError("the inpainting model needs --inpaint-mask (white = damaged)")
    parser = None
    if args.mask in ("parse", "official") and args.parser_dir:
        from gpen_pipeline.parsing import load_parser

        parser = load_parser("auto", args.parser_dir, precision=args.parser_precision)
    elif args.mask == "parse":
        raise CliError("--mask parse needs --parser-dir with parsing_parsenet.pth or parsing_bisenet.pth")
    progress.stage("loading the face detector")
    detector = _load_detector(args)
    identity = gpen_cli_identity.identity_check(args, detector, _say)
    if video is not None:  # identity there only picks the tracks (--reference)
        progress.close()
        return gpen_video_cli.restore_video(args, *video, model, detector, options, parser, _say, identity)
    damage = Path(args.inpaint_mask) if args.inpaint_mask else None
    report = gpen_cli_identity.Report(args.report, todo)

    def restore(source: Path, target: Path):
        result = restore_file(source, target, model, detector, options, parser, damage, _say, progress.steps,
                              identity=identity)
        report.add(source, target, result)
        for line in gpen_cli_identity.guard_notes(result):
            _say(f"{source.name}: {line}" if len(todo) > 1 else line)
        return result

    done = _restore_files(todo, Path(args.input).is_dir(), args.output, progress, restore)
    report.write()
    return done


def _restore_files(todo, folder: bool, output, progress: RestoreProgress, restore) -> int:
    """restore(source, target) for each pair; in a folder run a file that fails is reported and the
    others go on (a full disk stops the run). The exit status: 1 if any failed."""
    import torch

    from gpen_arch.files import FULL_DISK, WriteError

    restored, said, failed = 0, set(), []
    for source, target in progress.over(todo, lambda pair: pair[0].name):
        try:
            result = restore(source, target)
        except (ValueError, OSError, MemoryError, torch.OutOfMemoryError) as exc:
            if not folder or (isinstance(exc, WriteError) and exc.errno in FULL_DISK):
                raise
            _say(f"{source.name}: skipped: {' '.join(str(exc).split()) or type(exc).__name__}")
            failed.append(source.name)
            continue
        for note in result.notes:
            if note not in said:
                said.add(note)
                _say(f"{source.name}: {note}" if folder else note)
        restored += result.faces
        if not folder:
            _say(f"{target}: {result.faces} face(s) restored", file=sys.stdout)
    progress.close()
    if folder:
        print(f"{len(todo) - len(failed)} image(s), {restored} face(s) restored -> {output}")
    if failed:
        _say(f"{len(failed)} image(s) failed: {', '.join(failed)}; fix or remove them and run again "
             "(finished outputs are kept)")
    return 1 if failed else 0


def build_parser():
    """The command line's parser, each command bound to the function that runs it."""
    return gpen_cli_args.build_parser({"restore": cmd_restore, "detect": cmd_detect, "info": cmd_info,
                                       "convert": cmd_convert, "download": cmd_download, "doctor": cmd_doctor})


def _report(text: str | None = None) -> None:
    """Print `text` (None: nothing more) and flush the standard output, so that a report redirected
    onto a full disk is an error in words and exit 1, not a traceback or a report lost at exit."""
    from gpen_arch.files import write_error

    try:
        if text is not None:
            print(text)
        sys.stdout.flush()
    except OSError as exc:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit finds nowhere to fail
        raise write_error("the standard output", exc) from exc


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        status = args.func(args)
        _report()
        return status
    except KeyboardInterrupt:
        # Ctrl-C: whatever was being written is removed by its writer (every file goes through
        # gpen_arch.files, which renames only complete files into place) or never begun.
        print(f"gpen {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`gpen doctor | head`): nothing left to tell anyone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 1
    # ModelLoadError, ImageFileError and the detectors' errors are ValueErrors, DownloadError a RuntimeError.
    except (CliError, ValueError, OSError, ImportError, RuntimeError) as exc:
        close_all()
        print(f"gpen {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug of ours: still one line; GPEN_DEBUG=1 shows where
        close_all()
        if os.environ.get("GPEN_DEBUG"):
            raise
        message = " ".join(str(exc).split())
        print(f"gpen {args.command}: error: unexpected {type(exc).__name__}: {message} "
              "(set GPEN_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        # The system's words and the file, without Python's "[Errno 13]" in front.
        files = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
        return exc.strerror + (f": {' -> '.join(files)}" if files else "")
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
