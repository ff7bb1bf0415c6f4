"""Nods and head shakes from one face's landmark history: a pure temporal detector.

Per track, the last ``window_s`` seconds of (time, yaw ratio, nose position, face width) are
kept. A *swing* is a move of at least a threshold one way, then back the other way: the legs
of a zigzag with hysteresis, so jitter below the threshold never counts. A shake is at least
``shake_swings`` legs of the yaw ratio (fer_audio.headpose), which is face-relative, so
distance, position and a moving camera leave it alone. A nod is at least ``nod_swings`` legs
of the nose's vertical position in face widths, which only means a nod when the head stays
in place: so a nod also needs the face to keep its size (``max_growth``) and its place
(``max_travel`` face widths sideways), and the nose's up-down motion must go with the head's
pitch: its position between the eye line and the mouth line (``Head.pitch_ratio``) must
correlate with it by at least ``nod_pitch_correlation``. A moving camera moves the whole face
and leaves that position alone. Measured over 2 s windows (15 fps) that already have
three vertical legs: the real nodding clip 0.63 (lowest) / 0.70 (10th percentile) / 0.81
(median); the real still clip moved up and down like a bobbing camera at most 0.63 (median
0.38), shaken every way at most 0.54, carried across the frame at most 0.42. The default
0.7 sits in that thin gap: a nod is a run of windows, so losing its weakest ones is cheap.

Why legs, not variance: one quick turn (look away, back) moves the yaw ratio as much as a
shake does in a short window, but it is one or two legs, while a "no" is two cycles or more.

No clock, no I/O: times come in with the samples, so every case replays from a script.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fer_audio.config import GestureConfig

Gesture = Literal["nod", "shake"]

# Past ~60 deg the yaw ratio is YuNet guessing the hidden eye (fer_audio.headpose); clip it so
# one wild frame counts as a big turn, not as an infinite one.
YAW_CLIP = 1.0


# Float sums of frame intervals: allow this much slack on elapsed-time comparisons.
TIME_EPS = 1e-9


@dataclass(frozen=True)
class HeadSample:
    """One frame of one face: what the detector needs, in frame pixels."""

    t: float
    yaw_ratio: float
    nose_x: float
    nose_y: float
    width: float
    pitch_ratio: float  # fer_audio.types.Head.pitch_ratio


def count_legs(values: Sequence[float], swing: float) -> int:
    """Legs of at least ``swing`` in a zigzag over ``values`` (the one in progress included)."""
    if not values or swing <= 0:
        return 0
    legs = 0
    direction = 0
    low = high = extreme = values[0]
    for v in values[1:]:
        if direction == 0:
            low, high = min(low, v), max(high, v)
            if v - low >= swing:
                direction, extreme = 1, v
            elif high - v >= swing:
                direction, extreme = -1, v
            continue
        if (v - extreme) * direction > 0:
            extreme = v
        elif (extreme - v) * direction >= swing:
            legs += 1
            direction, extreme = -direction, v
    return legs + (1 if direction != 0 else 0)


def _correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson correlation; 0 when either does not vary."""
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    saa = sum((x - ma) ** 2 for x in a)
    sbb = sum((y - mb) ** 2 for y in b)
    return sab / math.sqrt(saa * sbb) if saa > 0 and sbb > 0 else 0.0


def classify(samples: Sequence[HeadSample], cfg: GestureConfig) -> Gesture | None:
    """The gesture these samples (oldest first, one track) show, if any; shake wins a tie."""
    if len(samples) < 3:
        return None
    yaw = [max(-YAW_CLIP, min(YAW_CLIP, s.yaw_ratio)) for s in samples]
    if count_legs(yaw, cfg.shake_swing) >= cfg.shake_swings:
        return "shake"
    widths = sorted(s.width for s in samples)
    if widths[0] <= 0 or widths[-1] / widths[0] > cfg.max_growth:
        return None  # coming closer or going away: the nose moves for that reason
    w = widths[len(widths) // 2]
    xs = [s.nose_x / w for s in samples]
    ys = [s.nose_y / w for s in samples]
    if max(xs) - min(xs) > cfg.max_travel:
        return None  # walking past
    if count_legs(ys, cfg.nod_swing) < cfg.nod_swings:
        return None
    if _correlation(ys, [s.pitch_ratio for s in samples]) < cfg.nod_pitch_correlation:
        return None  # the face moved but did not pitch: the camera, not the head
    return "nod"


class GestureDetector:
    """Per-track sample windows; :meth:`observe` returns a gesture when one completes.

    After a gesture the window starts empty, so one nod is one event, and the same gesture
    of the same track is not reported again within ``cooldown_s``.
    """

    def __init__(self, cfg: GestureConfig) -> None:
        self._cfg = cfg
        self._windows: dict[int, deque[HeadSample]] = {}
        self._last: dict[tuple[int, Gesture], float] = {}

    def reconfigure(self, cfg: GestureConfig) -> None:
        self._cfg = cfg

    def observe(self, track: int, sample: HeadSample) -> Gesture | None:
        cfg = self._cfg
        if not cfg.enabled:
            return None
        if not all(math.isfinite(v) for v in (sample.t, sample.yaw_ratio, sample.nose_x,
                                                sample.nose_y, sample.width, sample.pitch_ratio)):
            return None
        window = self._windows.setdefault(track, deque())
        if window and sample.t <= window[-1].t:
            return None  # a duplicate or out-of-order frame adds nothing
        window.append(sample)
        while window and sample.t - window[0].t > cfg.window_s + TIME_EPS:
            window.popleft()
        gesture = classify(window, cfg)
        if gesture is None:
            return None
        window.clear()
        last = self._last.get((track, gesture))
        if last is not None and sample.t - last < cfg.cooldown_s - TIME_EPS:
            return None
        self._last[(track, gesture)] = sample.t
        return gesture

    def forget(self, track: int) -> None:
        self._windows.pop(track, None)
        for key in [k for k in self._last if k[0] == track]:
            del self._last[key]

    def reset(self) -> None:
        self._windows.clear()
        self._last.clear()
