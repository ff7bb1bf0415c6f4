"""Test doubles for what cannot run here or must be told to fail: kept out of the production modules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_audio.mixer import Voice
from fer_audio.sinks import AudioDeviceError
from fer_audio.speech import SpeechUnavailable


@dataclass(frozen=True)
class FakeCue:
    """fer_audio.cues.Cue's shape without its validation, so tests can also build cues it would refuse."""

    key: str
    mode: str
    earcon: Path | None
    text: str
    gain_db: float = 0.0
    pan: float = 0.0
    event_t: float = 0.0
    track: int = 1


@dataclass
class RecordingSink:
    """A test double: remembers every group with its time; can be told to fail."""

    rate: int = 48000
    name: str = "recording"
    can_reopen: bool = True
    underflows: int = 0
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


class RecordingTts:
    """A fake synthesiser: remembers texts and returns a tone framed by silence, like espeak does."""

    def __init__(self, rate: int = 22050, fail: bool = False) -> None:
        self.rate = rate
        self.fail = fail
        self.texts: list[str] = []
        self.closed = False

    def render(self, text: str) -> tuple[np.ndarray, int]:
        self.texts.append(text)
        if self.fail:
            raise SpeechUnavailable(f"fake engine told to fail on {text!r}")
        n = int(self.rate * (0.08 + 0.03 * len(text)))
        t = np.arange(n) / self.rate
        voiced = 0.3 * np.sin(2 * np.pi * 180 * t) * np.hanning(n)
        pad = np.zeros(int(0.1 * self.rate))
        return np.concatenate([pad, voiced, pad]).astype(np.float32), self.rate

    def close(self) -> None:
        self.closed = True
