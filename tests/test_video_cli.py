"""Video files through the command line, as users run it: clips built with PyAV, `gpen_cli.py` in a
subprocess, the results decoded with PyAV again."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from fixture_files import S64_MODEL_FILE
from gpen_pipeline.detection import detect_faces
from gpen_pipeline.identity import IdentityCheck, reference_embeddings, reference_similarities
from test_cli import ROOT, gpen, load_rgb, save_rgb

WIDTH, HEIGHT, RATE = 160, 120, 24


def write_clip(path: Path, photo: np.ndarray, frames: int = 8, codec: str = "libx264", audio: bool = True,
               options: dict | None = None) -> Path:
    """The photo's face drifting right a pixel a frame over a grey ground, with a tone as AAC audio."""
    face = cv2.resize(photo[0:400, 60:460], (HEIGHT, HEIGHT), interpolation=cv2.INTER_AREA)
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=RATE, options=options or {})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        sound = out.add_stream("aac", rate=16000) if audio else None
        for index in range(frames):
            rgb = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
            rgb[:, 10 + index: 10 + index + HEIGHT] = face[:, : WIDTH - 10 - index]
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(16000 * frames // RATE) / 16000)
            samples = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="fltp", layout="mono")
            samples.sample_rate, samples.pts = 16000, 0
            out.mux(sound.encode(samples))
            out.mux(sound.encode(None))
    return path


def frames_of(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(container.streams.video[0]))


def audio_packets(path: Path) -> list[tuple[int, int, bytes]]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [(p.pts, p.duration, bytes(p)) for p in container.demux(stream) if p.dts is not None]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, astronaut):
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", astronaut)


def test_a_video_keeps_its_audio_packets_frame_count_and_timestamps(clip, tmp_path):
    out = tmp_path / "restored.mp4"
    done = gpen("restore", clip, "--model", S64_MODEL_FILE, "-o", out)
    assert "audio copied" in done.stdout and not (tmp_path / "restored.mp4.part").exists()
    before, after = frames_of(clip), frames_of(out)
    assert [f.pts for f in after] == [f.pts for f in before] and len(after) == 8
    assert after[0].time_base == before[0].time_base
    assert audio_packets(out) == audio_packets(clip)
    changed = [np.abs(a.to_ndarray(format="rgb24").astype(int) - b.to_ndarray(format="rgb24")).max()
               for a, b in zip(after, before)]
    assert min(changed) > 20  # the faces were restored in every frame


def test_a_lossless_video_comes_back_lossless_with_the_pixels_away_from_the_faces_as_decoded(astronaut, tmp_path):
    source = write_clip(tmp_path / "master.mkv", astronaut, codec="ffv1", audio=False)
    out = tmp_path / "restored.mkv"
    gpen("restore", source, "--model", S64_MODEL_FILE, "-o", out, "--mask", "box")
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "ffv1"
    for before, after in zip(frames_of(source), frames_of(out)):
        planes = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in before.planes]
        same = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in after.planes]
        luma_changed = planes[0] != same[0]
        assert 0.02 < luma_changed.mean() < 0.6  # the face, and only around it
        rows, cols = np.nonzero(luma_changed)
        assert cols.min() > 5 and cols.max() < WIDTH - 5  # the grey margins are untouched
        assert all(np.array_equal(a[:, :2], b[:, :2]) for a, b in zip(planes, same))


def test_detect_json_lists_each_frame_with_its_track_ids(clip):
    frames = json.loads(gpen("detect", clip, "--json").stdout)
    assert [f["frame"] for f in frames] == list(range(8))
    assert all([face["track"] for face in f["faces"]] == [0] for f in frames)


def test_an_interrupted_run_leaves_no_output_file(astronaut, tmp_path):
    source = write_clip(tmp_path / "long.mp4", astronaut, frames=48)
    out = tmp_path / "restored.mp4"
    part = tmp_path / "restored.mp4.part"
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"}
    run = subprocess.Popen([sys.executable, str(ROOT / "gpen_cli.py"), "restore", str(source), "--model",
                            str(S64_MODEL_FILE), "-o", str(out)], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not part.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert part.exists(), "the run never began writing"
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130 and "interrupted" in stderr
    assert not out.exists() and not part.exists()
    assert source.exists()


def _no_video(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=16000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        samples.sample_rate, samples.pts = 16000, 0
        out.mux(sound.encode(samples))
        out.mux(sound.encode(None))
    return path


def _no_frames(path: Path) -> Path:
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("ffv1", rate=RATE)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        out.start_encoding()  # the header, with its video stream, and then nothing
    return path


def _cut_short(path: Path, photo) -> Path:
    whole = write_clip(path.with_name("whole.mp4"), photo).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return path


@pytest.mark.parametrize("make, says", [
    (lambda p, photo: _no_video(p.with_name("sound.mp4")), "has no video stream"),
    (lambda p, photo: _no_frames(p.with_name("empty.mkv")), "no frames"),
    (lambda p, photo: _cut_short(p.with_name("cut.mp4"), photo), "cut short"),
], ids=["no video stream", "zero frames", "truncated"])
def test_bad_video_input_gets_one_clear_message(make, says, astronaut, tmp_path):
    source = make(tmp_path / "x", astronaut)
    out = tmp_path / "out.mp4"
    done = gpen("restore", source, "--model", S64_MODEL_FILE, "-o", out, check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert source.name in lines[0] and says in lines[0] and "Traceback" not in done.stderr
    assert not out.exists() and not (tmp_path / "out.mp4.part").exists()


@pytest.mark.parametrize("option", [["--min-identity", "0.5"], ["--report", "report.json"]])
def test_per_frame_identity_options_on_a_video_are_refused_not_ignored(clip, tmp_path, option):
    out = tmp_path / "out.mp4"
    done = gpen("restore", clip, "--model", S64_MODEL_FILE, "-o", out, *option, check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "not on video files" in lines[0], done.stderr
    assert "flicker" in lines[0] and not out.exists()


def test_a_reference_photo_restores_that_persons_track_in_every_frame(two_people, arcface_file, recognizer,
                                                                       detector, tmp_path):
    scene, boxes = two_people
    small = cv2.resize(scene, (550, 300), interpolation=cv2.INTER_AREA)
    source = tmp_path / "two.mkv"
    with av.open(str(source), "w") as out:  # lossless, so "unchanged" can be checked exactly
        stream = out.add_stream("ffv1", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = 550, 300, "yuv444p"
        for index in range(6):
            frame = av.VideoFrame.from_ndarray(np.roll(small, index, axis=1), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    x0, y0, x1, y1 = boxes["hopper"]
    reference = save_rgb(tmp_path / "hopper.png", np.ascontiguousarray(scene[y0:y1, x0:x1]))
    # The random model's similarities are not insightface's: the threshold goes halfway between the two faces.
    refs = reference_embeddings(recognizer, detector, [load_rgb(reference)])
    similar = reference_similarities(IdentityCheck(recognizer, references=refs), small, detect_faces(detector, small))
    done = gpen("restore", source, "--model", S64_MODEL_FILE, "-o", tmp_path / "out.mkv", "--mask", "box",
                "--recognizer", arcface_file, "--reference", reference, "--reference-threshold", f"{np.mean(similar):.3f}")
    assert "1 of 2 face track(s) like the reference restored" in done.stderr
    half = 550 // 2
    for before, after in zip(frames_of(source), frames_of(tmp_path / "out.mkv")):
        changed = np.any(before.to_ndarray(format="rgb24") != after.to_ndarray(format="rgb24"), axis=2)
        assert changed[:, half:].any() and not changed[:, :half].any()
