"""Output sinks: where mixed cues go (a PortAudio device, a WAV file, nowhere).

Each sink owns a :class:`~fer_audio.mixer.Mixer`. :class:`DeviceSink` reports
run-time trouble through :meth:`~Sink.health` rather than raising from
PortAudio's thread, and gets itself back with :meth:`~Sink.reopen` (re-scanning
the devices, so a headset plugged in later is found); :class:`Reconnector`
says when to try. Nothing here opens a device or imports sounddevice at
import time.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fer_audio.errors import FerAudioError
from fer_audio.mixer import Mixer, Voice
from fer_audio.retry import backoff_delays

log = logging.getLogger(__name__)

SAY_GAP_S = 0.12  # before ad-hoc speech queued behind sounds already playing
# PortAudio output latency. 40 ms keeps a cue well inside the planner's 0.5 s budget
# while surviving a busy CPU (the ALSA pulse plugin underruns easily below ~10 ms).
DEVICE_LATENCY_S = 0.04
# No callback for this long while the stream claims to run means it has stalled.
# Generous, because an idle PulseAudio null sink legitimately pauses for up to 2 s.
STALL_S = 5.0


class AudioDeviceError(FerAudioError, RuntimeError):
    """An output device that cannot be found or opened; one line."""


class AudioOutputError(FerAudioError, RuntimeError):
    """An output that was asked for explicitly (a WAV file) and cannot be written."""


class Sink(Protocol):
    """Where mixed cues go. ``play`` may raise; the player (fer_audio.audio.AudioOut) catches everything.

    ``can_reopen`` is True for an output that can come back after it was lost
    (a device); a file or nothing has nothing to reconnect to.
    """

    name: str
    rate: int
    can_reopen: bool
    underflows: int

    def play(self, voices: Sequence[Voice], t: float, queue: bool = False) -> None:
        """Start a group of voices; ``t`` is the pipeline's source-clock time in seconds."""

    def health(self) -> str | None:
        """None when fine, else one line saying what went wrong."""

    def reopen(self) -> None:
        """Close and open again (``can_reopen`` outputs); raises while the output is still unavailable."""

    def close(self, end_t: float | None = None) -> None:
        """Release the output; a file sink first writes out what is still playing (and up to ``end_t``)."""


class SilentSink:
    """The end of every fallback chain: counts what it was asked to play and cannot fail."""

    name = "silent"
    can_reopen = False
    underflows = 0

    def __init__(self, rate: int = 48000) -> None:
        self.rate = rate
        self.groups = 0
        self.voices = 0

    def play(self, voices: Sequence[Voice], t: float, queue: bool = False) -> None:
        self.groups += 1
        self.voices += len(voices)

    def health(self) -> str | None:
        return None

    def reopen(self) -> None:
        return None

    def close(self, end_t: float | None = None) -> None:
        return None


