"""Video files in and out with PyAV (its wheels carry FFmpeg): frames decoded one at a time, audio
copied as packets, and frames written back in the input's own pixel format with every pixel away
from the faces exactly as it was decoded.

    probe_video(path)                      -> VideoInfo, or VideoFileError with one clear sentence
    decode_video(path, audio=writer.copy)  -> DecodedFrame after DecodedFrame (audio packets go to `audio`)
    VideoWriter(target, info, ...)        writes target + ".part" and renames it only once complete
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".webm": "webm"}
# Codecs that keep every pixel: a video in one of them is written back in it.
LOSSLESS_CODECS = ("ffv1", "utvideo", "huffyuv", "ffvhuff", "png", "qtrle", "rawvideo")
# H.264 at qp 0 is lossless; x264 gives such a stream this profile.
LOSSLESS_H264_PROFILE = "High 4:4:4 Predictive"
# Lossy inputs: the input's codec at a quality the eye cannot tell from the source (a CRF).
VISUALLY_LOSSLESS = {"libx264": 16, "libx265": 18, "libvpx-vp9": 18, "libsvtav1": 20}
ENCODER_OF = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1"}
PART_SUFFIX = ".part"


class VideoFileError(ValueError):
    """A video that cannot be read or written; the message names the file and says what to do."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    frames: int  # as the container declares them; 0 when it does not say
    rate: Fraction | None
    time_base: Fraction
    codec: str
    pix_fmt: str
    lossless: bool
    audio: str | None  # the audio codec, copied as it is; None without audio


@dataclass(frozen=True)
class DecodedFrame:
    rgb: np.ndarray  # HxWx3 uint8
    frame: av.VideoFrame  # as decoded: its pixel format, pts and time base


def _fail(path: Path, what: str, error: Exception | None = None) -> VideoFileError:
    said = f" (FFmpeg: {' '.join(str(error).split())})" if error is not None else ""
    return VideoFileError(f"cannot read video {path}: {what}{said}")


