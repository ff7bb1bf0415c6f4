"""Test doubles shared by the audio tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
