"""From smoother events to the cues that actually play.

Two of the three audio layers; the third (output) lives elsewhere:

* :class:`CuePlanner` turns events into :class:`Cue` value objects through
  the TOML mapping and the verbosity setting. It never plays anything.
* :class:`CuePresenter` decides which planned cues play now: stale ones and
  ones that would crowd the conversation are dropped, and counted.

Neither reads a clock: times come in as arguments, so both are replayable.

Priority is the planner's job: :meth:`CuePlanner.plan` returns cues ordered
by importance (largest face first), and the presenter takes them in the
order given. So a Cue carries no face size, and the presenter stays a plain
gate that knows nothing about faces.
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


def _cue_key(event: Event) -> str | None:
    if event.kind == "expression":
        return event.label
    return event.kind


def _make_cue(key: str, cfg: CueConfig, pan: float, event_t: float, track: int) -> Cue | None:
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
            cue = self._cue_for(ev)
            if cue is not None:
                planned.append((-sizes.get(ev.track, ev.size), ev.track, i, cue))
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

    def _cue_for(self, ev: Event) -> Cue | None:
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
        return _make_cue(key, cfg, pan, ev.t, ev.track)


@dataclass(frozen=True)
class PresenterStats:
    """Counters for the status command."""

    played: int = 0
    dropped_stale: int = 0
    dropped_rate: int = 0


class CuePresenter:
    """Decides which planned cues play now.

    Input cues must come most important first (as :meth:`CuePlanner.plan`
    returns them): when several compete for one slot, the first one wins.
    Dropped cues are not queued: by the next slot they would be old news.
    """

    def __init__(self, audio: AudioConfig) -> None:
        self._audio = audio
        self._last_play: float | None = None
        self._played = 0
        self._stale = 0
        self._rate = 0

    def reconfigure(self, audio: AudioConfig) -> None:
        """New limits apply from the next cue; counters and the last play time stay."""
        self._audio = audio

    @property
    def stats(self) -> PresenterStats:
        return PresenterStats(self._played, self._stale, self._rate)

    def reset(self) -> None:
        """Forget the last play time and counters (e.g. after a pause)."""
        self._last_play = None
        self._played = self._stale = self._rate = 0

    def present(self, cues: Sequence[Cue], now: float) -> list[Cue]:
        """Return the cues to play at ``now`` (source-clock seconds), in order.

        A cue is stale when ``now - event_t > max_delay_s``; exactly
        ``max_delay_s`` late still plays. A cue is rate-limited when one was
        played less than ``min_interval_s`` before ``now``; exactly
        ``min_interval_s`` later plays. Stale cues do not use up the slot.
        A ``now`` earlier than the last play means the clock restarted (a
        looping file): the rate limit starts afresh instead of muting every
        cue until the old time comes round again.
        """
        if not math.isfinite(now):
            raise ValueError(f"cue presenter: now {now!r} is not a finite number")
        audio = self._audio
        out: list[Cue] = []
        for cue in cues:
            late = now - cue.event_t
            if late > audio.max_delay_s:
                self._stale += 1
                log.debug("dropped stale cue %s (track %d, %.3f s late)", cue.key, cue.track, late)
                continue
            last = self._last_play
            if last is not None and 0.0 <= now - last < audio.min_interval_s:
                self._rate += 1
                log.debug("dropped cue %s (track %d): %.3f s after the last", cue.key, cue.track, now - last)
                continue
            self._last_play = now
            self._played += 1
            out.append(cue)
        return out
