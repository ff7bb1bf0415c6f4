"""From smoother events to the cues that actually play.

Two of the three audio layers; the third (output) lives elsewhere:

* :class:`CuePlanner` turns events into :class:`Cue` value objects through
  the TOML mapping and the verbosity setting. It never plays anything.
* :class:`CuePresenter` decides which planned cues play now. Given the
  scene (who is present and what each holds), a cue that meets the rate
  limit waits, one per person, and plays at the next free slot if it is
  still true; it is dropped only when it stopped being true or waited
  ``max_pending_s``. Drops are counted.

Neither reads a clock: times come in as arguments, so both are replayable.

Priority is the planner's job: :meth:`CuePlanner.plan` returns cues ordered
by importance (largest face first) and stamps each cue with that face size,
so the presenter can rank cues that waited across frames without knowing
anything else about faces.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fer_audio.config import AudioConfig, CueConfig, unplayable
from fer_audio.errors import FerAudioError
from fer_audio.types import Event

log = logging.getLogger(__name__)

CUE_MODES: tuple[str, ...] = ("earcon", "speech", "both")

# Sizes of faces that never send face_lost (a bug upstream, a reset) must not
# pile up: keep only this many, the most recently updated.
MAX_REMEMBERED_FACES = 64
# Pending cues (one per person) the presenter keeps at most; beyond this the
# least important is dropped, so a crowd cannot grow the queue without bound.
MAX_PENDING = 8

# What the presenter checks a waiting cue against: every person the smoother
# still holds, mapped to the expression they hold now (None: none settled).
Scene = Mapping[int, str | None]


class CueError(FerAudioError, ValueError):
    """A cue or cue mapping that cannot be played; one line naming the cue."""


@dataclass(frozen=True)
class Cue:
    """One sound to play: what (earcon and/or words), how loud, where, and why."""

    key: str            # cue key: an expression label or an event kind ("face_appeared", "nod", ...)
    mode: str           # "earcon" | "speech" | "both"  (silent cues are never emitted)
    earcon: Path | None
    text: str           # spoken text ('' if none)
    gain_db: float
    pan: float          # -1..1, already scaled by AudioConfig.pan_width
    event_t: float      # source-clock time of the triggering event
    track: int
    size: float = 0.0   # the face's size when planned: ranks cues that wait for a slot

    def __post_init__(self) -> None:
        where = f"cue {self.key!r}"
        if self.mode not in CUE_MODES:
            raise CueError(f"{where}: mode {self.mode!r} is not one of {', '.join(CUE_MODES)}")
        if not (math.isfinite(self.pan) and -1.0 <= self.pan <= 1.0):
            raise CueError(f"{where}: pan {self.pan!r} is outside -1..1")
        problem = unplayable(self.mode, self.earcon, self.text)
        if problem is not None:
            raise CueError(f"{where}: {problem}")
        if not math.isfinite(self.gain_db):
            raise CueError(f"{where}: gain_db {self.gain_db!r} is not a finite number")
        if not math.isfinite(self.event_t):
            raise CueError(f"{where}: event_t {self.event_t!r} is not a finite number")
        if not math.isfinite(self.size):
            raise CueError(f"{where}: size {self.size!r} is not a finite number")


def still_true(cue: Cue, scene: Scene) -> bool:
    """Whether what ``cue`` says is still so: the person holds that expression, or is still there / gone."""
    if cue.key == "face_lost":
        return cue.track not in scene
    if cue.key == "face_appeared":
        return cue.track in scene
    return cue.track in scene and scene[cue.track] == cue.key


def _cue_key(event: Event) -> str | None:
    if event.kind == "expression":
        return event.label
    return event.kind


def _make_cue(key: str, cfg: CueConfig, pan: float, event_t: float, track: int,
              size: float = 0.0) -> Cue | None:
    """Build the cue for one mapping entry; None for silent.

    A cue carries only what will be heard: an earcon-only cue has no text,
    a speech-only cue no earcon, whatever else the mapping entry holds.
    """
    if cfg.mode == "silent":
        return None
    sound = cfg.mode in ("earcon", "both")
    words = cfg.mode in ("speech", "both")
    return Cue(
        key=key,
        mode=cfg.mode,
        earcon=cfg.earcon if sound else None,
        text=cfg.text if words else "",
        gain_db=cfg.gain_db,
        pan=pan,
        event_t=event_t,
        track=track,
        size=size,
    )


class CuePlanner:
    """Events to cues: mapping, verbosity, panning and priority order."""

    def __init__(self, cues: Mapping[str, CueConfig], audio: AudioConfig) -> None:
        self._cues: dict[str, CueConfig] = {}
        self._audio = audio
        self._sizes: dict[int, float] = {}
        self._warned: set[str] = set()
        self.reconfigure(cues, audio)

    def reconfigure(self, cues: Mapping[str, CueConfig], audio: AudioConfig) -> None:
        """Take a reloaded mapping; on a bad entry raise CueError and keep the old one.

        An entry that could never play (earcon mode without a file, speech
        without text) fails here, at load time, rather than in the frame loop.
        """
        for key, cfg in cues.items():
            problem = unplayable(cfg.mode, cfg.earcon, cfg.text)
            if problem is not None:
                raise CueError(f"cues.{key}: {problem}")
        self._cues = dict(cues)
        self._audio = audio
        self._warned.clear()

    @property
    def audio(self) -> AudioConfig:
        return self._audio

    def main_face(self) -> int | None:
        """The largest face as last reported (ties: the lower track id)."""
        if not self._sizes:
            return None
        return min(self._sizes, key=lambda tid: (-self._sizes[tid], tid))

    def forget(self, track: int) -> None:
        self._sizes.pop(track, None)

    def reset(self) -> None:
        self._sizes.clear()

    def plan(self, events: Sequence[Event]) -> list[Cue]:
        """Map one batch of events to cues, most important first.

        Order: larger face (as last seen) first, then lower track id; within a
        track the events keep their order. The presenter relies on this.
        """
        sizes = self._remember(events)
        main = self.main_face()
        verbosity = self._audio.verbosity
        planned: list[tuple[float, int, int, Cue]] = []
        for i, ev in enumerate(events):
            if verbosity != "all" and ev.kind in ("face_appeared", "face_lost"):
                continue
            if verbosity == "main-face-only" and ev.track != main:
                continue
            cue = self._cue_for(ev, sizes.get(ev.track, ev.size))
            if cue is not None:
                planned.append((-cue.size, ev.track, i, cue))
        planned.sort(key=lambda item: item[:3])
        return [item[3] for item in planned]

    def _remember(self, events: Sequence[Event]) -> dict[int, float]:
        """Update the size memory; return the sizes to rank this batch by.

        A face lost in this batch leaves the memory before the main face is
        chosen, so a departed face cannot silence the ones still present.
        """
        batch: dict[int, float] = {}
        for ev in events:
            batch[ev.track] = ev.size
            self._sizes.pop(ev.track, None)  # re-inserted last, so the oldest go first
            if ev.kind != "face_lost":
                self._sizes[ev.track] = ev.size
        while len(self._sizes) > MAX_REMEMBERED_FACES:
            del self._sizes[next(iter(self._sizes))]
        return batch

    def _cue_for(self, ev: Event, size: float) -> Cue | None:
        key = _cue_key(ev)
        if key is None:
            return None
        cfg = self._cues.get(key)
        if cfg is None:
            if key not in self._warned:
                self._warned.add(key)
                log.warning("no cue mapping for %r; its events stay silent", key)
            return None
        pan = max(-1.0, min(1.0, ev.x)) * self._audio.pan_width  # a box may poke past the edge
        if ev.kind == "expression" and ev.facing and self._audio.say_facing and cfg.text.strip():
            cfg = cfg.model_copy(update={"text": f"{cfg.text} at you"})  # "smiling at you"
        return _make_cue(key, cfg, pan, ev.t, ev.track, size if math.isfinite(size) else 0.0)


@dataclass(frozen=True)
class PresenterStats:
    """Counters for the status command.

    ``dropped_stale`` and ``dropped_rate`` count cues given without a scene
    (nothing to re-check, so they cannot wait); ``dropped_untrue`` and
    ``dropped_expired`` count waiting cues that stopped being true or waited
    ``max_pending_s``; ``pending`` is how many wait now.
    """

    played: int = 0
    dropped_stale: int = 0
    dropped_rate: int = 0
    dropped_untrue: int = 0
    dropped_expired: int = 0
    pending: int = 0


def _rank(cue: Cue) -> tuple[float, float, int]:
    """Most important first: the larger face, then the longer wait, then the lower track id."""
    return (-cue.size, cue.event_t, cue.track)


class CuePresenter:
    """Decides which planned cues play now.

    Input cues must come most important first (as :meth:`CuePlanner.plan`
    returns them). With a scene, a cue that meets the rate limit waits (one
    per person: a newer cue of that person replaces it) and the most
    important waiting cue that is still true takes the next free slot.
    Without a scene nothing can be re-checked, so a cue plays now or never.
    """

    def __init__(self, audio: AudioConfig) -> None:
        self._audio = audio
        self._last_play: float | None = None
        self._pending: dict[int, Cue] = {}
        self._played = 0
        self._stale = 0
        self._rate = 0
        self._untrue = 0
        self._expired = 0

    def reconfigure(self, audio: AudioConfig) -> None:
        """New limits apply from the next cue; counters, waiting cues and the last play time stay."""
        self._audio = audio

    @property
    def stats(self) -> PresenterStats:
        return PresenterStats(self._played, self._stale, self._rate, self._untrue, self._expired,
                              len(self._pending))

    def pending(self) -> list[Cue]:
        """The cues waiting for a slot, most important first."""
        return sorted(self._pending.values(), key=_rank)

    def reset(self) -> None:
        """Forget the last play time, waiting cues and counters (e.g. after a pause)."""
        self._last_play = None
        self._pending.clear()
        self._played = self._stale = self._rate = self._untrue = self._expired = 0

    def _slot_open(self, now: float) -> bool:
        last = self._last_play
        return last is None or not (0.0 <= now - last < self._audio.min_interval_s)

    def present(self, cues: Sequence[Cue], now: float, scene: Scene | None = None) -> list[Cue]:
        """Return the cues to play at ``now`` (source-clock seconds), in order.

        Call it every frame, with or without new cues, so waiting cues get
        their slot. ``scene`` is who is present now and what each holds
        (see :func:`still_true`). A slot is free when the last cue played at
        least ``min_interval_s`` before ``now`` (exactly that long plays). A
        ``now`` earlier than the last play means the clock restarted (a
        looping file): the rate limit starts afresh, and waiting cues from
        the old timeline are dropped.
        """
        if not math.isfinite(now):
            raise ValueError(f"cue presenter: now {now!r} is not a finite number")
        if scene is None:
            return self._present_unchecked(cues, now)
        if self._last_play is not None and now < self._last_play:
            self._expired += len(self._pending)
            self._pending.clear()
        for cue in cues:
            old = self._pending.get(cue.track)
            if old is not None:
                self._untrue += 1
                log.debug("cue %s (track %d) replaced by %s", old.key, cue.track, cue.key)
            self._pending[cue.track] = cue
        self._prune(now, scene)
        out: list[Cue] = []
        while self._pending and self._slot_open(now):
            best = min(self._pending.values(), key=_rank)
            del self._pending[best.track]
            self._last_play = now
            self._played += 1
            out.append(best)
            if self._audio.min_interval_s > 0:
                break
        return out

    def _prune(self, now: float, scene: Scene) -> None:
        """Drop waiting cues that are no longer true, waited too long, or overflow the bound."""
        limit = self._audio.max_pending_s
        for track, cue in list(self._pending.items()):
            if not still_true(cue, scene):
                self._untrue += 1
                del self._pending[track]
                log.debug("dropped cue %s (track %d): no longer true", cue.key, track)
            elif now - cue.event_t > limit or now < cue.event_t:
                self._expired += 1
                del self._pending[track]
                log.debug("dropped cue %s (track %d): waited %.3f s", cue.key, track, now - cue.event_t)
        if len(self._pending) > MAX_PENDING:
            for cue in sorted(self._pending.values(), key=_rank)[MAX_PENDING:]:
                self._expired += 1
                del self._pending[cue.track]
                log.debug("dropped cue %s (track %d): too many waiting", cue.key, cue.track)

    def _present_unchecked(self, cues: Sequence[Cue], now: float) -> list[Cue]:
        """Without a scene: a cue later than ``max_delay_s`` is stale; one that meets the rate limit is dropped.

        Exactly ``max_delay_s`` late still plays. Stale cues do not use up the slot.
        """
        audio = self._audio
        out: list[Cue] = []
        for cue in cues:
            late = now - cue.event_t
            if late > audio.max_delay_s:
                self._stale += 1
                log.debug("dropped stale cue %s (track %d, %.3f s late)", cue.key, cue.track, late)
                continue
            if not self._slot_open(now):
                self._rate += 1
                log.debug("dropped cue %s (track %d): %.3f s after the last", cue.key, cue.track,
                          now - (self._last_play or 0.0))
                continue
            self._last_play = now
            self._played += 1
            out.append(cue)
        return out
