"""`fer-audio run` as a service: one instance, signals, live reload, the control socket.

Threads, and why:

* the **main thread** owns the signals (Python only delivers them there), the
  reloads and the shutdown. Signal handlers only set flags, which the main
  loop polls every 50 ms: a handler that took a lock could deadlock against
  the very code it interrupted.
* the **frame loop** (:meth:`Pipeline.run`) runs in its own thread, so a
  slow frame never delays a signal and a reload never waits for a camera.
* the **control server** runs in its own threads (fer_audio.control);
  ``reload`` is handed to the main thread, so reloads never run twice at once.

A reload never touches the camera: sections that would need it reopened
(source, detector, model, tracker) are kept as they are and a log line says
they take effect at the next start.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from fer_audio.config import Config, config_home
from fer_audio.control import LOCK_NAME, SOCKET_NAME, ControlServer, describe_status, ensure_private_dir, runtime_dir
from fer_audio.errors import FerAudioError
from fer_audio.notify import Notifier
from fer_audio.pipeline import Pipeline, Player, RunStats, Stages
from fer_audio.runner import Run
from fer_audio.types import Event

log = logging.getLogger(__name__)

# Sections a running daemon cannot change without reopening the camera or reloading the model.
RESTART_SECTIONS: tuple[str, ...] = ("source", "detector", "model", "tracker")
# AudioConfig fields that belong to the output itself; the others (verbosity, rate limits, pan)
# are read by the planner and presenter and change without rebuilding anything.
AUDIO_OUTPUT_FIELDS: tuple[str, ...] = ("output", "device", "wav_path", "sample_rate", "master_db", "media_role")
TICK_S = 0.05
# Longest a control client waits for the main thread to finish a reload.
RELOAD_REPLY_TIMEOUT_S = 30.0
# How long the frame loop gets to notice the stop event before shutdown goes on without it.
JOIN_TIMEOUT_S = 2.0


class DaemonError(FerAudioError):
    """The service cannot start (another instance, an unusable runtime folder); one line."""


class AlreadyRunning(DaemonError):
    """Another `fer-audio run` holds the instance lock."""


# -- the instance lock -------------------------------------------------------------------

class InstanceLock:
    """An fcntl lock on a file beside the socket; the kernel drops it if we die, so it is never stale."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"fer-audio is already running (pid {pid}, lock {self.path}); "
                "stop it with 'fer-audio ctl stop' first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        # The file stays: unlinking a lock file lets two later processes lock two different files.
        if self._fd is not None:
            with suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


# -- reload planning (pure) -------------------------------------------------------------

@dataclass(frozen=True)
class ReloadPlan:
    """What a reload does: the config that takes effect, and what it costs."""

    effective: Config
    changed: tuple[str, ...]       # sections that differ between the running config and the file
    needs_restart: tuple[str, ...]  # of those, the ones kept as they are until the next start
    rebuild_audio: bool             # the audio output must be rebuilt (device, rate, voice, ...)


def _output_part(cfg: Config) -> dict[str, Any]:
    return {k: getattr(cfg.audio, k) for k in AUDIO_OUTPUT_FIELDS}


def plan_reload(running: Config, new: Config) -> ReloadPlan:
    """Compare the running config with a freshly loaded one; nothing here touches a device.

    A WAV output is a recording on one timeline: rebuilding it would start the
    file again, so its output settings, like the camera's, wait for a restart.
    """
    changed = tuple(name for name in Config.model_fields if getattr(running, name) != getattr(new, name))
    keep: dict[str, Any] = {name: getattr(running, name) for name in RESTART_SECTIONS if name in changed}
    needs_restart = list(keep)
    output_changed = _output_part(running) != _output_part(new)
    rebuild = "speech" in changed or output_changed
    if rebuild and running.audio.output == "wav":
        rebuild = False
        if output_changed:
            keep["audio"] = new.audio.model_copy(update=_output_part(running))
            needs_restart.append("audio output (a WAV recording)")
        if "speech" in changed:
            keep["speech"] = running.speech
            needs_restart.append("speech (a WAV recording)")
    effective = new.model_copy(update=keep) if keep else new
    return ReloadPlan(effective, changed, tuple(needs_restart), rebuild)


# -- the daemon --------------------------------------------------------------------------

@dataclass
class DaemonResult:
    stats: RunStats
    source: str
    events: list[Event] | None  # kept only for a finite source (the CLI prints the timeline)


@dataclass
class _Request:
    command: str
    reply: Future[str]


def _default_build(cfg: Config) -> Stages:
    from fer_audio.pipeline import build_stages

    return build_stages(cfg)


