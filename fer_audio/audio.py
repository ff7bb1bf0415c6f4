"""Audio output: sounds, a small mixer, output sinks, and the player the pipeline calls.

Three layers, bottom up:

* :class:`Sound` and :func:`load_sound`: validated mono float32 clips at the output rate.
* :class:`Mixer`: sums the voices that are playing into stereo blocks, with a
  constant-power pan, per-voice and master gain, and a soft limiter, so cues that
  overlap never clip. It is pulled block by block, by a PortAudio callback
  (:class:`DeviceSink`) or by a file writer on the source timeline (:class:`WavSink`).
* :class:`AudioOut`: what the pipeline holds. It loads every earcon and renders every
  spoken phrase once at start-up, so a cue starts within one audio block, and it
  never raises into the frame loop: a device that fails to open or goes away is
  reported once, cues go to a :class:`SilentSink` meanwhile, and the device is
  reopened with backoff; it is reported once more when it is back.

Nothing here opens a device or imports sounddevice at import time.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fer_audio.config import AudioConfig, CueConfig, SpeechConfig
from fer_audio.dispatcher import WARNING_PRIORITY
from fer_audio.resources import SOUNDS_DIR

if TYPE_CHECKING:
    from fer_audio.dispatcher import DispatcherSpeaker
    from fer_audio.speech import SpeechCache, TtsEngine

log = logging.getLogger(__name__)

MAX_SOUND_S = 2.0
# Above this the limiter bends the output smoothly towards +-1. The bundled earcons
# peak at -6 dBFS, so one cue at unit gain, even hard-panned, never reaches it.
LIMIT_THRESHOLD = 0.75
MAX_VOICES = 16
WORD_GAP_S = 0.06  # between an earcon and the word that follows it ("both")
SAY_GAP_S = 0.12  # before ad-hoc speech queued behind sounds already playing
# PortAudio output latency. 40 ms keeps a cue well inside the planner's 0.5 s budget
# while surviving a busy CPU (the ALSA pulse plugin underruns easily below ~10 ms).
DEVICE_LATENCY_S = 0.04
# No callback for this long while the stream claims to run means it has stalled.
# Generous, because an idle PulseAudio null sink legitimately pauses for up to 2 s.
STALL_S = 5.0
SYSTEM_SOUNDS: tuple[str, ...] = ("startup", "paused", "resumed", "warning")


class SoundFileError(ValueError):
    """A sound file that cannot be used as a cue; one line naming the file and the problem."""


class AudioDeviceError(RuntimeError):
    """An output device that cannot be found or opened; one line."""


class AudioOutputError(RuntimeError):
    """An output that was asked for explicitly (a WAV file) and cannot be written."""


# --------------------------------------------------------------------------- sounds

@dataclass(frozen=True, eq=False)
class Sound:
    """A mono clip at a known rate; panning makes it stereo in the mixer."""

    data: np.ndarray  # float32, shape (n,)
    rate: int

    def __post_init__(self) -> None:
        if self.data.dtype != np.float32 or self.data.ndim != 1:
            raise ValueError(f"Sound data must be 1-D float32, not {self.data.dtype} {self.data.shape}")
        if self.rate <= 0:
            raise ValueError(f"Sound rate must be positive, got {self.rate}")
        self.data.setflags(write=False)  # shared by every voice that plays it

    @property
    def frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate


def resample(x: np.ndarray, src_rate: int, dst_rate: int, zero_crossings: int = 16) -> np.ndarray:
    """Kaiser-windowed sinc interpolation, numpy only.

    Chosen over scipy.signal.resample_poly to keep scipy out of the runtime
    dependencies. Sounds are at most a few seconds long and converted once at
    start-up, so a direct (non-polyphase) evaluation is fast enough; 16 zero
    crossings and beta 8.6 give roughly 80 dB of image/alias rejection, and the
    cutoff sits at 95% of the lower Nyquist frequency.
    """
    x = np.asarray(x, dtype=np.float64)
    if src_rate == dst_rate or len(x) == 0:
        return x.astype(np.float32)
    ratio = dst_rate / src_rate
    n_out = max(1, int(round(len(x) * ratio)))
    cutoff = 0.95 * min(1.0, ratio)  # in units of the input Nyquist frequency
    half = int(math.ceil(zero_crossings / cutoff))
    padded = np.concatenate([np.zeros(half), x, np.zeros(half + 1)])
    taps = np.arange(-half + 1, half + 1)
    beta = 8.6
    out = np.empty(n_out)
    block = 4096
    for b0 in range(0, n_out, block):
        pos = np.arange(b0, min(b0 + block, n_out)) / ratio  # output instants, in input samples
        base = np.floor(pos).astype(np.int64)
        idx = base[:, None] + taps[None, :]
        dist = pos[:, None] - idx
        window = np.i0(beta * np.sqrt(np.clip(1.0 - (dist / half) ** 2, 0.0, None))) / np.i0(beta)
        h = cutoff * np.sinc(cutoff * dist) * window
        out[b0 : b0 + len(pos)] = np.sum(padded[idx + half] * h, axis=1)
    return out.astype(np.float32)


def load_sound(path: Path | str, rate: int, max_s: float = MAX_SOUND_S) -> Sound:
    """Read a WAV/FLAC/OGG cue sound, mix it to mono and convert it to ``rate``.

    Raises SoundFileError with one line (file, problem) for anything unusable:
    missing, not decodable, empty, longer than ``max_s``, or non-finite samples.
    """
    import soundfile

    p = Path(path).expanduser()
    if not p.exists():
        raise SoundFileError(f"{p}: no such file")
    if p.is_dir():
        raise SoundFileError(f"{p}: is a folder, not a sound file")
    if not p.is_file():  # a FIFO or device would block or never end
        raise SoundFileError(f"{p}: not a regular file")
    try:
        info = soundfile.info(str(p))
    except Exception as exc:  # libsndfile's own error types vary between versions
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SoundFileError(f"{p}: not a readable sound file (WAV, FLAC or OGG): {reason}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise SoundFileError(f"{p}: contains no audio")
    seconds = info.frames / info.samplerate
    if seconds > max_s:
        raise SoundFileError(f"{p}: {seconds:.2f} s long; a cue sound is at most {max_s:g} s")
    try:
        data, src_rate = soundfile.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:
        raise SoundFileError(f"{p}: cannot be decoded: {exc}") from None
    mono = data.mean(axis=1)
    if mono.size == 0:
        raise SoundFileError(f"{p}: contains no audio")
    if not np.isfinite(mono).all():
        raise SoundFileError(f"{p}: contains invalid samples (NaN or infinity)")
    return Sound(resample(mono, int(src_rate), rate), rate)


# --------------------------------------------------------------------------- mixing

def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power pan law: left**2 + right**2 == 1; -1 is hard left, 0 is -3 dB each side."""
    p = min(1.0, max(-1.0, float(pan))) if math.isfinite(pan) else 0.0
    if abs(p) == 1.0:  # exact silence on the far side (cos(pi/2) is 6e-17, not 0)
        return (1.0, 0.0) if p < 0 else (0.0, 1.0)
    theta = (p + 1.0) * math.pi / 4.0
    return math.cos(theta), math.sin(theta)


