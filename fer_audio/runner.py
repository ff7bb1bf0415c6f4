"""One run's stages and sinks: opened in order, closed in the reverse order.

``fer-audio demo``, the service (fer_audio.daemon) and the benchmarks all build
and tear down a run here, so every run ends the same way: the source is
released first (no more frames), then the audio is written out up to the
source's last frame (a WAV lasts as long as the video it was made from, and a
cue still ringing at the end is not cut), then the event files are closed. One
stage failing to close is logged and does not keep the others open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from fer_audio.config import Config
from fer_audio.pipeline import EventSink, JsonlEvents, ListEvents, Pipeline, Stages, build_stages
from fer_audio.types import Event

log = logging.getLogger(__name__)


class LoggedEvents:
    """Logs each event at debug level and passes it on to every sink given."""

    def __init__(self, sinks: list[EventSink]) -> None:
        self.sinks = sinks

    def write(self, event: Event) -> None:
        log.debug("event: person %d %s at %.2f s (%.2f)", event.track, event.what, event.t, event.confidence)
        for sink in self.sinks:
            sink.write(event)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class Run:
    """The stages of one run and where its events go; use as a context manager.

    ``build`` makes the stages from the config (tests and benchmarks pass their
    own: a camera that can be unplugged, stages wrapped with taps). With
    ``keep_events`` a finite run (a file, not looped) keeps its events in
    :attr:`kept` for the timeline the CLI prints; a live one keeps none, as a
    service must not grow without bound.
    """

    def __init__(self, cfg: Config, *, events_out: Path | None = None, keep_events: bool = False,
                 build: Callable[[Config], Stages] = build_stages) -> None:
        self.cfg = cfg
        self._events_out = events_out
        self._keep_events = keep_events
        self._build = build
        self._pipe: Pipeline | None = None
        self._events: LoggedEvents | None = None
        self.kept: ListEvents | None = None
        self.source_name = ""
        self._closed = False

    @property
    def pipe(self) -> Pipeline:
        if self._pipe is None:
            raise RuntimeError("the run is not open")
        return self._pipe

    def open(self) -> Pipeline:
        """Build the stages (the source first, so a bad path is reported before models load), then the event files."""
        stages = self._build(self.cfg)
        sinks: list[EventSink] = []
        try:
            if self._events_out is not None:
                sinks.append(JsonlEvents(self._events_out))
        except BaseException:
            self._close_all(stages, None, None)
            raise
        finite = not stages.source.is_live and not self.cfg.source.loop
        if self._keep_events and finite:
            self.kept = ListEvents()
            sinks.append(self.kept)
        self._events = LoggedEvents(sinks)
        self._pipe = Pipeline(self.cfg, stages, self._events)
        self.source_name = stages.source.describe()
        return self._pipe

    def announce(self) -> None:
        """The start-up sound, when the config asks for it: the run is ready."""
        if self.pipe.cfg.audio.startup_sound:
            self.pipe.s.audio.play_system("startup", 0.0)

    def close(self) -> None:
        """Source, then audio (up to the source's last frame), then events; safe to call twice."""
        if self._closed or self._pipe is None:
            return
        self._closed = True
        pipe = self._pipe
        # pipe.s.audio, not the one built: a reload may have replaced it.
        self._close_all(pipe.s, pipe.stats.source_seconds or None, self._events)

    @staticmethod
    def _close_all(stages: Stages, end_t: float | None, events: EventSink | None) -> None:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("source", stages.source.close),
            ("audio", lambda: stages.audio.close(end_t=end_t)),
        ]
        if events is not None:
            steps.append(("events", events.close))
        for what, close in steps:
            try:
                close()
            except Exception as exc:  # one stage failing to close must not keep the others open
                log.warning("closing the %s: %s", what, exc)

    def __enter__(self) -> Run:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
