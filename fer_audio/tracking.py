"""Keep one id per person across frames, so each person has their own smoothing state.

Pure logic: boxes in, tracks out; no I/O, no clock. Matching is greedy, best overlap first,
which for the handful of faces in a conversation gives the same result as an optimal
assignment without its cost or its surprises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fer_audio.config import TrackerConfig
from fer_audio.types import Box, Track

# A face that jumped further than this many of its own widths between two frames is
# taken for a different person rather than a fast move.
CENTRE_MATCH_WIDTHS = 0.5


@dataclass
class _State:
    id: int
    box: Box
    missed: int = 0


def _centre_distance(a: Box, b: Box) -> float:
    return math.hypot(a.cx - b.cx, (a.y + a.h / 2) - (b.y + b.h / 2))


def _greedy(candidates: list[tuple[float, int, int]], pairs: list[tuple[int, int]]) -> None:
    """Add (track, box) pairs best key first; ties go to the older track, then the larger box."""
    used_t = {ti for ti, _ in pairs}
    used_b = {bi for _, bi in pairs}
    for _, ti, bi in sorted(candidates):
        if ti not in used_t and bi not in used_b:
            pairs.append((ti, bi))
            used_t.add(ti)
            used_b.add(bi)


class Tracker:
    """Greedy IoU tracker with a centre-distance fallback for fast moves.

    Ids are ints from 1 and are never reused, not even after ``reset()``: a later person
    must not inherit an earlier person's state downstream.
    """

    def __init__(self, cfg: TrackerConfig) -> None:
        self._cfg = cfg
        self._tracks: list[_State] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track (a new scene, a reopened camera)."""
        self._tracks = []

    def update(self, boxes: list[Box], frame_w: int, frame_h: int) -> list[Track]:
        """Tracks alive after this frame, ordered by id.

        Seen tracks have ``missed`` 0 and this frame's box; unseen ones keep their last box
        for up to ``max_missed`` frames, then are dropped.
        """
        if frame_w <= 0 or frame_h <= 0:
            raise ValueError(f"frame size must be positive, got {frame_w}x{frame_h}")
        pairs = self._match(boxes)
        matched_tracks = {ti for ti, _ in pairs}
        matched_boxes = {bi for _, bi in pairs}

        survivors: list[_State] = []
        for ti, bi in pairs:
            state = self._tracks[ti]
            state.box = boxes[bi]
            state.missed = 0
            survivors.append(state)
        for ti, state in enumerate(self._tracks):
            if ti not in matched_tracks:
                state.missed += 1
                if state.missed <= self._cfg.max_missed:
                    survivors.append(state)
        for bi, box in enumerate(boxes):
            if bi not in matched_boxes:
                survivors.append(_State(self._next_id, box))
                self._next_id += 1

        self._tracks = sorted(survivors, key=lambda s: s.id)
        return [self._to_track(s, frame_w, frame_h) for s in self._tracks]

    def _match(self, boxes: list[Box]) -> list[tuple[int, int]]:
        """(track index, box index) pairs: by IoU first, then by centre distance for the rest."""
        by_iou: list[tuple[float, int, int]] = []
        for ti, t in enumerate(self._tracks):
            for bi, b in enumerate(boxes):
                overlap = t.box.iou(b)
                if overlap >= self._cfg.iou_threshold:
                    by_iou.append((-overlap, ti, bi))
        pairs: list[tuple[int, int]] = []
        _greedy(by_iou, pairs)

        used_t = {ti for ti, _ in pairs}
        used_b = {bi for _, bi in pairs}
        by_distance: list[tuple[float, int, int]] = []
        for ti, t in enumerate(self._tracks):
            if ti in used_t:
                continue
            for bi, b in enumerate(boxes):
                distance = _centre_distance(t.box, b)
                if bi not in used_b and distance < CENTRE_MATCH_WIDTHS * t.box.w:
                    by_distance.append((distance, ti, bi))
        _greedy(by_distance, pairs)
        return pairs

    @staticmethod
    def _to_track(state: _State, frame_w: int, frame_h: int) -> Track:
        x = min(1.0, max(-1.0, 2.0 * state.box.cx / frame_w - 1.0))
        size = min(1.0, max(0.0, state.box.h / frame_h))
        return Track(id=state.id, box=state.box, x=x, size=size, missed=state.missed)
