"""Decide when a face's expression is stable enough to mention.

A pure state machine: timestamped observations in, events out. It has no
clock and does no I/O, so every behaviour can be replayed from a script.

Per track:

* Probabilities are smoothed exponentially with a half-life in seconds,
  ``alpha = 1 - 0.5 ** (dt / half_life_s)``, so a camera that drops frames
  gives the same smoothed curve as one that does not. The first observation
  of a track initialises the average.
* Expression states: *none* or *current = L*. Beside it runs at most one
  *candidate*: the smoothed argmax once it reaches its enter threshold (per
  label: see :func:`resolve_thresholds`; and is not already current). The
  candidate survives while it stays the argmax and at least its exit threshold; after ``min_dwell_s`` it becomes current
  and an ``expression`` event is emitted, unless the same label of the same
  track was cued less than ``cooldown_s`` earlier (then only the state
  changes). The current expression is left, silently, when it falls below
  its exit threshold (hysteresis) or when another candidate matures.
* Presence: ``face_appeared`` once a track has been seen for
  ``appear_after_s``; ``face_lost`` when an announced track has been unseen
  for ``lost_after_s``. A track that was never announced vanishes silently.
  Expression events wait for the announcement, so a brief false detection
  never says anything.

Time never runs backwards inside the smoother: a step whose ``t`` is not
later than the latest one seen (a duplicate or out-of-order frame) is
handled at the latest time, so for a track already updated then ``dt`` is 0,
its probabilities do not move the average, and no timer goes negative. A
looping file whose clock restarts should call :meth:`Smoother.reset`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fer_audio.config import SmoothingConfig
from fer_audio.errors import FerAudioError
from fer_audio.types import Event, Observation

# Timestamps are sums of float frame intervals: 0.4 s of dwell measured over
# ten 0.04 s frames can come out as 0.39999999999. Elapsed-time comparisons
# allow this much slack so rounding never costs a frame.
TIME_EPS = 1e-9

# Face events are certain by construction (they already waited out their
# delays), so they carry full confidence.
FACE_EVENT_CONFIDENCE = 1.0

_KIND_ORDER = {"face_appeared": 0, "expression": 1, "face_lost": 2}


class ObservationError(FerAudioError, ValueError):
    """An input the smoother cannot use; the message names the track and time."""


@dataclass(frozen=True)
class TrackState:
    """A read-only snapshot of one track, for status output and tests."""

    track: int
    first_seen: float
    last_seen: float
    announced: bool
    current: str | None
    candidate: str | None
    candidate_since: float | None
    probs: dict[str, float]  # smoothed, by label
    x: float
    size: float


@dataclass
class _Track:
    first_seen: float
    last_seen: float
    smoothed: np.ndarray
    x: float
    size: float
    announced: bool = False
    current: int | None = None
    candidate: int | None = None
    candidate_since: float = 0.0
    last_cue: dict[int, float] = field(default_factory=dict)


def _elapsed(now: float, since: float, span: float) -> bool:
    return now - since >= span - TIME_EPS


def resolve_thresholds(cfg: SmoothingConfig, labels: Sequence[str],
                       card: Mapping[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-label (enter, exit) thresholds, in label order.

    Enter: the config's own per-expression value, else the model card's
    (unless ``card_thresholds`` is off), else ``enter_threshold``. Exit keeps
    the configured hysteresis in proportion: a label entered at a lower
    probability is left at a proportionally lower one, never above ``exit_threshold``.
    """
    card = card if cfg.card_thresholds and card else {}
    enter = np.array([cfg.enter_thresholds.get(lb, card.get(lb, cfg.enter_threshold)) for lb in labels])
    exit_ = cfg.exit_threshold * np.minimum(1.0, enter / cfg.enter_threshold)
    return enter, exit_