def soft_limit(buf: np.ndarray, threshold: float = LIMIT_THRESHOLD) -> np.ndarray:
    """Bend samples above ``threshold`` smoothly towards +-1 (in place); below it, untouched.

    Memoryless on purpose: it adds no latency and no state for the callback to
    share. Overlaps are rare and short (cues are rate-limited), so the brief
    saturation on a peak is preferable to pumping the quieter cue.
    """
    np.nan_to_num(buf, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    mag = np.abs(buf)
    over = mag > threshold
    if over.any():
        knee = 1.0 - threshold
        bent = threshold + knee * np.tanh((mag[over] - threshold) / knee)
        buf[over] = np.sign(buf[over]) * np.minimum(bent, 1.0)
    return buf


@dataclass(frozen=True, eq=False)
class Voice:
    """One sound to start: gain, pan, and its offset from the start of its group (frames)."""

    sound: Sound
    gain_db: float = 0.0
    pan: float = 0.0
    offset: int = 0

    @property
    def end(self) -> int:
        return self.offset + self.sound.frames


@dataclass(eq=False)
class _Playing:
    data: np.ndarray
    left: float
    right: float
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.data)


class Mixer:
    """Sums the playing voices into stereo float32 blocks; safe to call from a PortAudio callback.

    Frames are counted from 0 at creation; :attr:`frame` is the index of the next
    frame :meth:`render` produces. Voices are placed on that timeline.
    """

    def __init__(self, rate: int, master_db: float = 0.0, limit_threshold: float = LIMIT_THRESHOLD,
                 max_voices: int = MAX_VOICES) -> None:
        self.rate = rate
        self._master = db_to_gain(master_db)
        self._threshold = limit_threshold
        self._max_voices = max_voices
        self._voices: list[_Playing] = []
        self._frame = 0
        self._lock = threading.Lock()

    @property
    def frame(self) -> int:
        return self._frame

    @property
    def master_db(self) -> float:
        return 20.0 * math.log10(self._master) if self._master > 0 else -math.inf

    @master_db.setter
    def master_db(self, db: float) -> None:
        self._master = db_to_gain(db)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._voices)

    def busy_until(self) -> int:
        """First frame after every voice added so far has finished."""
        with self._lock:
            return max((v.end for v in self._voices), default=self._frame)

    def add(self, sound: Sound, gain_db: float = 0.0, pan: float = 0.0,
            start_sample: int | None = None) -> int:
        """Start ``sound`` at ``start_sample`` (None or past: the next frame rendered); return the start."""
        return self.add_group([Voice(sound, gain_db, pan)], start_sample)

    def add_group(self, voices: Sequence[Voice], base: int | None = None, queue: bool = False,
                  gap_frames: int = 0) -> int:
        """Place voices at ``base + voice.offset`` atomically, so their spacing survives a callback.

        ``queue`` starts the group only after everything already playing, plus ``gap_frames``.
        Returns the base frame used.
        """
        for v in voices:
            if v.sound.rate != self.rate:
                raise ValueError(f"sound at {v.sound.rate} Hz given to a {self.rate} Hz mixer")
        with self._lock:
            start = self._frame if base is None else max(int(base), self._frame)
            if queue and self._voices:
                start = max(start, max(p.end for p in self._voices) + gap_frames)
            for v in voices:
                left, right = pan_gains(v.pan)
                g = db_to_gain(v.gain_db) if math.isfinite(v.gain_db) else 0.0
                self._voices.append(_Playing(v.sound.data, g * left, g * right, start + v.offset))
            if len(self._voices) > self._max_voices:
                self._voices.sort(key=lambda p: p.start)
                dropped = len(self._voices) - self._max_voices
                del self._voices[:dropped]
            return start

    def clear(self) -> None:
        with self._lock:
            self._voices.clear()

    def render(self, n_frames: int) -> np.ndarray:
        """The next ``n_frames`` of output, shape (n, 2), always within [-1, 1]."""
        out = np.zeros((n_frames, 2), dtype=np.float32)
        with self._lock:
            f0 = self._frame
            f1 = f0 + n_frames
            keep: list[_Playing] = []
            for v in self._voices:
                s, e = max(v.start, f0), min(v.end, f1)
                if s < e:
                    seg = v.data[s - v.start : e - v.start]
                    out[s - f0 : e - f0, 0] += seg * v.left
                    out[s - f0 : e - f0, 1] += seg * v.right
                if v.end > f1:
                    keep.append(v)
            self._voices = keep
            self._frame = f1
            master = self._master
        if master != 1.0:
            out *= master
        return soft_limit(out, self._threshold)


