"""Sound values, the bottom of the audio layers: a validated mono clip, loading and resampling.

Nothing above (mixer, sinks, player, speech) needs more than :class:`Sound`;
nothing here plays anything or knows about devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_audio.errors import FerAudioError

MAX_SOUND_S = 2.0


class SoundFileError(FerAudioError, ValueError):
    """A sound file that cannot be used as a cue; one line naming the file and the problem."""


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