class WavSink:
    """The same mixer, writing a WAV on the source timeline instead of a device.

    A group for time ``t`` starts at sample ``round(t * rate)``, so the cue onsets in a
    demo WAV line up with the video. The file holds exactly what the mixer produced
    (limiter included), stored as 16-bit PCM unless ``subtype`` says otherwise.
    """

    name = "wav"
    can_reopen = False
    underflows = 0
    BLOCK = 4800

    def __init__(self, path: Path | str, rate: int, master_db: float = 0.0, subtype: str = "PCM_16") -> None:
        import soundfile

        self.path = Path(path).expanduser()
        self.rate = rate
        self.mixer = Mixer(rate, master_db)
        try:
            self._file: Any = soundfile.SoundFile(str(self.path), "w", samplerate=rate, channels=2,
                                                  subtype=subtype, format="WAV")
        except Exception as exc:
            raise AudioOutputError(f"{self.path}: cannot write a WAV file there: {exc}") from None
        self._closed = False

    @property
    def frames_written(self) -> int:
        return self.mixer.frame

    def _render_to(self, frame: int) -> None:
        while self.mixer.frame < frame:
            self._file.write(self.mixer.render(min(self.BLOCK, frame - self.mixer.frame)))

    def play(self, voices: Sequence[Voice], t: float, queue: bool = False) -> None:
        if self._closed:
            raise AudioOutputError(f"{self.path}: already closed")
        target = max(0, int(round(t * self.rate))) if math.isfinite(t) else self.mixer.frame
        if target < self.mixer.frame:
            log.debug("cue at %.3f s is behind the WAV timeline (%.3f s); placed at the current end",
                      t, self.mixer.frame / self.rate)
        self._render_to(target)
        self.mixer.add_group(voices, target, queue=queue, gap_frames=int(SAY_GAP_S * self.rate))

    def health(self) -> str | None:
        return None

    def reopen(self) -> None:
        raise AudioOutputError(f"{self.path}: a WAV recording cannot be reopened")

    def close(self, end_t: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        end = self.mixer.busy_until()
        if end_t is not None and math.isfinite(end_t):
            end = max(end, int(round(end_t * self.rate)))
        try:
            self._render_to(end)
        finally:
            self._file.close()


@dataclass(frozen=True)
class DeviceInfo:
    """One output device as PortAudio sees it; ``str()`` is the line ``fer-audio devices`` prints."""

    index: int
    name: str
    hostapi: str
    channels: int
    default_rate: float
    is_default: bool

    def __str__(self) -> str:
        mark = " (default)" if self.is_default else ""
        return (f"{self.index}: {self.name} [{self.hostapi}, {self.channels} channels, "
                f"{self.default_rate:.0f} Hz]{mark}")


def _sounddevice() -> Any:
    """Import sounddevice on first use: it loads PortAudio, which probes every device."""
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio shared library is missing
        raise AudioDeviceError(f"PortAudio is not available ({exc}); install libportaudio2") from None
    return sounddevice


_OUR_PROPS: dict[str, str] = {}  # what stream_properties last set; any other value is the user's


def stream_properties(role: str, env: MutableMapping[str, str] | None = None) -> None:
    """Name the output stream for the sound server: ``application.name`` fer-audio and ``media.role``.

    PortAudio has no way to pass stream properties, but libpulse (inside ALSA's pulse
    plugin) reads ``PULSE_PROP_OVERRIDE`` when the stream's connection is made, i.e. when
    the stream opens; the override form, because the plugin already names the client
    "ALSA plug-in [python3]" and plain ``PULSE_PROP`` only fills in missing keys.
    PipeWire's own ALSA plugin reads ``PIPEWIRE_PROPS``. A value the user exported wins.
    """
    target = os.environ if env is None else env
    values = {
        "PULSE_PROP_OVERRIDE": f"application.name=fer-audio application.id=fer-audio media.role={role}",
        "PIPEWIRE_PROPS": "{ application.name = fer-audio media.role = " + role + " }",
    }
    for key, value in values.items():
        if key in target and target[key] != _OUR_PROPS.get(key):
            continue
        target[key] = value
        _OUR_PROPS[key] = value


def _rescan_devices() -> None:
    """PortAudio lists devices once, when it starts; restart it to see new ones.

    sounddevice has no public call for this, so its private terminate/initialise pair
    is used, and only from DeviceSink.reopen, when this process has no stream open.
    """
    sd = _sounddevice()
    try:
        sd._terminate()
        sd._initialize()
    except Exception as exc:
        log.debug("re-scanning audio devices failed: %s", exc)


def list_devices() -> list[DeviceInfo]:
    """Output devices, for ``fer-audio devices``; raises AudioDeviceError without PortAudio."""
    sd = _sounddevice()
    try:
        default_out = sd.default.device[1]
        devices = sd.query_devices()
        apis = sd.query_hostapis()
    except Exception as exc:
        raise AudioDeviceError(f"cannot list audio devices: {exc}") from None
    out = []
    for i, d in enumerate(devices):
        if int(d["max_output_channels"]) <= 0:
            continue
        api = str(apis[d["hostapi"]]["name"])
        out.append(DeviceInfo(i, str(d["name"]), api, int(d["max_output_channels"]),
                              float(d["default_samplerate"]), i == default_out))
    return out


def resolve_device(spec: str, devices: Sequence[DeviceInfo] | None = None) -> int | None:
    """``audio.device`` to a PortAudio index: '' is the default, digits an index, else a name substring.

    An exact (case-insensitive) name wins over a substring; among substrings the first listed wins.
    """
    spec = spec.strip()
    if not spec:
        return None
    devs = list(devices) if devices is not None else list_devices()
    if spec.isdigit():
        idx = int(spec)
        if any(d.index == idx for d in devs):
            return idx
        raise AudioDeviceError(f"audio.device {spec!r}: no output device has that index "
                               "(see 'fer-audio devices')")
    low = spec.lower()
    exact = [d for d in devs if d.name.lower() == low]
    if exact:
        return exact[0].index
    partial = [d for d in devs if low in d.name.lower()]
    if partial:
        return partial[0].index
    raise AudioDeviceError(f"audio.device {spec!r}: no output device name contains it "
                           "(see 'fer-audio devices')")


class DeviceSink:
    """A PortAudio output stream whose callback pulls blocks from the mixer.

    Construction opens nothing; :meth:`open` does and raises AudioDeviceError.
    Run-time trouble is not raised either: the callback and PortAudio's finished
    callback only record it, and :meth:`health` reports it to the caller.
    """

    name = "device"
    can_reopen = True

    def __init__(self, rate: int, master_db: float = 0.0, device: str = "",
                 latency: float | str = DEVICE_LATENCY_S, stall_s: float = STALL_S,
                 clock: Callable[[], float] = time.monotonic, media_role: str = "a11y") -> None:
        self.rate = rate
        self.media_role = media_role
        self.device = device
        self.mixer = Mixer(rate, master_db)
        self.latency = latency
        self.stall_s = stall_s
        self._clock = clock
        self._stream: Any = None
        self._channels = 2
        self._problem: str | None = None
        self._closing = False
        self._last_callback = 0.0
        self.underflows = 0
        self.opened = 0

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    @property
    def stream_latency_s(self) -> float | None:
        """PortAudio's own figure for the open stream's output latency."""
        return float(self._stream.latency) if self._stream is not None else None

    def open(self) -> None:
        stream_properties(self.media_role)  # before the stream connects to the sound server
        sd = _sounddevice()
        index = resolve_device(self.device)
        try:
            info = sd.query_devices(index, "output") if index is not None else sd.query_devices(kind="output")
            self._channels = 2 if int(info["max_output_channels"]) >= 2 else 1
            stream = sd.OutputStream(samplerate=self.rate, channels=self._channels, dtype="float32",
                                     device=index, latency=self.latency, callback=self._callback,
                                     finished_callback=self._finished)
        except Exception as exc:
            what = f"device {self.device!r}" if self.device else "the default device"
            raise AudioDeviceError(f"cannot open {what} for output: {exc}") from None
        self._closing = False
        self._problem = None
        self.mixer.clear()  # cues queued while the device was away are old news
        self._last_callback = self._clock()
        try:
            stream.start()
        except Exception as exc:
            self._close_stream(stream)
            raise AudioDeviceError(f"cannot start the output stream: {exc}") from None
        self._stream = stream
        self.opened += 1
        log.debug("output stream open: %s, latency %.1f ms", stream.device, 1000 * stream.latency)

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # Runs on PortAudio's thread: no logging, no allocation beyond the mixer block.
        try:
            block = self.mixer.render(frames)
            if self._channels == 2:
                outdata[:] = block
            else:
                outdata[:, 0] = block.mean(axis=1)
        except Exception as exc:
            outdata.fill(0)
            self._problem = f"the mixer failed: {exc}"
        if status and status.output_underflow:
            self.underflows += 1
        self._last_callback = self._clock()

    def _finished(self) -> None:
        if not self._closing:
            self._problem = "the output stream stopped (device gone or sound server down)"

    def health(self) -> str | None:
        if self._stream is None:
            return "the output stream is not open"
        if self._problem:
            return self._problem
        try:
            if not self._stream.active:
                return "the output stream is not running"
        except Exception as exc:
            return f"the output stream failed: {exc}"
        if self._clock() - self._last_callback > self.stall_s:
            return f"the device has asked for no audio for {self.stall_s:g} s"
        return None

    def play(self, voices: Sequence[Voice], t: float, queue: bool = False) -> None:
        if self._stream is None:
            raise AudioDeviceError("the output stream is not open")
        self.mixer.add_group(voices, None, queue=queue, gap_frames=int(SAY_GAP_S * self.rate))

    def reopen(self) -> None:
        """Close and open again; a failed first try re-scans PortAudio's devices (a headset plugged in later)."""
        self.close()
        try:
            self.open()
        except AudioDeviceError:
            _rescan_devices()
            self.open()

    @staticmethod
    def _close_stream(stream: Any) -> None:
        for step in (stream.abort, stream.close):
            try:
                step()
            except Exception as exc:  # a dead stream may refuse to stop; it still gets closed
                log.debug("closing the output stream: %s", exc)

    def close(self, end_t: float | None = None) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        self._closing = True
        self._close_stream(stream)


class Reconnector:
    """Whether a sink is down and when to try it again: the audio half of the reconnect rule.

    A lost output is reported once (``warning``), closed so it can be reopened
    cleanly, and retried with :func:`~fer_audio.retry.backoff_delays`; that it
    is back is reported once more. Only ``can_reopen`` sinks are retried: a
    file output that failed stays as it is.
    """

    def __init__(self, sink: Sink, *, clock: Callable[[], float] = time.monotonic,
                 retry_initial_s: float = 1.0, retry_max_s: float = 30.0) -> None:
        self.sink = sink
        self._clock = clock
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._delays: Iterator[float] = backoff_delays(retry_initial_s, retry_max_s)
        self._next_retry = 0.0
        self.problem: str | None = None

    @property
    def down(self) -> bool:
        return self.problem is not None

    def mark_down(self, problem: str, what: str) -> None:
        """The output failed (``what``: how it is said in the log); cues are silent until it is back."""
        self.problem = problem
        self._delays = backoff_delays(self._retry_initial, self._retry_max)
        self._next_retry = self._clock() + next(self._delays)
        log.warning("%s: %s; cues are silent until it is back", what, problem)

    def failed(self, problem: str) -> None:
        """Playing raised: down, and a device is released so the retry starts clean."""
        self.mark_down(problem, f"{self.sink.name} output failed")
        self._release()

    def check(self) -> None:
        """Notice a lost output, and retry a down one when its backoff has passed."""
        if self.problem is None:
            problem = self.sink.health()
            if problem is not None:
                self.mark_down(problem, "audio device lost")
                self._release()
            return
        if not self.sink.can_reopen or self._clock() < self._next_retry:
            return
        try:
            self.sink.reopen()
        except Exception as exc:
            wait = next(self._delays)
            self._next_retry = self._clock() + wait
            log.debug("audio device still unavailable (%s); next try in %.0f s", exc, wait)
            return
        log.warning("audio device is back; cues are audible again")
        self.problem = None

    def _release(self) -> None:
        """Close a lost device so it can be reopened cleanly; a file output stays as it is."""
        if not self.sink.can_reopen:
            return
        try:
            self.sink.close()
        except Exception as exc:
            log.debug("closing the lost %s output: %s", self.sink.name, exc)
