"""Tracker with scripted boxes: ids, misses, positions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_audio.config import TrackerConfig
from fer_audio.tracking import Tracker
from fer_audio.types import Box, Track

W, H = 640, 480


def by_id(tracks: list[Track]) -> dict[int, Track]:
    return {t.id: t for t in tracks}


def test_moving_face_keeps_its_id() -> None:
    tracker = Tracker(TrackerConfig())
    for i in range(60):
        # Drifting right and down, growing a little: a person walking closer.
        tracks = tracker.update([Box(50 + 8 * i, 100 + i, 120 + i, 150 + i, 0.9)], W, H)
        assert [(t.id, t.missed) for t in tracks] == [(1, 0)]
        assert tracks[0].box == Box(50 + 8 * i, 100 + i, 120 + i, 150 + i, 0.9)


def test_two_faces_crossing_sides_keep_their_ids() -> None:
    """A (near, larger, higher) walks left to right while B (further, smaller, lower) walks right to left."""
    tracker = Tracker(TrackerConfig())
    first = tracker.update([Box(20, 100, 140, 140), Box(500, 200, 90, 90)], W, H)
    ids = {t.box.x: t.id for t in first}
    a_id, b_id = ids[20], ids[500]
    assert {a_id, b_id} == {1, 2}
    for i in range(1, 41):
        a = Box(20 + 12 * i, 100, 140, 140)
        b = Box(500 - 12 * i, 200, 90, 90)
        tracks = by_id(tracker.update([b, a], W, H))  # detector order varies; ids must not
        assert set(tracks) == {a_id, b_id}
        assert tracks[a_id].box == a and tracks[b_id].box == b
    assert tracks[a_id].x > 0.5 and tracks[b_id].x < -0.5  # they have swapped sides
    assert first[0].x * tracks[first[0].id].x < 0


@pytest.mark.parametrize("max_missed", [0, 1, 5])
def test_face_missing_up_to_max_missed_frames_keeps_its_id(max_missed: int) -> None:
    tracker = Tracker(TrackerConfig(max_missed=max_missed))
    box = Box(200, 150, 100, 120)
    assert [t.id for t in tracker.update([box], W, H)] == [1]
    for gap in range(1, max_missed + 1):
        tracks = tracker.update([], W, H)
        # Still reported, with its last box, counting the frames it has been unseen.
        assert [(t.id, t.missed, t.box) for t in tracks] == [(1, gap, box)]
    back = tracker.update([Box(204, 152, 100, 120)], W, H)
    assert [(t.id, t.missed) for t in back] == [(1, 0)]


@pytest.mark.parametrize("max_missed", [0, 1, 5])
def test_face_missing_longer_gets_a_new_id(max_missed: int) -> None:
    tracker = Tracker(TrackerConfig(max_missed=max_missed))
    box = Box(200, 150, 100, 120)
    tracker.update([box], W, H)
    for _ in range(max_missed):
        tracker.update([], W, H)
    assert tracker.update([], W, H) == []  # one frame too many: dropped
    assert [(t.id, t.missed) for t in tracker.update([box], W, H)] == [(2, 0)]


def test_fast_diagonal_move_is_matched_by_centre_distance() -> None:
    cfg = TrackerConfig(iou_threshold=0.3)
    tracker = Tracker(cfg)
    a = Box(100, 100, 100, 100)
    b = Box(135, 135, 100, 100)  # centre moved 49.5 px < 0.5 x 100, but IoU is only 0.27
    assert a.iou(b) < cfg.iou_threshold
    tracker.update([a], W, H)
    assert [(t.id, t.missed) for t in tracker.update([b], W, H)] == [(1, 0)]


def test_jump_beyond_half_a_face_width_is_a_new_person() -> None:
    tracker = Tracker(TrackerConfig(max_missed=2))
    tracker.update([Box(100, 100, 100, 100)], W, H)
    tracks = tracker.update([Box(160, 100, 100, 100)], W, H)  # 60 px: IoU 0.25, distance 0.6 widths
    assert [(t.id, t.missed) for t in tracks] == [(1, 1), (2, 0)]


def test_best_overlap_wins_when_two_tracks_compete() -> None:
    tracker = Tracker(TrackerConfig(iou_threshold=0.1))
    tracker.update([Box(100, 100, 100, 100), Box(180, 100, 100, 100)], W, H)
    # One face remains, nearer to track 2's place than to track 1's.
    tracks = by_id(tracker.update([Box(170, 100, 100, 100)], W, H))
    assert tracks[2].missed == 0 and tracks[1].missed == 1


def test_x_is_minus_one_to_one_and_size_is_relative_height() -> None:
    tracker = Tracker(TrackerConfig())
    boxes = [Box(0, 0, 0.0, 48), Box(W, 100, 0.0, 96), Box(W / 2 - 50, 200, 100, 240), Box(-80, 0, 40, 600)]
    tracks = tracker.update(boxes, W, H)
    xs = [t.x for t in tracks]
    assert xs == pytest.approx([-1.0, 1.0, 0.0, -1.0])  # the last one is clamped
    assert [t.size for t in tracks] == pytest.approx([0.1, 0.2, 0.5, 1.0])
    assert all(-1.0 <= t.x <= 1.0 and 0.0 <= t.size <= 1.0 for t in tracks)


def test_ids_are_never_reused_even_after_reset() -> None:
    tracker = Tracker(TrackerConfig(max_missed=0))
    tracker.update([Box(10, 10, 50, 50), Box(300, 10, 50, 50)], W, H)
    tracker.reset()
    tracks = tracker.update([Box(10, 10, 50, 50)], W, H)
    assert [t.id for t in tracks] == [3]


def test_bad_frame_size_is_refused() -> None:
    with pytest.raises(ValueError, match="0x480"):
        Tracker(TrackerConfig()).update([], 0, 480)


box_strategy = st.builds(
    Box,
    x=st.floats(0, W - 40),
    y=st.floats(0, H - 40),
    w=st.floats(24, 200),
    h=st.floats(24, 200),
)


@settings(max_examples=60, deadline=None)
@given(frames=st.lists(st.lists(box_strategy, max_size=4), max_size=25), max_missed=st.integers(0, 3))
def test_invariants_hold_for_any_box_sequence(frames: list[list[Box]], max_missed: int) -> None:
    tracker = Tracker(TrackerConfig(max_missed=max_missed))
    twin = Tracker(TrackerConfig(max_missed=max_missed))
    retired: set[int] = set()
    alive: set[int] = set()
    for boxes in frames:
        tracks = tracker.update(boxes, W, H)
        assert tracks == twin.update(boxes, W, H)  # pure: same input, same output
        ids = [t.id for t in tracks]
        assert ids == sorted(set(ids))  # unique, ordered
        assert sum(t.missed == 0 for t in tracks) == len(boxes)  # every box is in exactly one track
        assert {t.box for t in tracks if t.missed == 0} == set(boxes)
        assert all(0 <= t.missed <= max_missed for t in tracks)
        assert all(-1.0 <= t.x <= 1.0 and 0.0 < t.size <= 1.0 for t in tracks)
        assert not retired & set(ids)  # a dropped id never comes back
        retired |= alive - set(ids)
        alive = set(ids)
