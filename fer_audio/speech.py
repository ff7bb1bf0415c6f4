"""Spoken cues: rendered once with espeak-ng (through pyttsx3), kept in memory.

Speaking live would put a synthesiser start-up (tens of milliseconds) and its
leading silence between the event and the word. Rendering each phrase once at
start-up, trimming the silence and resampling to the output rate makes a word
start as fast as an earcon.

The synthesiser sits behind :class:`TtsEngine`: :class:`Pyttsx3Engine` is the real
one (tests/fakes.py has a recording one). If speech cannot start,
:func:`open_speech` returns a cache that says why it is unavailable; the player
then falls back to earcons and says so once.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import threading
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from fer_audio.config import SpeechConfig
from fer_audio.errors import FerAudioError
from fer_audio.sound import Sound, resample

log = logging.getLogger(__name__)

TRIM_DB = -40.0  # silence threshold relative to the phrase's peak
KEEP_BEFORE_S = 0.003  # keep the consonant's onset
KEEP_AFTER_S = 0.02  # keep the release of the last sound
FADE_IN_S = 0.002
FADE_OUT_S = 0.01
# Loudness of speech relative to full scale, RMS over its voiced part; close to the
# bundled earcons (-20 LUFS looped) so words and earcons sound equally loud.
SPEECH_RMS_DB = -19.0
MAX_PEAK = 0.6  # below the limiter threshold (0.75) even hard-panned
MAX_TEXT = 200


class SpeechUnavailable(FerAudioError, RuntimeError):
    """Speech cannot be initialised or rendered; one line saying why."""


class TtsEngine(Protocol):
    """A synthesiser that turns text into mono samples."""

    def render(self, text: str) -> tuple[np.ndarray, int]:
        """Samples (mono, any float or int dtype) and their rate; raises SpeechUnavailable."""

    def close(self) -> None: ...


class Pyttsx3Engine:
    """pyttsx3 with its espeak-ng driver, rendering to a temporary WAV that is read back and deleted.

    espeak-ng exists once per process and pyttsx3 hands every caller the same engine,
    so settings are applied afresh before each render, under one process-wide lock.
    """

    _lock = threading.Lock()
    _system_voice: str | None = None  # espeak's own default, read before any engine changed it

    def __init__(self, cfg: SpeechConfig) -> None:
        try:
            import pyttsx3
        except Exception as exc:
            raise SpeechUnavailable(f"speech unavailable: pyttsx3 cannot be imported ({exc})") from None
        try:
            with self._lock, contextlib.redirect_stdout(io.StringIO()):
                self._engine: Any = pyttsx3.init("espeak")
                if Pyttsx3Engine._system_voice is None:
                    Pyttsx3Engine._system_voice = str(self._engine.getProperty("voice"))
                self._default_voice = Pyttsx3Engine._system_voice
        except Exception as exc:
            raise SpeechUnavailable(f"speech unavailable: espeak-ng could not start ({exc})") from None
        self._voice = self._find_voice(cfg.voice)
        self._rate = int(cfg.rate_wpm)

    def _find_voice(self, wanted: str) -> str | None:
        wanted = wanted.strip()
        if not wanted:
            return None
        voices = list(self._engine.getProperty("voices") or [])
        low = wanted.lower()
        match = next((v for v in voices if str(v.id).lower() == low or str(v.name).lower() == low), None)
        if match is None:
            match = next((v for v in voices if low in str(v.name).lower()), None)
        if match is None:
            log.warning("speech.voice %r: no such espeak-ng voice; using the default voice", wanted)
            return None
        return str(match.id)

    def _apply_settings(self) -> None:
        try:
            self._engine.setProperty("voice", self._voice or self._default_voice)
        except Exception as exc:
            log.warning("speech.voice %r: cannot be used (%s); using the default voice", self._voice, exc)
            self._voice = None
            self._engine.setProperty("voice", self._default_voice)
        self._engine.setProperty("rate", self._rate)
        # Volume is applied after loudness matching (see prepare_speech), so espeak renders at full level.
        self._engine.setProperty("volume", 1.0)

    def render(self, text: str) -> tuple[np.ndarray, int]:
        import soundfile

        fd, name = tempfile.mkstemp(prefix="fer-audio-speech-", suffix=".wav")
        os.close(fd)
        try:
            # espeak-ng now and then writes an empty or silent file (an empty file in
            # 1 of 8-20 fresh processes; silent audio under load); a retry gives speech.
            data, rate = np.zeros((0, 1), np.float32), 0
            for _attempt in range(3):
                with self._lock, contextlib.redirect_stdout(io.StringIO()):  # pyttsx3 prints "Audio saved to ..."
                    self._apply_settings()
                    self._engine.save_to_file(text, name)
                    self._engine.runAndWait()
                if os.path.getsize(name) == 0:
                    continue
                data, rate = soundfile.read(name, dtype="float32", always_2d=True)
                if data.size and np.abs(data).max() > 1e-3:
                    break
            if not data.size or np.abs(data).max() <= 1e-3:
                raise SpeechUnavailable(f"espeak-ng produced no audio for {text!r}")
        except SpeechUnavailable:
            raise
        except Exception as exc:
            raise SpeechUnavailable(f"espeak-ng failed on {text!r}: {exc}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
        return data.mean(axis=1), int(rate)

    def close(self) -> None:
        # espeak-ng can be initialised only once per process (pyttsx3 keeps it alive): nothing to free.
        return None


def prepare_speech(samples: np.ndarray, src_rate: int, rate: int, volume: float = 1.0) -> Sound | None:
    """Trim leading/trailing silence, resample, match loudness, apply ``volume``, fade the edges.

    None when the samples hold nothing audible.
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    x = np.nan_to_num(x)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak <= 1e-6:
        return None
    loud = np.flatnonzero(np.abs(x) >= peak * 10 ** (TRIM_DB / 20))
    first = max(0, int(loud[0]) - int(KEEP_BEFORE_S * src_rate))
    last = min(len(x), int(loud[-1]) + 1 + int(KEEP_AFTER_S * src_rate))
    y = resample(x[first:last], src_rate, rate).astype(np.float64)
    voiced = np.abs(y) >= np.abs(y).max() * 10 ** (TRIM_DB / 20)
    rms = float(np.sqrt(np.mean(y[voiced] ** 2))) if voiced.any() else float(np.sqrt(np.mean(y**2)))
    if rms > 0:
        y *= 10 ** (SPEECH_RMS_DB / 20) / rms
    top = float(np.abs(y).max())
    if top > MAX_PEAK:
        y *= MAX_PEAK / top
    y *= max(0.0, min(1.0, volume))
    n_in, n_out = min(len(y), int(FADE_IN_S * rate)), min(len(y), int(FADE_OUT_S * rate))
    if n_in:
        y[:n_in] *= np.linspace(0.0, 1.0, n_in, endpoint=False)
    if n_out:
        y[len(y) - n_out :] *= np.linspace(1.0, 0.0, n_out)
    return Sound(y.astype(np.float32), rate)


