"""Attention and head-gesture events beside the expression smoother.

:class:`SocialSmoother` wraps :class:`fer_audio.smoothing.Smoother` with the same interface:
the expression and presence events it passes on are the inner smoother's own, unchanged
except that each carries the person's ``yaw`` and settled ``facing`` state. Beside them it
adds, per announced track:

* ``facing`` when the person turns to face you and holds it for ``facing_dwell_s``, and
  ``looked_away`` when a facing person stays turned away for ``away_dwell_s``. The frame's
  yaw ratio goes through hysteresis (in at ``facing_ratio``, out past ``away_ratio``). A
  person's first frame sets their state silently: it is no turn, and a chime there would
  take the rate-limit slot of their first expression (``face_appeared`` says someone
  arrived); it does set ``facing`` on their events from the start. Each event is cued at
  most once per ``cooldown_s`` per person; the state changes regardless.
* ``nod`` and ``shake`` from :class:`fer_audio.gestures.GestureDetector`.

Pure like the smoother: no clock, no I/O; times come in with the frames. A track without
landmarks (Haar) has no pose: its events carry ``yaw`` and ``facing`` None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from fer_audio.config import AttentionConfig, GestureConfig, SmoothingConfig
from fer_audio.gestures import GestureDetector, HeadSample
from fer_audio.smoothing import TIME_EPS, Smoother, TrackState
from fer_audio.types import Event, EventKind, Head, Observation

# Attention and gestures are what the frame shows, not a guess: full confidence.
SOCIAL_EVENT_CONFIDENCE = 1.0

_KIND_ORDER = {"face_appeared": 0, "facing": 1, "expression": 2, "nod": 3, "shake": 4,
               "looked_away": 5, "face_lost": 6}


@dataclass
class _Attention:
    yaw: float | None = None
    facing: bool | None = None  # settled state; None before the first frame with a pose
    candidate: bool | None = None
    since: float = 0.0
    last_cue: dict[EventKind, float] = field(default_factory=dict)


def _elapsed(now: float, since: float, span: float) -> bool:
    return now - since >= span - TIME_EPS


class SocialSmoother:
    """The expression smoother plus attention and nod/shake events; same methods."""

    def __init__(self, inner: Smoother, attention: AttentionConfig, gestures: GestureConfig) -> None:
        self._inner = inner
        self._cfg = attention
        self._gestures = GestureDetector(gestures)
        self._people: dict[int, _Attention] = {}
        self._now: float | None = None

    # -- the Smoother interface ------------------------------------------------

    @property
    def labels(self) -> tuple[str, ...]:
        return self._inner.labels

    @property
    def cfg(self) -> SmoothingConfig:
        return self._inner.cfg

    def reconfigure(self, cfg: SmoothingConfig) -> None:
        self._inner.reconfigure(cfg)

    def reconfigure_social(self, attention: AttentionConfig, gestures: GestureConfig) -> None:
        """New attention and gesture settings; every person's state stays."""
        self._cfg = attention
        self._gestures.reconfigure(gestures)

    def forget(self, track: int) -> None:
        self._inner.forget(track)
        self._drop(track)

    def reset(self) -> None:
        self._inner.reset()
        self._people.clear()
        self._gestures.reset()
        self._now = None

    def tracks(self) -> list[int]:
        return self._inner.tracks()

    def state(self, track: int) -> TrackState | None:
        return self._inner.state(track)

    def holding(self) -> dict[int, str | None]:
        return self._inner.holding()

    def enter_thresholds(self) -> dict[str, float]:
        return self._inner.enter_thresholds()

    def facing(self, track: int) -> bool | None:
        """The person's settled attention state (None: not known yet, or no landmarks)."""
        person = self._people.get(track)
        return None if person is None else person.facing

    def step(self, t: float, observations: Sequence[Observation]) -> list[Event]:
        """The inner smoother's events (validated there first) plus this frame's social ones."""
        inner = self._inner.step(t, observations)
        now = float(t) if self._now is None else max(self._now, float(t))
        self._now = now
        extra: list[Event] = []
        for obs in observations:
            st = self._inner.state(obs.track)
            announced = st is not None and st.announced
            extra.extend(self._observe(now, obs, announced))
        out: list[Event] = []
        for ev in inner:
            person = self._people.get(ev.track)
            if person is not None:
                ev = replace(ev, yaw=person.yaw, facing=person.facing)
            out.append(ev)
            if ev.kind == "face_lost":
                self._drop(ev.track)
        out.extend(extra)
        out.sort(key=lambda e: (e.track, _KIND_ORDER[e.kind]))
        return out

    # -- internals ---------------------------------------------------------------

    def _drop(self, track: int) -> None:
        self._people.pop(track, None)
        self._gestures.forget(track)

    def _observe(self, now: float, obs: Observation, announced: bool) -> list[Event]:
        head = obs.head
        if head is None:
            return []
        person = self._people.setdefault(obs.track, _Attention())
        person.yaw = head.yaw_deg
        events: list[Event] = []
        kind = self._attend(now, person, head)
        if kind is not None and announced and self._may_cue(now, person, kind):
            events.append(self._event(now, obs, kind, person))
        gesture = self._gestures.observe(obs.track, HeadSample(
            now, head.yaw_ratio, head.nose[0], head.nose[1], head.width, head.pitch_ratio))
        if gesture is not None and announced:
            events.append(self._event(now, obs, gesture, person))
        return events

    def _attend(self, now: float, person: _Attention, head: Head) -> EventKind | None:
        """Advance the hysteresis and dwell; the event kind when the state settles anew."""
        cfg = self._cfg
        ratio = abs(head.yaw_ratio)
        raw = ratio <= cfg.away_ratio if person.facing else ratio <= cfg.facing_ratio
        if person.facing is None:
            person.facing = raw  # the first state: no turn to wait out, and nothing to say
            return None
        if raw == person.facing:
            person.candidate = None
            return None
        if person.candidate != raw:
            person.candidate, person.since = raw, now
        if not _elapsed(now, person.since, cfg.facing_dwell_s if raw else cfg.away_dwell_s):
            return None
        person.facing, person.candidate = raw, None
        return "facing" if raw else "looked_away"

    def _may_cue(self, now: float, person: _Attention, kind: EventKind) -> bool:
        last = person.last_cue.get(kind)
        if last is not None and not _elapsed(now, last, self._cfg.cooldown_s):
            return False
        person.last_cue[kind] = now
        return True

    @staticmethod
    def _event(now: float, obs: Observation, kind: EventKind, person: _Attention) -> Event:
        return Event(now, obs.track, kind, None, SOCIAL_EVENT_CONFIDENCE,
                     obs.x, obs.size, yaw=person.yaw, facing=person.facing)
