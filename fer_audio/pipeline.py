"""The frame loop: source → detector → tracker → model → smoother → cues → audio.

One direction, no back and forth. The loop receives its collaborators ready
made (so tests and the daemon can pass real or recording ones) and a stop
event it checks between short waits, so shutdown is prompt. Nothing here
writes a frame anywhere.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import numpy as np

from fer_audio.config import AttentionConfig, AudioConfig, Config, CueConfig, GestureConfig, SmoothingConfig
from fer_audio.reader import Face, FaceReader
from fer_audio.types import AudioStatus, Box, Event, FrameSource, Observation, SourceEvent, Track

if TYPE_CHECKING:
    from fer_audio.cues import Cue, Scene
    from fer_audio.smoothing import TrackState

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def write(self, event: Event) -> None: ...
    def close(self) -> None: ...


class JsonlEvents:
    """Events as JSON Lines, flushed per line so a reader can follow the file live."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, event: Event) -> None:
        self._f.write(json.dumps(event.to_json()) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class ListEvents:
    """Keeps events in memory (tests, the demo timeline)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


# -- the stage seams: what the loop calls on each collaborator, and nothing more ------

class Detector(Protocol):
    """Face boxes in original frame pixels (fer_audio.detection)."""

    def detect(self, image_bgr: np.ndarray) -> list[Box]: ...


class FaceTracker(Protocol):
    """Boxes to people followed across frames (fer_audio.tracking)."""

    def update(self, boxes: list[Box], frame_w: int, frame_h: int) -> list[Track]: ...
    def reset(self) -> None: ...


class ExpressionModel(Protocol):
    """One probability row per box, in ``labels`` order (fer_audio.emotion)."""

    @property
    def labels(self) -> tuple[str, ...]: ...
    def predict(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray: ...


class EventSmoother(Protocol):
    """Observations to events (fer_audio.smoothing); pure, with no clock of its own."""

    def step(self, t: float, observations: Sequence[Observation]) -> list[Event]: ...
    def reset(self) -> None: ...
    def reconfigure(self, cfg: SmoothingConfig) -> None: ...
    def reconfigure_social(self, attention: AttentionConfig, gestures: GestureConfig) -> None: ...
    def tracks(self) -> list[int]: ...
    def state(self, track: int) -> TrackState | None: ...
    def holding(self) -> dict[int, str | None]: ...
    def facing(self, track: int) -> bool | None: ...


class Planner(Protocol):
    """Events to cues (fer_audio.cues.CuePlanner)."""

    def plan(self, events: Sequence[Event]) -> list[Cue]: ...
    def reset(self) -> None: ...
    def reconfigure(self, cues: Mapping[str, CueConfig], audio: AudioConfig) -> None: ...


class Presenter(Protocol):
    """Which cues are heard now (fer_audio.cues.CuePresenter)."""

    def present(self, cues: Sequence[Cue], now: float, scene: Scene | None = None) -> list[Cue]: ...
    def reset(self) -> None: ...
    def reconfigure(self, audio: AudioConfig) -> None: ...


class Player(Protocol):
    """Where cues are heard (fer_audio.audio.AudioOut); never raises into the loop."""

    def play(self, cue: Cue, t: float) -> bool: ...
    def play_system(self, name: str, t: float) -> bool: ...
    def say(self, text: str, t: float) -> bool: ...
    def prerender(self, texts: Sequence[str]) -> None: ...
    def status(self) -> AudioStatus: ...
    def close(self, end_t: float | None = None) -> None: ...


@dataclass
class Stages:
    """The collaborators one run needs; built by :func:`build_stages` or by a test."""

    source: FrameSource
    detector: Detector
    tracker: FaceTracker
    model: ExpressionModel
    smoother: EventSmoother
    planner: Planner
    presenter: Presenter
    audio: Player


@dataclass
class RunStats:
    frames: int = 0
    analysed: int = 0
    faces: int = 0
    events: int = 0
    cues_played: int = 0
    seconds: float = 0.0
    source_seconds: float = 0.0
    end_reason: str = ""
    # Set when the source reported an error before it ended: the run failed.
    source_error: str = ""
    last_cue: str = ""
    warnings: list[str] = field(default_factory=list)
    # Audio blocks the output device asked for later than they could be made (PortAudio
    # underflows): a CPU too busy to keep the sound card fed; a cue then had a gap.
    underruns: int = 0

    @property
    def underrun_note(self) -> str | None:
        """What the end of a run says about output underruns; None when there were none."""
        if not self.underruns:
            return None
        times = "once" if self.underruns == 1 else f"{self.underruns} times"
        return f"audio output underran {times}: the CPU was too busy to keep the sound card fed, so a cue may have had a gap"

    @property
    def fps(self) -> float:
        return self.analysed / self.seconds if self.seconds > 0 else 0.0


def build_stages(cfg: Config, *, audio: Player | None = None, source: FrameSource | None = None) -> Stages:
    """Real stages from a config. Raises the stage's own one-line error on bad input."""
    from fer_audio.cues import CuePlanner, CuePresenter
    from fer_audio.detection import make_detector
    from fer_audio.emotion import load_model
    from fer_audio.smoothing import Smoother
    from fer_audio.social import SocialSmoother
    from fer_audio.sources import open_source
    from fer_audio.tracking import Tracker

    # Cheapest checks first, so a bad path is reported before anything heavy loads.
    if source is None:
        source = open_source(cfg.source)
    try:
        from fer_audio.follow import make_following

        detector = make_following(make_detector(cfg.detector), cfg.detector)
        model = load_model(cfg.model)
        if audio is None:
            from fer_audio.audio import AudioOut

            audio = AudioOut(cfg.audio, cfg.speech, cfg.cues)
    except BaseException:
        source.close()
        raise
    return Stages(
        source=source, detector=detector, tracker=Tracker(cfg.tracker), model=model,
        smoother=SocialSmoother(Smoother(cfg.smoothing, model.labels, model.card.enter_thresholds),
                                cfg.attention, cfg.gestures),
        planner=CuePlanner(cfg.cues, cfg.audio),
        presenter=CuePresenter(cfg.audio), audio=audio,
    )


class Pipeline:
    """Runs frames through the stages; pause/resume/reconfigure are safe from other threads."""

    def __init__(self, cfg: Config, stages: Stages, events_out: EventSink | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.s = stages
        self.events_out = events_out
        self.clock = clock
        self.stats = RunStats()
        self._paused = threading.Event()
        self._lock = threading.Lock()
        self._recent: deque[float] = deque(maxlen=30)
        self._last_t: float | None = None
        self._faces: list[Face] = []
        self._warned: set[str] = set()
        # Called on every pass of run()'s loop (frame or not): the daemon's systemd watchdog.
        self.heartbeat: Callable[[], None] | None = None

    # -- control (any thread) --------------------------------------------------

    def pause(self, t: float | None = None) -> None:
        if not self._paused.is_set():
            self._paused.set()
            withdraw = getattr(self.s.audio, "withdraw", None)
            if withdraw is not None:  # a word still waiting for the screen reader is not wanted now
                try:
                    withdraw(None)
                except Exception:
                    log.exception("audio failed to withdraw the waiting cues")
            self._play_system("paused", t)

    def resume(self, t: float | None = None) -> None:
        if self._paused.is_set():
            self._paused.clear()
            self.s.smoother.reset()
            self.s.tracker.reset()
            reset = getattr(self.s.detector, "reset", None)  # a following detector forgets its faces
            if callable(reset):
                reset()
            self.s.planner.reset()
            self.s.presenter.reset()
            self._play_system("resumed", t)

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def reconfigure(self, cfg: Config, audio: Player | None = None) -> None:
        """Take a new, already validated config without touching the camera."""
        with self._lock:
            if audio is not None:
                old, self.s.audio = self.s.audio, audio
                old.close()
            if cfg.smoothing != self.cfg.smoothing:
                self.s.smoother.reconfigure(cfg.smoothing)  # keeps each person's state
            self.s.smoother.reconfigure_social(cfg.attention, cfg.gestures)
            self.s.planner.reconfigure(cfg.cues, cfg.audio)
            self.s.presenter.reconfigure(cfg.audio)
            self.cfg = cfg

    def status(self) -> dict[str, Any]:
        fps = 0.0
        if len(self._recent) >= 2:
            span = self._recent[-1] - self._recent[0]
            fps = (len(self._recent) - 1) / span if span > 0 else 0.0
        return {
            "state": "paused" if self.paused else "running",
            "source": self.s.source.describe(),
            "fps": round(fps, 1),
            "faces": len(self._faces),
            "last_cue": self.stats.last_cue or "none",
            "frames": self.stats.frames,
            "cues": self.stats.cues_played,
        }

    def describe(self, speak: bool = True) -> str:
        """Who is there now, from the smoother's state, read left to right; spoken too (issue 13).

        While paused nothing is analysed, so the line says it describes the
        moment of the pause rather than pretending to know the present.
        """
        from fer_audio.describe import describe_people

        with self._lock:
            smoother = self.s.smoother
            people = [st for st in (smoother.state(tid) for tid in smoother.tracks()) if st is not None]
            words = {key: cue.text for key, cue in self.cfg.cues.items()}
            facing = {st.track: smoother.facing(st.track) for st in people}
            paused = self.paused
            t = self._now(None)
        text = describe_people(people, words, facing)
        if paused:
            text = f"paused; before the pause, {text}"
        if speak:
            try:
                self.s.audio.say(text, t)
            except Exception:  # audio never takes the caller down
                log.exception("could not speak the description")
        return text

    # -- the loop ----------------------------------------------------------------

    def warn(self, key: str, message: str, t: float | None = None) -> None:
        """Log and sound a problem once per incident (``key`` is cleared by :meth:`clear_warning`)."""
        if key in self._warned:
            return
        self._warned.add(key)
        self.stats.warnings.append(message)
        log.warning("%s", message)
        now = self._now(t)
        try:
            self.s.audio.play_system("warning", now)
            self.s.audio.say(message, now)
        except Exception:  # audio never takes the loop down
            log.exception("could not sound the warning")

    def clear_warning(self, key: str) -> None:
        self._warned.discard(key)

    def _now(self, t: float | None) -> float:
        if t is not None:
            return t
        return self._last_t if self._last_t is not None else 0.0

    def _play_system(self, name: str, t: float | None) -> None:
        try:
            self.s.audio.play_system(name, self._now(t))
        except Exception:
            log.exception("could not play %s", name)

    def process(self, image: np.ndarray, t: float, received: float | None = None) -> list[Event]:
        """One frame through every stage.

        ``received`` is the loop clock when a live frame arrived: the time spent
        since then is added to ``t`` so stale cues are recognised. File frames
        pass None and live on their own timeline (a demo WAV matches the clip).
        """
        with self._lock:
            self.stats.frames += 1
            self._last_t = t
            if self.paused:
                return []
            self.stats.analysed += 1
            self._recent.append(self.clock())
            # The public reader, over this run's stages as they are now (a test may swap one).
            self._faces = FaceReader(self.s.detector, self.s.tracker, self.s.model,
                                     self.cfg.attention.facing_ratio).read(image)
            self.stats.faces += len(self._faces)
            obs = [Observation(f.track, f.probs, f.x, f.size, f.head) for f in self._faces]
            events: list[Event] = self.s.smoother.step(t, obs)
            for e in events:
                self.stats.events += 1
                if self.events_out is not None:
                    self.events_out.write(e)
            self._withdraw_superseded(events)
            now = t if received is None else t + (self.clock() - received)
            # The scene lets a cue that met the rate limit wait while it is still true (issue 13).
            scene = self.s.smoother.holding()
            for cue in self.s.presenter.present(self.s.planner.plan(events), now, scene):
                try:
                    self.s.audio.play(cue, now)
                except Exception:
                    log.exception("audio failed to play %s", cue.key)
                self.stats.cues_played += 1
                self.stats.last_cue = f"{cue.key} (person {cue.track}) at {now:.1f} s"
            return events

    def _withdraw_superseded(self, events: list[Event]) -> None:
        """A new expression or a lost face means that person's earlier cues no longer hold.

        A spoken cue may still be waiting for the screen reader (speech-dispatcher); the
        audio's ``withdraw`` hook drops it. A presenter that tracks "still true" itself
        can call the same hook.
        """
        withdraw = getattr(self.s.audio, "withdraw", None)
        if withdraw is None:
            return
        for track in dict.fromkeys(e.track for e in events if e.kind in ("expression", "face_lost")):
            try:
                withdraw(track)
            except Exception:
                log.exception("audio failed to withdraw the cues of person %d", track)

    def run(self, stop: threading.Event | None = None, max_seconds: float | None = None) -> RunStats:
        """Process frames until the source ends, ``stop`` is set, or ``max_seconds`` of source time."""
        stop = stop or threading.Event()
        started = self.clock()
        try:
            while not stop.is_set():
                if self.heartbeat is not None:
                    self.heartbeat()
                item = self.s.source.read(timeout=0.1)
                if item is None:
                    continue
                if isinstance(item, SourceEvent):
                    if self._on_source_event(item):
                        break
                    continue
                if max_seconds is not None and item.t > max_seconds:
                    self.stats.end_reason = "time limit"
                    break
                received = self.clock() if self.s.source.is_live else None
                try:
                    self.process(item.image, item.t, received)
                    self.clear_warning("frame")
                except Exception as exc:  # one bad frame must not end the service
                    log.debug("frame failed", exc_info=True)
                    self.warn("frame", f"a frame could not be analysed: {type(exc).__name__}: {exc}", item.t)
                self.stats.source_seconds = item.t
        finally:
            self.stats.seconds = self.clock() - started
            if not self.stats.end_reason:
                self.stats.end_reason = "stopped"
            try:
                self.stats.underruns = self.s.audio.status().underflows
            except Exception:  # a player that cannot say must not hide how the run ended
                log.debug("audio status at the end of the run", exc_info=True)
        return self.stats

    def _on_source_event(self, ev: SourceEvent) -> bool:
        """React to a source event; True ends the run."""
        if ev.kind == "end":
            self.stats.end_reason = "source failed" if self.stats.source_error else "end of source"
            # Let pending faces be reported lost, so the timeline closes cleanly.
            with self._lock:
                far = self._now(ev.t) + self.cfg.smoothing.lost_after_s + 1e-3
                for e in self.s.smoother.step(far, []):
                    self.stats.events += 1
                    if self.events_out is not None:
                        self.events_out.write(e)
            return True
        if ev.kind == "lost":
            self.warn("camera", f"camera lost: {ev.message}", ev.t)
        elif ev.kind == "restored":
            self.clear_warning("camera")
            log.info("camera back: %s", ev.message)
            self._play_system("resumed", ev.t)
        elif ev.kind == "error":
            self.stats.source_error = ev.message
            self.warn("source-error", f"video problem: {ev.message}", ev.t)
        return False