# --------------------------------------------------------------------------- sinks

class Sink(Protocol):
    """Where mixed cues go. ``play`` may raise; :class:`AudioOut` catches everything."""

    name: str
    rate: int

    def play(self, voices: Sequence[Voice], t: float, queue: bool = False) -> None:
        """Start a group of voices; ``t`` is the pipeline's source-clock time in seconds."""

    def health(self) -> str | None:
        """None when fine, else one line saying what went wrong."""

    def close(self, end_t: float | None = None) -> None:
        """Release the output; a file sink first writes out what is still playing (and up to ``end_t``)."""


class SilentSink:
    """The end of every fallback chain: counts what it was asked to play and cannot fail."""

    name = "silent"

    def __init__(self, rate: int = 48000) -> None:
        self.rate = rate
        self.groups = 0
        self.voices = 0

    def play(self, voices: Sequence[Voice], t: float, queue: bool = False) -> None:
        self.groups += 1
        self.voices += len(voices)

    def health(self) -> str | None:
        return None

    def close(self, end_t: float | None = None) -> None:
        return None


@dataclass
class RecordingSink:
    """A test double: remembers every group with its time; can be told to fail."""

    rate: int = 48000
    name: str = "recording"
    played: list[tuple[float, tuple[Voice, ...], bool]] = field(default_factory=list)
    problem: str | None = None
    fail_play: bool = False
    reopen_failures: int = 0
    reopened: int = 0
    closed: bool = False

    def play(self, voices: Sequence[Voice], t: float, queue: bool = False) -> None:
        if self.fail_play:
            raise AudioDeviceError("recording sink told to fail")
        self.played.append((t, tuple(voices), queue))

    def health(self) -> str | None:
        return self.problem

    def reopen(self) -> None:
        """Like DeviceSink.reopen: fails ``reopen_failures`` times, then clears the problem."""
        if self.reopen_failures > 0:
            self.reopen_failures -= 1
            raise AudioDeviceError("recording sink: still unavailable")
        self.problem = None
        self.fail_play = False
        self.closed = False
        self.reopened += 1

    def close(self, end_t: float | None = None) -> None:
        self.closed = True


