"""A clip's tracked faces keep a steady paste mask from frame to frame (track_memory.py)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gpen_pipeline import PasteOptions, RestoredFace, TrackMemory, align_faces, find_clip_faces, paste_back
from gpen_pipeline.cut import as_tensor, cut_crops

SIZE = 128
FRAMES = 8


@pytest.fixture(scope="module")
def parser(narrow_parser):
    """A random ParseNet: its parse maps change with each frame's noise, as a real one's edges do."""
    return narrow_parser


@pytest.fixture(scope="module")
def clip(astronaut, detector):
    """A still face with fresh sensor noise (sigma 6) in every frame, tracked, each face 'restored'
    into a smoothed copy of its crop."""
    rng = np.random.default_rng(5)
    frames = [np.clip(astronaut + rng.normal(0.0, 6.0, astronaut.shape), 0, 255).astype(np.uint8)
              for _ in range(FRAMES)]
    found = find_clip_faces(frames, detector)
    restored = []
    for frame, faces in zip(frames, found):
        aligned, _ = align_faces(frame, faces.selected, SIZE)
        crops = cut_crops(as_tensor(frame), [a.affine for a in aligned], SIZE)
        smooth = torch.nn.functional.avg_pool2d(crops.float(), 5, stride=1, padding=2, count_include_pad=False)
        restored.append([RestoredFace(a, s.round().to(torch.uint8), c) for a, c, s in zip(aligned, crops, smooth)])
    return frames, restored


def _paste_clip(frames, restored, options, parser, memory):
    out = []
    for frame, faces in zip(frames, restored):
        out.append(paste_back(frame, faces, options, parser, memory=memory))
        if memory is not None:
            memory.next_frame()
    return out


def _change(values) -> float:
    """Mean absolute change from frame to frame."""
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(values, values[1:])]))


def test_a_still_face_keeps_a_steadier_mask_along_its_track(clip, parser):
    frames, restored = clip
    options = PasteOptions(mask_mode="parse")
    plain = _paste_clip(frames, restored, options, parser, None)
    steady = _paste_clip(frames, restored, options, parser, TrackMemory.for_smoothing(0.5))
    face = plain[0].mask.numpy() > 0
    masks = lambda results: [r.mask.numpy()[face] for r in results]  # noqa: E731
    assert _change(masks(steady)) < 0.75 * _change(masks(plain))


def test_a_face_without_a_track_is_pasted_as_without_memory(clip, parser):
    frames, restored = clip
    untracked = [[replace(face, aligned=replace(face.aligned, face=replace(face.aligned.face, track=None)))
                  for face in faces] for faces in restored]
    options = PasteOptions(mask_mode="parse")
    with_memory = _paste_clip(frames[:3], untracked[:3], options, parser, TrackMemory(0.6))
    without = _paste_clip(frames[:3], untracked[:3], options, parser, None)
    for a, b in zip(with_memory, without):
        assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)


def test_every_paste_of_one_frame_sees_the_same_frame_before(clip, parser):
    frames, restored = clip
    options = PasteOptions(mask_mode="parse")
    memory = TrackMemory(0.6)
    paste_back(frames[0], restored[0], options, parser, memory=memory)
    memory.next_frame()
    first = paste_back(frames[1], restored[1], options, parser, memory=memory)
    again = paste_back(frames[1], restored[1], options, parser, memory=memory)  # e.g. the identity guard's
    assert torch.equal(first.image, again.image) and torch.equal(first.mask, again.mask)