class SpeechCache:
    """Phrases rendered once and kept; ``available`` is False (with ``reason``) when speech cannot run."""

    def __init__(self, engine: TtsEngine | None, rate: int, volume: float = 1.0, reason: str = "") -> None:
        self._engine = engine
        self.rate = rate
        self.volume = volume
        self.reason = reason or ("speech is ready" if engine is not None else "speech is unavailable")
        self._cache: dict[str, Sound | None] = {}
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self._engine is not None

    def __contains__(self, text: object) -> bool:
        return text in self._cache

    def get(self, text: str) -> Sound | None:
        """The phrase as a Sound (rendered now if new); None if it cannot be rendered."""
        text = " ".join(text.split())[:MAX_TEXT]
        if self._engine is None or not text:
            return None
        with self._lock:
            if text in self._cache:
                return self._cache[text]
            try:
                samples, src_rate = self._engine.render(text)
                sound = prepare_speech(samples, src_rate, self.rate, self.volume)
                if sound is None:
                    log.warning("speech: %r rendered as silence", text)
            except Exception as exc:
                log.warning("speech: cannot render %r: %s", text, exc)
                sound = None
            self._cache[text] = sound
            return sound

    def prerender(self, texts: Iterable[str]) -> list[str]:
        """Render every phrase now; returns those that failed."""
        return [t for t in texts if self.get(t) is None]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


def open_speech(cfg: SpeechConfig, rate: int, engine: TtsEngine | None = None) -> SpeechCache:
    """A cache on ``engine`` (default: pyttsx3/espeak-ng), or an unavailable one saying why. Never raises."""
    if not cfg.enabled:
        return SpeechCache(None, rate, cfg.volume, reason="speech is off (speech.enabled = false)")
    if engine is None:
        try:
            engine = Pyttsx3Engine(cfg)
        except SpeechUnavailable as exc:
            return SpeechCache(None, rate, cfg.volume, reason=str(exc))
        except Exception as exc:
            reason = f"speech unavailable: {type(exc).__name__}: {exc}"
            return SpeechCache(None, rate, cfg.volume, reason=reason)
    return SpeechCache(engine, rate, cfg.volume)