def probe_video(path: Path) -> VideoInfo:
    """What the video at `path` is, after decoding its first frame (so an empty one fails here)."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _fail(path, "it has no video stream; give a video file, or an image")
            stream = container.streams.video[0]
            context = stream.codec_context
            try:
                first = next(container.decode(stream), None)
            except av.error.FFmpegError as exc:
                raise _fail(path, "its first frame does not decode; the file is damaged or cut short", exc) from exc
            if first is None:
                raise _fail(path, "its video stream holds no frames")
            lossless = context.name in LOSSLESS_CODECS or (
                context.name == "h264" and context.profile == LOSSLESS_H264_PROFILE)
            audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
            return VideoInfo(path, first.width, first.height, int(stream.frames or 0), stream.average_rate,
                             stream.time_base, context.name, first.format.name, lossless, audio)
    except VideoFileError:
        raise
    except av.error.EOFError as exc:
        raise _fail(path, "it ends before its first frame: it holds no frames, or is cut short", exc) from exc
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise _fail(path, "it is not a video FFmpeg can open, or it is cut short", exc) from exc


def decode_video(path: Path, audio: Callable[[av.Packet], None] | None = None) -> Iterator[DecodedFrame]:
    """Every frame of the first video stream, in order; the first audio stream's packets go to
    `audio` as they come (interleaved with the frames, so nothing piles up)."""
    path = Path(path)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        streams = [video] + ([container.streams.audio[0]] if audio is not None and container.streams.audio else [])
        count = 0
        try:
            for packet in container.demux(*streams):
                if packet.stream is not video:
                    if packet.dts is not None:  # the demuxer's empty end-of-stream packet carries nothing
                        audio(packet)
                    continue
                for frame in packet.decode():
                    count += 1
                    yield DecodedFrame(frame.to_ndarray(format="rgb24"), frame)
        except av.error.FFmpegError as exc:
            raise _fail(path, f"frame {count + 1} does not decode; the file is damaged or cut short", exc) from exc


def choose_encoder(info: VideoInfo, codec: str = "auto", quality: int | None = None) -> tuple[str, dict]:
    """(encoder, its options): the input's codec where FFmpeg can write it, lossless for a lossless
    input, else visually lossless; `codec` and `quality` (a CRF) override."""
    if codec == "auto":
        if info.codec in LOSSLESS_CODECS:
            return info.codec, {}
        codec = ENCODER_OF.get(info.codec, "libx264")
        if codec == "libx264" and info.lossless:
            return codec, {"qp": "0"}
    crf = quality if quality is not None else VISUALLY_LOSSLESS.get(codec)
    options = {"crf": str(crf)} if crf is not None and codec in VISUALLY_LOSSLESS else {}
    if codec == "libvpx-vp9" and options:
        options["b"] = "0"  # constant quality
    return codec, options


class VideoWriter:
    """Frames out to `target` + ".part" in the container its suffix names, audio packets copied as
    they are; `close()` renames it to `target` once complete, `discard()` removes it. As a context
    manager it closes on success and discards on any error (Ctrl-C included)."""

    def __init__(self, target: Path, info: VideoInfo, audio_stream: av.audio.stream.AudioStream | None = None,
                 codec: str = "auto", quality: int | None = None):
        self.target = Path(target)
        self.part = self.target.with_name(self.target.name + PART_SUFFIX)
        container_format = CONTAINERS.get(self.target.suffix.lower())
        if container_format is None:
            raise VideoFileError(f"output {self.target} must end in one of {', '.join(CONTAINERS)}")
        encoder, options = choose_encoder(info, codec, quality)
        try:
            codec_info = av.Codec(encoder, "w")
        except (av.error.FFmpegError, ValueError) as exc:
            raise VideoFileError(f"cannot write {self.target}: FFmpeg has no '{encoder}' video encoder here; "
                                 "choose another --video-codec") from exc
        if codec_info.type != "video":
            raise VideoFileError(f"cannot write {self.target}: '{encoder}' is not a video codec")
        formats = [f.name for f in codec_info.video_formats or ()]
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.part), "w", format=container_format)
        try:
            self.stream = self.container.add_stream(encoder, rate=info.rate, options=options)
            self.stream.width, self.stream.height = info.width, info.height
            self.stream.pix_fmt = info.pix_fmt if not formats or info.pix_fmt in formats else (
                "yuv420p" if "yuv420p" in formats else formats[0])
            self.stream.time_base = info.time_base
            self.stream.codec_context.time_base = info.time_base
            self.audio = self.container.add_stream_from_template(audio_stream) if audio_stream is not None else None
        except BaseException:
            self.discard()
            raise
        self.encoder = encoder
        self.frames = 0

    def copy_audio(self, packet: av.Packet) -> None:
        if self.audio is not None:
            packet.stream = self.audio
            self.container.mux(packet)

    def write(self, decoded: DecodedFrame, rgb: np.ndarray, changed: np.ndarray | None) -> None:
        """`rgb`: the frame as restored; `changed`: HxW, non-zero where it may differ from the decoded
        frame (the paste mask). Elsewhere the decoded frame's own values are written."""
        frame = _merged(decoded.frame, rgb, changed, self.stream.pix_fmt)
        frame.pts, frame.time_base = decoded.frame.pts, decoded.frame.time_base
        frame.pict_type = av.video.frame.PictureType.NONE  # the encoder chooses its own frame types
        try:
            self.container.mux(self.stream.encode(frame))
        except av.error.FFmpegError as exc:
            raise VideoFileError(f"cannot write {self.target} with {self.encoder}: "
                                 f"{' '.join(str(exc).split())}; choose another --video-codec or "
                                 "output suffix (.mkv holds every codec)") from exc
        self.frames += 1

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()
        os.replace(self.part, self.target)

    def discard(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the half-written file goes either way
            pass
        self.part.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


def _merged(decoded: av.VideoFrame, rgb: np.ndarray, changed: np.ndarray | None, pix_fmt: str) -> av.VideoFrame:
    """A frame in `pix_fmt`: the converted `rgb` where `changed`, the decoded frame's values elsewhere
    (per plane, a subsampled sample taken from `rgb` when any pixel it covers changed)."""
    if changed is None or not changed.any():
        if decoded.format.name == pix_fmt:
            return decoded
        changed = None
    out = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format=pix_fmt)
    if changed is None or decoded.format.name != pix_fmt or not _planar(out):
        return out
    height, width = changed.shape
    for index, (new, old) in enumerate(zip(out.planes, decoded.planes)):
        depth = np.uint16 if out.format.components[index].bits > 8 else np.uint8
        target, source = _plane_array(new, depth), _plane_array(old, depth)
        sy, sx = -(-height // new.height), -(-width // new.width)
        keep = ~_any_in_blocks(changed, sy, sx)[: new.height, : new.width]
        target[keep] = source[keep]
    return out


def _planar(frame: av.VideoFrame) -> bool:
    """Whether each plane holds one component (yuv420p, yuv444p10le, gbrp...): those are merged per sample."""
    return len(frame.planes) == len(frame.format.components) and all(
        c.plane == i for i, c in enumerate(frame.format.components))


def _plane_array(plane, depth) -> np.ndarray:
    item = np.dtype(depth).itemsize
    return np.frombuffer(plane, depth).reshape(plane.height, plane.line_size // item)[:, : plane.width]


def _any_in_blocks(mask: np.ndarray, sy: int, sx: int) -> np.ndarray:
    if sy == sx == 1:
        return mask != 0
    h, w = mask.shape
    padded = np.zeros((-(-h // sy) * sy, -(-w // sx) * sx), bool)
    padded[:h, :w] = mask != 0
    return padded.reshape(padded.shape[0] // sy, sy, padded.shape[1] // sx, sx).any(axis=(1, 3))