def _default_audio(cfg: Config) -> Player:
    from fer_audio.audio import AudioOut

    return AudioOut(cfg.audio, cfg.speech, cfg.cues)


class Daemon:
    """One run of the service. ``reload_config`` re-reads the TOML (with the command-line overrides).

    ``build`` and ``make_audio`` are the stage factories (tests pass a camera
    that can be unplugged); ``handle_signals`` is False when not on the main thread.
    """

    def __init__(
        self,
        cfg: Config,
        reload_config: Callable[[], Config],
        *,
        config_name: str = "the configuration",
        events_out: Path | None = None,
        keep_events: bool = False,
        max_seconds: float | None = None,
        runtime: Path | None = None,
        build: Callable[[Config], Stages] = _default_build,
        make_audio: Callable[[Config], Player] = _default_audio,
        handle_signals: bool = True,
        notifier: Notifier | None = None,
    ) -> None:
        self.cfg = cfg
        self._reload_config = reload_config
        self._config_name = config_name
        self._events_out = events_out
        self._keep_events = keep_events
        self._max_seconds = max_seconds
        self.runtime = runtime if runtime is not None else runtime_dir()
        self._build = build
        self._make_audio = make_audio
        self._handle_signals = handle_signals and threading.current_thread() is threading.main_thread()
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._hup = False
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._started = time.monotonic()
        self.pipe: Pipeline | None = None
        self.ready = threading.Event()  # set once the stages are built and the socket listens
        self.notifier = notifier if notifier is not None else Notifier()  # systemd Type=notify

    @property
    def socket_path(self) -> Path:
        return self.runtime / SOCKET_NAME

    # -- entry point (main thread) ---------------------------------------------------

    def run(self) -> DaemonResult:
        """Serve until stopped or the source ends. Raises the stages' one-line errors at start-up."""
        try:
            ensure_private_dir(self.runtime)
        except Exception as exc:
            raise DaemonError(str(exc)) from None
        lock = InstanceLock(self.runtime / LOCK_NAME)
        lock.acquire()
        try:
            with self._signals():
                return self._run_locked()
        finally:
            lock.release()

    def stop(self, reason: str = "asked to stop") -> None:
        """Any thread: end the run (the main loop notices within one tick)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    def request_reload(self) -> None:
        """Like SIGHUP: the main thread reloads at its next tick."""
        self._hup = True

    def _run_locked(self) -> DaemonResult:
        run = Run(self.cfg, events_out=self._events_out, keep_events=self._keep_events, build=self._build)
        pipe = run.open()
        self.pipe = pipe
        server = ControlServer(self.socket_path, self._handle_command)
        loop_error: list[BaseException] = []
        stats = pipe.stats

        def frame_loop() -> None:
            try:
                pipe.run(self._stop, max_seconds=self._max_seconds)
            except BaseException as exc:  # reported by the main thread after a clean shutdown
                loop_error.append(exc)

        thread = threading.Thread(target=frame_loop, name="fer-audio frames", daemon=True)
        try:
            server.start()
            run.announce()
            log.info("ready: %s; control socket %s; pid %d", run.source_name, self.socket_path, os.getpid())
            self.ready.set()
            # Model, detector, source and audio are built and the socket listens: READY=1 (Type=notify).
            self.notifier.ready(self.status_line())
            pipe.heartbeat = self._heartbeat
            thread.start()
            self._main_loop(thread)
        finally:
            t0 = time.monotonic()
            self.notifier.stopping(f"stopping: {self._stop_reason or 'the source ended or failed'}")
            self._stop.set()
            if thread.is_alive():
                thread.join(JOIN_TIMEOUT_S)
                if thread.is_alive():
                    log.warning("the frame loop did not stop within %g s; closing anyway", JOIN_TIMEOUT_S)
            server.close()
            self._fail_pending("error: fer-audio is stopping")
            run.close()
            log.debug("shutdown took %.3f s", time.monotonic() - t0)
            self.notifier.close()
        if loop_error:
            raise loop_error[0]
        if self._stop_reason is not None and stats.end_reason == "stopped":
            stats.end_reason = self._stop_reason
        log.info("stopped: %d frames analysed in %.0f s, %d cues played; %s",
                 stats.analysed, stats.seconds, stats.cues_played, stats.end_reason)
        if stats.underrun_note:
            log.warning("%s", stats.underrun_note)
        return DaemonResult(stats, run.source_name, run.kept.events if run.kept is not None else None)

    def status_line(self) -> str:
        """What ``systemctl --user status`` shows: the ctl status line, plus where speech goes."""
        st = self.status()
        line = describe_status(st)
        if st.get("speech"):
            line += f", speech {st['speech']}"
        if st.get("audio") and "(" in str(st["audio"]):
            line += f", audio {st['audio']}"
        return line

    def _heartbeat(self) -> None:
        """Frame-loop thread, every pass: WATCHDOG=1 (a hung loop gets restarted) and a fresh STATUS=."""
        self.notifier.watchdog()
        if self.notifier.status_due():
            try:
                self.notifier.status(self.status_line())
            except Exception:  # a status line must never stop the frame loop
                log.debug("status line for systemd failed", exc_info=True)

    def _main_loop(self, thread: threading.Thread) -> None:
        while thread.is_alive():
            if self._stop_reason is not None:
                self._stop.set()
                return
            if self._hup:
                self._hup = False
                self.reload("SIGHUP")
            try:
                req = self._requests.get(timeout=TICK_S)
            except queue.Empty:
                continue
            if req.command == "reload":
                req.reply.set_result(self.reload("control socket"))
            else:
                req.reply.set_result(f"error: {req.command} is not handled by the main thread")

    def _fail_pending(self, reply: str) -> None:
        while True:
            try:
                req = self._requests.get_nowait()
            except queue.Empty:
                return
            if not req.reply.done():
                req.reply.set_result(reply)

    # -- signals ----------------------------------------------------------------------

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if not self._handle_signals:
            yield
            return

        def on_stop(signum: int, _frame: FrameType | None) -> None:
            # Only flags: the main loop does the work (see the module docstring).
            if self._stop_reason is None:
                self._stop_reason = f"stopped by {signal.Signals(signum).name}"

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self._hup = True

        old = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        old[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    # -- reload (main thread) ---------------------------------------------------------

    def reload(self, why: str) -> str:
        """Re-read the config and apply what can change live; on any problem keep the old one."""
        from fer_audio.audio import check_cues

        pipe = self.pipe
        if pipe is None:
            return "error: not started yet"
        t0 = time.monotonic()
        log.info("reloading %s (%s)", self._config_name, why)
        try:
            new = self._reload_config()
            plan = plan_reload(self.cfg, new)
            check_cues(plan.effective)
            audio = self._make_audio(plan.effective) if plan.rebuild_audio else None
        except Exception as exc:
            return self._reload_failed(str(exc) or type(exc).__name__)
        try:
            pipe.reconfigure(plan.effective, audio=audio)
        except Exception as exc:  # a stage refused it; its old settings are still in place
            if audio is not None:
                with suppress(Exception):
                    audio.close()
            return self._reload_failed(str(exc) or type(exc).__name__)
        self.cfg = plan.effective
        pipe.clear_warning("config")
        self._prerender(plan.effective)
        for what in plan.needs_restart:
            log.warning("%s settings changed; they take effect when fer-audio restarts", what)
        live = [c for c in plan.changed if c not in RESTART_SECTIONS]
        what = ", ".join(live) if live else "nothing that can change while running"
        extra = "; audio output rebuilt" if audio is not None else ""
        log.info("reloaded %s in %.0f ms: changed %s%s", self._config_name,
                 1000 * (time.monotonic() - t0), what, extra)
        return f"ok: reloaded (changed: {', '.join(plan.changed) or 'nothing'})"

    def _reload_failed(self, message: str) -> str:
        log.error("reload failed: %s; the running configuration stays", message)
        pipe = self.pipe
        if pipe is not None:
            pipe.clear_warning("config")  # every failed reload is its own incident
            pipe.warn("config", "configuration not reloaded: the file has an error")
        return f"error: reload failed: {message}"

    def _prerender(self, cfg: Config) -> None:
        """Render new spoken cues now, on the main thread, rather than at their first cue."""
        pipe = self.pipe
        if pipe is None:
            return
        texts = sorted({c.text for c in cfg.cues.values() if c.mode in ("speech", "both") and c.text.strip()})
        try:
            pipe.s.audio.prerender(texts)
        except Exception as exc:
            log.warning("could not render the new spoken cues in advance: %s", exc)

    # -- control commands (control worker threads) ------------------------------------

    def status(self) -> dict[str, Any]:
        pipe = self.pipe
        out: dict[str, Any] = pipe.status() if pipe is not None else {"state": "starting"}
        if self._stop.is_set() or self._stop_reason is not None:
            out["state"] = "stopping"
        if pipe is not None:
            out["analysed"] = pipe.stats.analysed
            out["source_t"] = round(pipe.stats.source_seconds, 3)
        out["pid"] = os.getpid()
        out["uptime_s"] = round(time.monotonic() - self._started, 1)
        if pipe is not None:
            with suppress(Exception):
                a = pipe.s.audio.status()
                out["audio"] = a.output if a.problem is None else f"{a.output} ({a.problem})"
                out["underruns"] = a.underflows
                if a.speech_engine:
                    out["speech"] = a.speech_engine
        return out

    def _handle_command(self, command: str) -> str:
        pipe = self.pipe
        if pipe is None:
            return "error: fer-audio is starting"
        if command == "status":
            return "ok: " + json.dumps(self.status(), ensure_ascii=False)
        if command == "pause":
            if pipe.paused:
                return "ok: already paused"
            pipe.pause()
            log.info("paused (control socket)")
            return "ok: paused"
        if command == "resume":
            if not pipe.paused:
                return "ok: already running"
            pipe.resume()
            log.info("resumed (control socket)")
            return "ok: resumed"
        if command == "describe":
            return "ok: " + pipe.describe()
        if command == "stop":
            log.info("stopping (control socket)")
            self.stop("stopped by the control socket")
            return "ok: stopping"
        if command == "reload":
            if self._stop.is_set():
                return "error: fer-audio is stopping"
            req = _Request(command, Future())
            self._requests.put(req)
            try:
                return req.reply.result(timeout=RELOAD_REPLY_TIMEOUT_S)
            except TimeoutError:
                return f"error: reload did not finish within {RELOAD_REPLY_TIMEOUT_S:g} s"
        return f"error: unknown command {command!r}"


# -- systemd --------------------------------------------------------------------------------

UNIT_NAME = "fer-audio.service"
SHIPPED_EXEC_START = "%h/.local/bin/fer-audio run"


def service_unit(exec_start: str = SHIPPED_EXEC_START) -> str:
    """The systemd user unit; packaging/fer-audio.service is this text with the shipped ExecStart."""
    return f"""\
