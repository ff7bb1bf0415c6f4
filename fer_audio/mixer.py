"""The mixer: sums the voices that are playing into stereo blocks.

A constant-power pan, per-voice and master gain, and a soft limiter, so cues
that overlap never clip. It is pulled block by block, by a PortAudio callback
(fer_audio.sinks.DeviceSink) or by a file writer on the source timeline
(fer_audio.sinks.WavSink). It knows sounds (fer_audio.sound), nothing above.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fer_audio.sound import Sound

# Above this the limiter bends the output smoothly towards +-1. The bundled earcons
# peak at -6 dBFS, so one cue at unit gain, even hard-panned, never reaches it.
LIMIT_THRESHOLD = 0.75
MAX_VOICES = 16


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
