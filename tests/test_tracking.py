"""Face tracks across a clip and the smoothing of each track (gpen_pipeline.tracking, .smoothing): on
face records for the geometry, and with the real detector where a photo is the point."""
from __future__ import annotations

import numpy as np
import pytest

from gpen_pipeline import Face, SelectOptions, TrackOptions, find_clip_faces, find_faces
from gpen_pipeline.align import aligned_record
from gpen_pipeline.smoothing import smooth_track
from gpen_pipeline.tracking import bridge_gaps, link_tracks, track_clip

# A face's five landmarks around its box's top-left corner, for a 100 px face.
SHAPE = np.array([[35, 45], [65, 45], [50, 60], [38, 75], [62, 75]], np.float32)


def face_at(x: float, y: float, size: float = 100.0, score: float = 0.9, jitter=None) -> Face:
    landmarks = SHAPE * (size / 100.0) + np.array([x, y], np.float32)
    if jitter is not None:
        landmarks = landmarks + jitter.normal(0.0, 1.0, landmarks.shape).astype(np.float32)
    return Face((x, y, x + size, y + size), score, landmarks.astype(np.float32))


def crop_corners(face: Face) -> np.ndarray:
    """Where the four corners of a 512 px alignment crop of `face` lie in the image."""
    aligned = aligned_record(face, 512, (1000, 1000))
    return np.array([[0, 0, 1], [511, 0, 1], [0, 511, 1], [511, 511, 1]], float) @ aligned.inverse.T


def test_tracks_keep_their_ids_through_crossing_faces_and_missed_detections():
    """Two faces walk past each other at 12 px a frame; the one behind is missed while they overlap,
    the other is missed in two frames of its own. Each keeps its number, and its missed frames are
    filled in between its neighbours."""
    frames, truth = [], []
    for t in range(40):
        walking_right, walking_left = face_at(40 + 12 * t, 200), face_at(520 - 12 * t, 210, size=90)
        faces, who = [], []
        if t not in (5, 6):
            faces.append(walking_right), who.append("right")
        if not 18 <= t <= 21:  # behind the other one
            faces.append(walking_left), who.append("left")
        order = np.random.default_rng(t).permutation(len(faces))  # detectors list faces in no fixed order
        frames.append([faces[i] for i in order])
        truth.append([who[i] for i in order])
    linked = link_tracks(frames, max_gap=5)
    ids = {"right": set(), "left": set()}
    for faces, names in zip(linked, truth):
        for face, name in zip(faces, names):
            ids[name].add(face.track)
    assert len(ids["right"]) == len(ids["left"]) == 1 and ids["right"] != ids["left"]

    bridged = bridge_gaps(linked, max_gap=5)
    assert all(len(faces) == 2 for faces in bridged)
    (left_id,) = ids["left"]
    hidden = next(f for f in bridged[19] if f.track == left_id)
    assert np.allclose(hidden.box, face_at(520 - 12 * 19, 210, size=90).box, atol=1e-3)


def test_a_face_missed_longer_than_max_gap_comes_back_as_a_new_track():
    frames = [[face_at(100, 100)] if t < 5 or t > 12 else [] for t in range(16)]
    linked = bridge_gaps(link_tracks(frames, max_gap=3), max_gap=3)
    assert {f.track for f in linked[0]} == {0} and {f.track for f in linked[15]} == {1}
    assert all(not faces for faces in linked[5:13])


def test_selection_picks_whole_tracks_the_largest_face_of_the_clip():
    """The large face is smaller than the other in a few frames; "largest" still keeps it in every
    frame, and tracks are numbered as a still image's faces, largest first, so indices "1" is the other."""
    frames = [[face_at(50, 50, size=120 if t % 5 else 60), face_at(400, 60, size=80)] for t in range(20)]
    largest = track_clip(frames, SelectOptions(order="largest"), TrackOptions(smoothing=0))
    assert all(len(chosen) == 1 and chosen[0].box[0] == 50 and chosen[0].track == 0 for _, chosen in largest)
    second = track_clip(frames, SelectOptions(indices="1"), TrackOptions(smoothing=0))
    assert all([f.box[0] for f in chosen] == [400] and chosen[0].track == 1 for _, chosen in second)


def test_smoothing_cuts_the_jitter_of_a_still_face_and_follows_a_fast_move_within_three_frames():
    rng = np.random.default_rng(0)
    still = smooth_track([face_at(200, 200, size=160, jitter=rng) for _ in range(60)], 0.5)
    raw = [face_at(200, 200, size=160, jitter=rng) for _ in range(60)]
    change = lambda faces: np.abs(np.diff([crop_corners(f) for f in faces], axis=0)).mean()  # noqa: E731
    assert change(still) < change(raw) / 5

    moving = [face_at(100 + 20 * max(0, t - 10), 200, size=160) for t in range(30)]
    smoothed = smooth_track(moving, 0.5)
    for t in range(13, 30):  # from three frames after the face starts moving at 20 px a frame
        assert np.abs(crop_corners(smoothed[t]) - crop_corners(moving[t])).max() < 1.0


def test_smoothing_never_moves_a_still_image_or_a_still_clip(detector, astronaut):
    alone = find_faces(astronaut, detector).selected
    for frames in ([astronaut], [astronaut] * 4):
        clip = find_clip_faces(frames, detector, track=TrackOptions(smoothing=1.0))
        for found in clip:
            assert len(found.selected) == len(alone) == 1
            assert np.array_equal(found.selected[0].landmarks, alone[0].landmarks)
            assert found.selected[0].box == alone[0].box and found.selected[0].track == 0


@pytest.mark.parametrize("bad", [dict(smoothing=-0.1), dict(smoothing=1.5), dict(max_gap=-1), dict(max_gap=2.5)])
def test_track_options_refuse_values_out_of_range(bad):
    with pytest.raises(ValueError, match="smoothing|max_gap"):
        TrackOptions(**bad)


def test_a_missed_frame_is_bridged_where_a_weak_candidate_overlaps_the_interpolated_face():
    linked = link_tracks([[face_at(100, 100)], [], [face_at(120, 100)]])
    weak_here, weak_elsewhere = face_at(112, 102, score=0.2), face_at(600, 600, score=0.2)
    bridged = bridge_gaps(linked, max_gap=3, evidence=[[], [weak_here], []])
    assert [len(faces) for faces in bridged] == [1, 1, 1]
    assert bridged[1][0].box == pytest.approx((110, 100, 210, 200))
    assert bridge_gaps(linked, max_gap=3, evidence=[[], [weak_elsewhere], []])[1] == []


def test_a_faceless_frame_between_two_faces_is_not_given_one(detector):
    # A face the detector misses is bridged only where it still saw a weaker candidate: a frame
    # without any face (a cut, an unrelated image in a batch) stays without one.
    import skimage.data

    face = np.ascontiguousarray(skimage.data.astronaut()[::2, ::2])
    empty = np.full_like(face, 90)
    found = find_clip_faces([face, face, empty, face, face], detector, SelectOptions(), TrackOptions(max_gap=5))
    assert [len(f.selected) for f in found] == [1, 1, 0, 1, 1]