class Smoother:
    """Per-track smoothing and expression/presence state machine."""

    def __init__(self, cfg: SmoothingConfig, labels: Sequence[str],
                 card_thresholds: Mapping[str, float] | None = None) -> None:
        if isinstance(labels, str) or len(labels) == 0:
            raise ValueError("smoother labels: expected a non-empty sequence of label names")
        dupes = sorted(lb for lb, k in Counter(labels).items() if k > 1)
        if dupes:
            raise ValueError(f"smoother labels: {dupes[0]!r} appears more than once")
        self._cfg = cfg
        self._labels: tuple[str, ...] = tuple(labels)
        self._card = dict(card_thresholds or {})
        self._enter, self._exit = resolve_thresholds(cfg, self._labels, self._card)
        self._tracks: dict[int, _Track] = {}
        self._now: float | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def cfg(self) -> SmoothingConfig:
        return self._cfg

    def reconfigure(self, cfg: SmoothingConfig) -> None:
        """Take new thresholds (config reload) while keeping every track's state."""
        self._cfg = cfg
        self._enter, self._exit = resolve_thresholds(cfg, self._labels, self._card)

    def enter_thresholds(self) -> dict[str, float]:
        """The enter threshold in force for each label (config, model card, default)."""
        return {lb: float(v) for lb, v in zip(self._labels, self._enter, strict=True)}

    def step(self, t: float, observations: Sequence[Observation]) -> list[Event]:
        """Feed one frame's observations (possibly none) and return its events.

        Every observation is checked before any state changes, so a bad one
        raises :class:`ObservationError` and leaves the smoother as it was.
        Events come sorted by track id, then appeared < expression < lost.
        """
        t = self._check_time(t)
        probs = self._validate(t, observations)
        now = t if self._now is None else max(self._now, t)
        self._now = now

        events: list[Event] = []
        for obs, p in zip(observations, probs, strict=True):
            events.extend(self._observe(now, obs, p))

        seen = {obs.track for obs in observations}
        for tid in sorted(set(self._tracks) - seen):
            st = self._tracks[tid]
            if _elapsed(now, st.last_seen, self._cfg.lost_after_s):
                del self._tracks[tid]
                if st.announced:
                    events.append(
                        Event(now, tid, "face_lost", None, FACE_EVENT_CONFIDENCE, st.x, st.size)
                    )
        events.sort(key=lambda e: (e.track, _KIND_ORDER[e.kind]))
        return events

    def forget(self, track: int) -> None:
        """Drop one track's state without an event (the caller knows why)."""
        self._tracks.pop(track, None)

    def reset(self) -> None:
        """Forget every track and the latest time (new source, restarted clock)."""
        self._tracks.clear()
        self._now = None

    def tracks(self) -> list[int]:
        return sorted(self._tracks)

    def holding(self) -> dict[int, str | None]:
        """Every track still held, mapped to its current expression (None: none settled).

        The cue presenter checks waiting cues against this (fer_audio.cues.still_true).
        """
        name = self._labels
        return {tid: None if st.current is None else name[st.current] for tid, st in self._tracks.items()}

    def state(self, track: int) -> TrackState | None:
        st = self._tracks.get(track)
        if st is None:
            return None
        name = self._labels
        return TrackState(
            track=track,
            first_seen=st.first_seen,
            last_seen=st.last_seen,
            announced=st.announced,
            current=None if st.current is None else name[st.current],
            candidate=None if st.candidate is None else name[st.candidate],
            candidate_since=None if st.candidate is None else st.candidate_since,
            probs={lb: float(v) for lb, v in zip(name, st.smoothed, strict=True)},
            x=st.x,
            size=st.size,
        )

    # -- internals ---------------------------------------------------------

    @staticmethod
    def _check_time(t: float) -> float:
        try:
            tf = float(t)
        except (TypeError, ValueError):
            tf = math.nan
        if not math.isfinite(tf):
            raise ObservationError(f"smoother step: timestamp {t!r} is not a finite number")
        return tf

    def _validate(self, t: float, observations: Sequence[Observation]) -> list[np.ndarray]:
        n = len(self._labels)
        seen: set[int] = set()
        out: list[np.ndarray] = []
        for obs in observations:
            where = f"smoother step t={t:.3f}, track {obs.track}"
            if obs.track in seen:
                raise ObservationError(f"{where}: track appears twice in one step")
            seen.add(obs.track)
            try:
                p = np.asarray(obs.probs, dtype=np.float64)
            except (TypeError, ValueError):
                raise ObservationError(f"{where}: probs are not numbers") from None
            if p.shape != (n,):
                raise ObservationError(f"{where}: probs have shape {p.shape}, expected ({n},) for {n} labels")
            if not np.all(np.isfinite(p)):
                raise ObservationError(f"{where}: probs contain NaN or infinity")
            if not (math.isfinite(obs.x) and math.isfinite(obs.size)):
                raise ObservationError(f"{where}: x={obs.x!r} or size={obs.size!r} is not a finite number")
            out.append(p)
        return out

    def _observe(self, now: float, obs: Observation, p: np.ndarray) -> list[Event]:
        cfg = self._cfg
        st = self._tracks.get(obs.track)
        if st is None:
            st = _Track(first_seen=now, last_seen=now, smoothed=p.copy(), x=obs.x, size=obs.size)
            self._tracks[obs.track] = st
        else:
            dt = now - st.last_seen
            if dt > 0:
                alpha = 1.0 - 0.5 ** (dt / cfg.half_life_s)
                st.smoothed += alpha * (p - st.smoothed)
            st.last_seen = now
            st.x, st.size = obs.x, obs.size

        events: list[Event] = []
        if not st.announced and _elapsed(now, st.first_seen, cfg.appear_after_s):
            st.announced = True
            events.append(
                Event(now, obs.track, "face_appeared", None, FACE_EVENT_CONFIDENCE, st.x, st.size)
            )
        label = self._advance(now, st)
        if label is not None:
            conf = float(st.smoothed[label])
            events.append(Event(now, obs.track, "expression", self._labels[label], conf, st.x, st.size))
        return events

    def _advance(self, now: float, st: _Track) -> int | None:
        """Run the expression transitions; return a label index to cue, if any."""
        cfg = self._cfg
        enter, exit_ = self._enter, self._exit
        s = st.smoothed
        top = int(np.argmax(s))  # ties go to the earlier label: deterministic

        if st.current is not None and s[st.current] < exit_[st.current]:
            st.current = None
        if st.candidate is not None and (top != st.candidate or s[st.candidate] < exit_[st.candidate]):
            st.candidate = None
        if st.candidate is None and top != st.current and s[top] >= enter[top]:
            st.candidate, st.candidate_since = top, now

        if st.candidate is None or not st.announced:
            return None
        if not _elapsed(now, st.candidate_since, cfg.min_dwell_s):
            return None
        label = st.candidate
        st.current, st.candidate = label, None
        last = st.last_cue.get(label)
        if last is not None and not _elapsed(now, last, cfg.cooldown_s):
            return None
        st.last_cue[label] = now
        return label
