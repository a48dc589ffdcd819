"""The command line's identity options and its JSON report.

    gpen restore IN -o OUT --model M --recognizer w600k_r50.onnx [--min-identity 0.6]
                 [--reference me.jpg ...] [--reference-threshold 0.4] [--report report.json]

The report (a stable contract): {"images": [{"input", "output", "faces": [{"box", "score",
"landmarks", "identity", "strength", "strength_asked", "lowered", "lowered_by"}]}]}, one entry per image in the
order restored; "identity" is null without --recognizer. Nothing heavy is imported until used.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence


def add_arguments(parser) -> None:
    from gpen_pipeline.options import DEFAULT_REFERENCE_THRESHOLD

    parser.add_argument("--recognizer", metavar="ARCFACE.onnx",
                        help="ArcFace recognition model (w600k_r50.onnx of insightface's buffalo_l pack, "
                             "glintr100.onnx of antelopev2; non-commercial): scores how much of each face's "
                             "identity the restoration kept (default: none, no scores)")
    parser.add_argument("--min-identity", type=float, default=0.0, metavar="X",
                        help="identity guard, 0-1: a face scoring below X is pasted at a lower strength until it "
                             "reaches X; needs --recognizer (default: %(default)s, off)")
    parser.add_argument("--reference", action="append", default=[], metavar="FACE_IMAGE",
                        help="restore only faces of this person (the largest face of the photo); repeatable; "
                             "needs --recognizer (default: every face selected)")
    parser.add_argument("--reference-threshold", type=float, default=DEFAULT_REFERENCE_THRESHOLD, metavar="T",
                        help="similarity, 0-1, a face needs to a reference face (default: %(default)s)")
    parser.add_argument("--report", metavar="REPORT.json",
                        help="write what was done to every face (box, score, identity, strength) as JSON "
                             "(default: none)")


def identity_check(args, detector, warn: Callable[[str], None] | None = None):
    """The IdentityCheck the options ask for, or None without --recognizer."""
    if not args.recognizer:
        if args.min_identity or args.reference:
            raise ValueError("--min-identity and --reference need --recognizer PATH_TO_ARCFACE.onnx "
                             "(w600k_r50.onnx of insightface's buffalo_l pack)")
        return None
    from gpen_pipeline.identity import IdentityCheck, load_recognizer, reference_embeddings
    from gpen_pipeline.image_files import detection_view, read_pixels

    recognizer = load_recognizer(args.recognizer, device=None if args.device == "auto" else args.device)
    references = None
    if args.reference:
        photos = [detection_view(read_pixels(Path(p), warn).pixels) for p in args.reference]
        references = reference_embeddings(recognizer, detector, photos, args.threshold, names=args.reference)
    return IdentityCheck(recognizer, min_identity=args.min_identity, references=references,
                         reference_threshold=args.reference_threshold)


def guard_notes(result) -> list[str]:
    """One line per face whose strength the identity guard or the sharpness limit lowered."""
    return [f"face at {[round(v) for v in face.face.box]}: strength lowered from {face.asked:g} to "
            f"{face.strength:.3f} " + (f"to keep its identity ({face.identity:.3f})" if face.lowered_by == "identity"
                                       else "to be no sharper than the photo around it (--sharpness-limit)")
            for face in result.pasted if face.lowered]


class Report:
    """The --report file: filled image by image, written once at the end through the pack's one
    writer (a temporary name renamed into place), so a reader never sees half a report."""

    def __init__(self, path: str | None, pairs: Sequence[tuple[Path, Path]]):
        self.path = Path(path) if path else None
        self.images: list[dict] = []
        if self.path is not None:
            taken = {p.resolve() for pair in pairs for p in pair}
            if self.path.resolve() in taken:
                raise ValueError(f"the report {self.path} would overwrite an input or output image; "
                                 "give it another name")

    def add(self, source: Path, target: Path, result) -> None:
        self.images.append({"input": str(source), "output": str(target),
                            "faces": [face.to_json() for face in result.pasted]})

    def write(self) -> None:
        if self.path is None:
            return
        from gpen_arch.files import write_bytes

        write_bytes(self.path, (json.dumps({"images": self.images}, indent=1) + "\n").encode("utf-8"))
