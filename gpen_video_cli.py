"""The command line's video files: `gpen restore clip.mp4 -o out.mp4` and `gpen detect clip.mp4 --json`.

Two passes over the file, so memory stays flat whatever its length: the first decodes it and finds
and tracks the faces (gpen_pipeline.find_clip_faces: a few numbers per face), the second decodes it
again and restores FACES_HELD frames at a time, writing each chunk as it is done.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from itertools import islice
from pathlib import Path


class _Stopped(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the half-written file goes."""


def is_video(path: str | Path) -> bool:
    from gpen_pipeline.video_files import VIDEO_SUFFIXES

    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_paths(source: str | Path, output: str | Path) -> tuple[Path, Path]:
    """(input, output) for a video, checked before any model loads."""
    from gpen_pipeline.video_files import CONTAINERS, PART_SUFFIX, VideoFileError

    source, output = Path(source), Path(output)
    if not source.exists():
        raise VideoFileError(f"input {source} does not exist")
    if not source.is_file():
        raise VideoFileError(f"input {source} is not a video file")
    if output.is_dir():
        output = output / source.name
    if output.suffix.lower() not in CONTAINERS:
        raise VideoFileError(f"output {output} must be a video file ending in one of {', '.join(CONTAINERS)} "
                             f"for the video {source.name}")
    if output.resolve() == source.resolve() or output.with_name(output.name + PART_SUFFIX).resolve() == source.resolve():
        raise VideoFileError(f"refusing to overwrite the input {source}; choose another output")
    return source, output


def _bar(total: int, desc: str):
    from tqdm import tqdm

    # disable=None: a bar (with its ETA) only on a terminal.
    return tqdm(total=total or None, desc=desc, unit="frame", leave=False, disable=None)


def find_tracked(source: Path, info, detector, select, track, say) -> list:
    """The first pass: every frame's tracked faces; a file that ends early fails here, before any output."""
    from gpen_pipeline import find_clip_faces
    from gpen_pipeline.video_files import VideoFileError, decode_video

    bar = _bar(info.frames, "finding faces")
    try:
        found = find_clip_faces((frame.rgb for frame in decode_video(source)), detector, select, track, bar.update)
    finally:
        bar.close()
    if info.frames and len(found) < info.frames:
        raise VideoFileError(f"cannot read video {source}: it ends after {len(found)} of its {info.frames} frames, "
                             "so it is cut short; re-export or re-download it")
    return found


def reference_tracks(source: Path, found: list, check, say) -> list:
    """`found` with only the tracks like the references selected (identity.tracks_like_references: up
    to five frames of each track, read in one more pass over the file, none of them held)."""
    import dataclasses

    from gpen_pipeline.identity import tracks_like_references
    from gpen_pipeline.video_files import decode_video

    frames = decode_video(source)
    try:
        kept = tracks_like_references(check, [faces.selected for faces in found], (frame.rgb for frame in frames))
    finally:
        frames.close()
    tracks = {face.track for faces in found for face in faces.selected}
    say(f"{source.name}: {len(kept)} of {len(tracks)} face track(s) like the reference restored")
    return [dataclasses.replace(faces, selected=tuple(f for f in faces.selected if f.track in kept))
            for faces in found]


def detect_video(args, detector) -> int:
    from gpen_pipeline import SelectOptions, TrackOptions
    from gpen_pipeline.video_files import probe_video

    source = Path(args.image)
    info = probe_video(source)
    found = find_tracked(source, info, detector, SelectOptions(threshold=args.threshold, order=args.order),
                         TrackOptions(smoothing=args.smoothing), None)
    seconds = float(info.time_base) if info.rate is None else 1.0 / float(info.rate)
    if args.json:
        print(json.dumps([{"frame": i, "time": round(i * seconds, 4), "faces": [f.to_json() for f in faces.detected]}
                          for i, faces in enumerate(found)]))
        return 0
    tracks = sorted({face.track for faces in found for face in faces.detected})
    for track in tracks:
        frames = [i for i, faces in enumerate(found) if any(f.track == track for f in faces.detected)]
        print(f"track {track}: frames {frames[0]}-{frames[-1]} ({len(frames)} of {len(found)})")
    print(f"{len(tracks)} face track(s) in {len(found)} frame(s)")
    return 0


def restore_video(args, source: Path, target: Path, model, detector, options, parser, say, identity=None) -> int:
    import av

    from gpen_pipeline import TrackOptions, enhance_images
    from gpen_pipeline.options import FACES_HELD
    from gpen_pipeline.track_memory import TrackMemory
    from gpen_pipeline.video_files import VideoWriter, decode_video, probe_video

    info = probe_video(source)
    track = TrackOptions(smoothing=args.smoothing, max_gap=args.max_gap)
    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        found = find_tracked(source, info, detector, options.select, track, say)
        if identity is not None and identity.references is not None:
            found = reference_tracks(source, found, identity, say)
        damage = None
        if options.task == "inpaint":
            from gpen_pipeline.image_files import read_mask

            damage = read_mask(Path(args.inpaint_mask), (info.height, info.width), say)
        with av.open(str(source)) as probe:
            template = probe.streams.audio[0] if probe.streams.audio else None
            started, network = time.perf_counter(), 0.0
            memory = TrackMemory.for_smoothing(track.smoothing)  # carried across the chunks
            with VideoWriter(target, info, template, args.video_codec, args.quality) as writer:
                frames, said, faces, bar = decode_video(source, writer.copy_audio), set(), 0, _bar(len(found), "restoring")
                try:
                    while chunk := list(islice(frames, FACES_HELD)):
                        at = writer.frames
                        began = time.perf_counter()
                        results = enhance_images([f.rgb for f in chunk], model, detector, options, parser=parser,
                                                 inpaint_masks=None if damage is None else [damage] * len(chunk),
                                                 faces=[each.selected for each in found[at:at + len(chunk)]],
                                                 memory=memory)
                        network += time.perf_counter() - began
                        for frame, result in zip(chunk, results):
                            writer.write(frame, result.image, result.mask if result.faces else None)
                            faces += len(result.faces)
                            for note in result.notes:
                                if note not in said:
                                    said.add(note)
                                    say(f"{source.name}: {note}")
                        bar.update(len(chunk))
                finally:
                    bar.close()
                    frames.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
    total = time.perf_counter() - started
    print(f"{target}: {writer.frames} frame(s), {faces} face(s) restored, {writer.encoder}"
          f"{' (lossless)' if info.lossless and args.video_codec == 'auto' else ''}"
          f"{', audio copied' if template is not None else ''}; {writer.frames / max(total, 1e-9):.2f} frames/s "
          f"({network:.1f} s finding, restoring and pasting faces, {total - network:.1f} s decoding and encoding)")
    return 0


def _on_term(signum, frame):
    raise _Stopped()


if __name__ == "__main__":
    sys.exit("run gpen_cli.py")