# fer-audio as a systemd user service (starts at login, restarts after a crash).
# Install for this Python with: fer-audio install-service
[Unit]
Description=fer-audio: hear the facial expressions of the people you talk to
# Start after the sound server, so the start-up sound is heard.
After=pipewire-pulse.service pulseaudio.service

[Service]
# READY=1 once the model, detector, camera and audio are up; STATUS= lines for systemctl status.
Type=notify
NotifyAccess=main
# The frame loop sends WATCHDOG=1 (every few seconds, even while the camera is away or paused);
# if it hangs, systemd kills the service and Restart= starts it again.
WatchdogSec=30
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
# Exit 2 is bad input (config, model, camera path): restarting cannot fix it.
Restart=on-failure
RestartSec=5
RestartPreventExitStatus=2
# SIGTERM stops it within a second; this is only a safety net.
TimeoutStopSec=10
Environment=PYTHONUNBUFFERED=1
# OpenCV's own warnings (one per camera retry) would crowd the journal; fer-audio logs those itself.
Environment=OPENCV_LOG_LEVEL=ERROR
# Offline by design: only Unix sockets (sound server, control socket).
# A stream URL source (rtsp://, http://) needs AF_INET AF_INET6 added here.
RestrictAddressFamilies=AF_UNIX
NoNewPrivileges=yes
UMask=0077