class WavSink:
    """The same mixer, writing a WAV on the source timeline instead of a device.

    A group for time ``t`` starts at sample ``round(t * rate)``, so the cue onsets in a
    demo WAV line up with the video. The file holds exactly what the mixer produced
    (limiter included), stored as 16-bit PCM unless ``subtype`` says otherwise.
    """

    name = "wav"
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


# --------------------------------------------------------------------------- the player

class CueLike(Protocol):
    """What :meth:`AudioOut.play` reads from a cue (fer_audio.cues.Cue has exactly these)."""

    @property
    def key(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def earcon(self) -> Path | None: ...
    @property
    def text(self) -> str: ...
    @property
    def gain_db(self) -> float: ...
    @property
    def pan(self) -> float: ...


@dataclass(frozen=True)
class AudioStatus:
    """For the status command: where cues go and what went wrong."""

    output: str
    device_ok: bool
    speech: bool
    played: int
    silenced: int
    underflows: int
    problem: str | None
    speech_engine: str = ""  # "speech-dispatcher", "espeak-ng" or "off"


class AudioOut:
    """The player the pipeline calls: play(cue, t), play_system(name, t), say(text, t), close().

    ``t`` is the pipeline's source-clock time in seconds: a WAV output places the cue
    there; a device plays it now. No public method raises; problems are logged once
    and, where the user could miss the log, signalled with the warning earcon.
    """

    def __init__(
        self,
        audio: AudioConfig,
        speech: SpeechConfig,
        cues: Mapping[str, CueConfig],
        *,
        sink: Sink | None = None,
        tts: TtsEngine | None = None,
        sounds_dir: Path = SOUNDS_DIR,
        clock: Callable[[], float] = time.monotonic,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 30.0,
        dispatcher: DispatcherSpeaker | None = None,
    ) -> None:
        from fer_audio.speech import open_speech

        self.rate = audio.sample_rate
        self._clock = clock
        self._lock = threading.RLock()
        self._warned: set[str] = set()
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._retry_wait = retry_initial_s
        self._next_retry = 0.0
        self._down: str | None = None
        self._silent = SilentSink(self.rate)
        self._played = 0
        self._pending_warning = False
        self._closed = False

        self._sink: Sink = sink if sink is not None else self._make_sink(audio)
        self._earcons: dict[Path, Sound | None] = {}
        for key, c in cues.items():
            if c.mode != "silent" and c.earcon is not None:
                self._load_earcon(Path(c.earcon), f"cues.{key}.earcon")
        self._system: dict[str, Sound | None] = {
            name: self._load_earcon(sounds_dir / f"{name}.wav", f"system sound {name!r}")
            for name in SYSTEM_SOUNDS
        }
        self._defaults_dir = sounds_dir

        speaking = sorted({c.text for c in cues.values() if c.mode in ("speech", "both") and c.text.strip()})
        # Opened even when no cue speaks: say() voices problems (camera lost, ...).
        self.speech: SpeechCache = open_speech(speech, self.rate, engine=tts)
        # speech-dispatcher (fer_audio/dispatcher.py): only for a live device, never for a recording.
        self.dispatcher: DispatcherSpeaker | None = dispatcher
        if dispatcher is None and sink is None and audio.output == "device":
            self.dispatcher = self._open_dispatcher(speech)
        if self.speech.available:
            self.speech.prerender(speaking)  # also the fallback when speech-dispatcher is away
        elif speaking and not (self.dispatcher is not None and self.dispatcher.up):
            self._speech_missing()

    def _open_dispatcher(self, speech: SpeechConfig) -> DispatcherSpeaker | None:
        """The user's speech-dispatcher per ``speech.engine``; absent at start is one line, not an error."""
        from fer_audio.dispatcher import DispatcherSpeaker

        if not speech.enabled or speech.engine == "espeak-ng":
            return None
        speaker = DispatcherSpeaker(speech, on_lost=self._dispatcher_lost, on_back=self._dispatcher_back)
        if speaker.start():
            log.info("speech: through speech-dispatcher (%s) as client %s", speaker.path, speaker.name)
        elif speech.engine == "speech-dispatcher":
            self._warn_once("speechd", f"speech.engine 'speech-dispatcher': {speaker.problem}; spoken cues use "
                            "the built-in espeak-ng voice until it answers")
            self._pending_warning = True
        else:
            log.info("speech: %s; spoken cues use the built-in espeak-ng voice (speech-dispatcher is used "
                     "once it answers)", speaker.problem)
        return speaker

    def _dispatcher_lost(self, reason: str) -> None:
        """speech-dispatcher died under us: one line, one audible warning, the built-in voice meanwhile."""
        if self._closed:
            return
        log.warning("speech-dispatcher stopped (%s); spoken cues use the built-in espeak-ng voice until it is back",
                    reason)
        self.play_system("warning", 0.0)
        self.say("speech dispatcher lost", 0.0)

    def _dispatcher_back(self) -> None:
        log.info("speech-dispatcher answers again; spoken cues go through it")

    # -- construction helpers

    def _make_sink(self, audio: AudioConfig) -> Sink:
        if audio.output == "silent":
            return self._silent
        if audio.output == "wav":
            if audio.wav_path is None:
                raise AudioOutputError("audio.wav_path: required when audio.output is 'wav'")
            return WavSink(audio.wav_path, self.rate, audio.master_db)
        dev = DeviceSink(self.rate, audio.master_db, audio.device, clock=self._clock, media_role=audio.media_role)
        try:
            dev.open()
        except AudioDeviceError as exc:
            self._mark_down(str(exc), "audio device unavailable")
        except Exception as exc:  # PortAudio can fail in ways of its own
            self._mark_down(f"{type(exc).__name__}: {exc}", "audio device unavailable")
        return dev

    def _load_earcon(self, path: Path, where: str) -> Sound | None:
        if path in self._earcons:
            return self._earcons[path]
        try:
            sound: Sound | None = load_sound(path, self.rate)
        except SoundFileError as exc:
            self._warn_once(f"earcon:{path}", f"{where}: {exc}")
            sound = None
        self._earcons[path] = sound
        return sound

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    def _speech_missing(self) -> None:
        if "speech" not in self._warned:
            self._warn_once("speech", f"{self.speech.reason}; spoken cues fall back to their earcons")
            self._pending_warning = True

    # -- device state

    def _mark_down(self, problem: str, what: str) -> None:
        self._down = problem
        self._retry_wait = self._retry_initial
        self._next_retry = self._clock() + self._retry_wait
        log.warning("%s: %s; cues are silent until it is back", what, problem)

    def _check_device(self) -> None:
        """Notice a lost device, and retry a down one when its backoff has passed."""
        if self._down is None:
            problem = self._sink.health()
            if problem is not None:
                self._mark_down(problem, "audio device lost")
                self._release_device()
            return
        reopen = getattr(self._sink, "reopen", None)
        if reopen is None or self._clock() < self._next_retry:
            return
        try:
            reopen()
        except Exception as exc:
            self._retry_wait = min(self._retry_wait * 2.0, self._retry_max)
            self._next_retry = self._clock() + self._retry_wait
            log.debug("audio device still unavailable (%s); next try in %.0f s", exc, self._retry_wait)
            return
        log.warning("audio device is back; cues are audible again")
        self._down = None

    # -- what a cue sounds like

    def _earcon_for(self, key: str, path: Path | None) -> Sound | None:
        if path is not None:
            return self._load_earcon(Path(path), f"cue {key!r}")
        default = self._defaults_dir / f"{key}.wav"
        return self._load_earcon(default, f"cue {key!r}") if default.is_file() else None

    def _word(self, text: str) -> Sound | None:
        """The rendered phrase; None (and the once-only notice) when speech is unavailable."""
        if not text.strip():
            return None
        if not self.speech.available:
            self._speech_missing()
            return None
        return self.speech.get(text)

    def voices_for(self, cue: CueLike) -> list[Voice]:
        """The voices a cue turns into, with fallbacks: no earcon -> its word; no speech -> its earcon."""
        mode = cue.mode
        gain, pan = float(cue.gain_db), float(cue.pan)
        earcon = self._earcon_for(cue.key, cue.earcon) if mode in ("earcon", "both") else None
        word = self._word(cue.text or cue.key.replace("_", " ")) if mode in ("speech", "both") else None
        if mode == "earcon" and earcon is None:
            word = self._word(cue.text or cue.key.replace("_", " "))
        if mode == "speech" and word is None:
            earcon = self._earcon_for(cue.key, cue.earcon)
        out: list[Voice] = []
        if earcon is not None:
            out.append(Voice(earcon, gain, pan, 0))
        if word is not None:
            offset = out[0].end + int(WORD_GAP_S * self.rate) if out else 0
            out.append(Voice(word, gain, pan, offset))
        return out

    def length_s(self, voices: Sequence[Voice]) -> float:
        return max((v.end for v in voices), default=0) / self.rate

    # -- public API

    def play(self, cue: CueLike, t: float) -> bool:
        """Play a planned cue; True when it went to an audible output."""
        with self._lock:
            try:
                if cue.mode == "silent":
                    return False
                if self._dispatched(cue, t):
                    return True
                return self._submit(self.voices_for(cue), t)
            except Exception:
                self._log_unexpected("play")
                return False

    def _dispatched(self, cue: CueLike, t: float) -> bool:
        """A cue's words through speech-dispatcher (its earcon, if any, here first); False: not taken."""
        d = self.dispatcher
        text = cue.text or cue.key.replace("_", " ")
        if d is None or not d.up or cue.mode not in ("speech", "both") or not text.strip():
            return False
        earcon = self._earcon_for(cue.key, cue.earcon) if cue.mode == "both" else None
        voices = [Voice(earcon, float(cue.gain_db), float(cue.pan), 0)] if earcon is not None else []
        delay = self.length_s(voices) + WORD_GAP_S if voices else 0.0
        if not d.speak(text, tag=(int(getattr(cue, "track", -1)), cue.key), delay_s=delay):
            return False
        self._submit(voices, t)
        self._played += 0 if voices else 1
        return True

    def withdraw(self, track: int | None, key: str | None = None) -> int:
        """Hook for the presenter: cues of ``track`` (None: all) of ``key`` (None: any) stopped being true.

        Drops the unspoken ones.

        Only speech-dispatcher words can still be waiting (for the screen reader); earcons play at once.
        """
        d = self.dispatcher
        try:
            return d.withdraw(track, key) if d is not None else 0
        except Exception:
            self._log_unexpected("withdraw")
            return 0

    def play_system(self, name: str, t: float) -> bool:
        """startup, paused, resumed or warning."""
        with self._lock:
            try:
                if name not in SYSTEM_SOUNDS:
                    self._warn_once(f"system:{name}", f"unknown system sound {name!r}; expected one of "
                                    f"{', '.join(SYSTEM_SOUNDS)}")
                    return False
                sound = self._system.get(name)
                if sound is None:
                    return False
                if name == "warning":
                    self._pending_warning = False
                # System sounds wait for what is playing (a warning must not land on the
                # start-up chord); expression cues never wait, they would be stale.
                return self._submit([Voice(sound)], t, queue=True)
            except Exception:
                self._log_unexpected("play_system")
                return False

    def say(self, text: str, t: float) -> bool:
        """Speak ``text`` after whatever is playing (rendered on first use, then cached)."""
        with self._lock:
            try:
                d = self.dispatcher
                # A fault warning goes at 'message' priority: always delivered, never cutting the screen reader.
                if d is not None and text.strip() and d.speak(text, priority=WARNING_PRIORITY):
                    self._played += 1
                    return True
                if not self.speech.available:
                    # The caller sounds its own warning earcon with a message; one log line here.
                    self._warn_once("speech-say", f"{self.speech.reason}; spoken messages are not heard")
                    return False
                word = self.speech.get(text) if text.strip() else None
                if word is None:
                    return False
                return self._submit([Voice(word)], t, queue=True)
            except Exception:
                self._log_unexpected("say")
                return False

    def status(self) -> AudioStatus:
        with self._lock:
            underflows = self._sink.underflows if isinstance(self._sink, DeviceSink) else 0
            silenced = self._silent.groups if self._sink is not self._silent else 0
            d = self.dispatcher
            engine = "speech-dispatcher" if d is not None and d.up else \
                ("espeak-ng" if self.speech.available else "off")
            return AudioStatus(self._sink.name, self._down is None, self.speech.available, self._played,
                               silenced, underflows, self._down, engine)

    def close(self, end_t: float | None = None) -> None:
        """Stop output; a WAV output is written out to the end of the last cue (or ``end_t``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._sink.close(end_t)
            except Exception as exc:
                log.warning("closing the %s output: %s", self._sink.name, exc)
            try:
                self.speech.close()
            except Exception as exc:
                log.debug("closing speech: %s", exc)
            if self.dispatcher is not None:
                self.dispatcher.close()

    # -- internals

    def _submit(self, voices: list[Voice], t: float, queue: bool = False) -> bool:
        if self._closed:
            return False
        if self._pending_warning:
            warning = self._system.get("warning")
            if warning is not None:
                end = max((v.end for v in voices), default=0)
                gap = int(WORD_GAP_S * self.rate) if voices else 0
                voices = [*voices, Voice(warning, 0.0, 0.0, end + gap)]
            self._pending_warning = False
        if not voices:
            return False
        self._check_device()
        if self._down is not None:
            self._silent.play(voices, t, queue)
            return False
        try:
            self._sink.play(voices, t, queue)
        except Exception as exc:
            self._mark_down(f"{type(exc).__name__}: {exc}", f"{self._sink.name} output failed")
            self._release_device()
            self._silent.play(voices, t, queue)
            return False
        self._played += 1
        return True

    def _release_device(self) -> None:
        """Close a lost device so it can be reopened cleanly; a file output stays as it is."""
        if getattr(self._sink, "reopen", None) is None:
            return
        try:
            self._sink.close()
        except Exception as exc:
            log.debug("closing the lost %s output: %s", self._sink.name, exc)

    def _log_unexpected(self, where: str) -> None:
        if f"bug:{where}" in self._warned:
            log.debug("audio %s failed again", where, exc_info=True)
            return
        self._warned.add(f"bug:{where}")
        log.exception("audio %s failed; the frame loop goes on", where)
