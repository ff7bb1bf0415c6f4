"""Detect every n-th frame, follow known faces in between (issue 13): real YuNet on real photos.

The question is whether following loses or invents faces compared with a full
pass on every frame: every face a full pass finds must be found by the
follower on the same frame (a new face within ``detect_every`` frames), with
a box on the same face (IoU >= 0.7, tighter than the 0.5 of "the same
object", since both come from the same network).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from media import load_photo, panning_frames, place

from fer_audio.config import DetectorConfig
from fer_audio.detection import YuNetDetector
from fer_audio.follow import FollowingDetector, make_following
from fer_audio.types import Box

SAME_FACE_IOU = 0.7


def follower(every: int = 3) -> FollowingDetector:
    cfg = DetectorConfig(detect_every=every)
    return FollowingDetector(YuNetDetector(cfg), cfg)


def matched(full: list[Box], got: list[Box]) -> bool:
    return len(full) == len(got) and all(any(a.iou(b) >= SAME_FACE_IOU for b in got) for a in full)


def test_a_moving_face_is_followed_on_every_frame_with_fewer_full_passes() -> None:
    frames = panning_frames(30, size=(640, 480))
    full, fol = YuNetDetector(DetectorConfig()), follower(3)
    for i, frame in enumerate(frames):
        want, got = full.detect(frame), fol.detect(frame)
        assert len(want) == 1, f"frame {i}: the full pass should see the face"
        assert matched(want, got), f"frame {i}: followed {got}, full pass {want}"
        assert got[0].landmarks is not None  # fresh landmarks for the crop, not the old ones
    assert fol.full_passes == 10 and fol.patch_passes == 20


def _two_faces(with_second: bool) -> np.ndarray:
    photo = load_photo("obama-480p.jpg")
    face = cv2.resize(photo, (round(photo.shape[1] * 200 / photo.shape[0]), 200))
    left = place(face, (640, 480), -140, 140)
    if not with_second:
        return left
    right = place(face, (640, 480), 300, 140)
    return np.where(right != 128, right, left).astype(np.uint8)


def test_a_face_that_appears_is_found_by_the_next_full_pass() -> None:
    fol = follower(3)
    seen = []
    for i in range(9):
        seen.append(len(fol.detect(_two_faces(with_second=i >= 4))))
    # Frames 0, 3, 6 are full passes: the face arriving at frame 4 is found at frame 6.
    assert seen == [1, 1, 1, 1, 1, 1, 2, 2, 2]


def test_a_face_that_leaves_is_not_reported_between_full_passes() -> None:
    fol = follower(3)
    empty = np.full((480, 640, 3), 128, np.uint8)
    frames = [_two_faces(True), _two_faces(True), empty, empty]
    assert [len(fol.detect(f)) for f in frames] == [2, 2, 0, 0]


def test_the_full_pass_runs_when_the_patches_would_cost_more() -> None:
    # A face filling a small frame: its neighbourhood is the whole frame, so a patch saves nothing.
    fol = follower(3)
    frame = np.ascontiguousarray(load_photo("obama-480p.jpg")[0:220, 330:560])  # the face is ~110x150 px
    assert [len(fol.detect(frame)) for _ in range(4)] == [1, 1, 1, 1]
    assert fol.patch_passes == 0 and fol.full_passes == 4


def test_reset_makes_the_next_frame_a_full_pass() -> None:
    fol = follower(5)
    frame = panning_frames(1, size=(640, 480))[0]
    fol.detect(frame)
    fol.detect(frame)
    fol.reset()
    fol.detect(frame)
    assert fol.full_passes == 2


@pytest.mark.parametrize(("every", "backend", "wrapped"), [(1, "yunet", False), (3, "yunet", True),
                                                          (3, "haar", False)])
def test_only_yunet_with_n_above_one_is_wrapped(every: int, backend: str, wrapped: bool) -> None:
    from fer_audio.detection import make_detector

    cfg = DetectorConfig(detect_every=every, backend=backend)  # type: ignore[arg-type]
    assert isinstance(make_following(make_detector(cfg), cfg), FollowingDetector) == wrapped