[Install]
WantedBy=default.target
"""


def default_exec_start(config: Path | None = None) -> str:
    """ExecStart for this installation: this very interpreter (venv included) running the package."""
    args = [sys.executable, "-m", "fer_audio", "run"]
    if config is not None:
        args += ["--config", str(config.expanduser().resolve())]
    return " ".join(_systemd_quote(a) for a in args)


def _systemd_quote(arg: str) -> str:
    if arg and not any(c in arg for c in " \t\"'\\%$;"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def user_unit_path() -> Path:
    return config_home() / "systemd" / "user" / UNIT_NAME


def install_service(config: Path | None = None, dry_run: bool = False,
                    out: Callable[[str], None] = print) -> Path:
    """Write the unit for this installation and say how to start it; ``dry_run`` only prints it."""
    path = user_unit_path()
    text = service_unit(default_exec_start(config))
    if dry_run:
        out(f"would write {path}:")
        for line in text.splitlines():
            out(line)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    path.write_text(text, encoding="utf-8")
    out(f"{'replaced' if existed else 'wrote'} {path}")
    out("to start it now and at every login:")
    out("  systemctl --user daemon-reload")
    out(f"  systemctl --user enable --now {UNIT_NAME}")
    out(f"logs: journalctl --user -u {UNIT_NAME} -f")
    out("control: fer-audio ctl status (pause, resume, describe, reload, stop)")
    return path
