"""Spoken cues: the real espeak-ng through pyttsx3, the fake, and the unavailable path."""

from __future__ import annotations

import ctypes.util
import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest
from fakes import RecordingTts

from fer_audio.config import SpeechConfig
from fer_audio.sound import Sound
from fer_audio.speech import MAX_PEAK, SpeechCache, SpeechUnavailable, open_speech, prepare_speech

RATE = 48000

needs_espeak = pytest.mark.skipif(ctypes.util.find_library("espeak-ng") is None,
                                  reason="libespeak-ng1 is not installed (apt-get install espeak-ng)")


def rms(sound: Sound) -> float:
    return float(np.sqrt(np.mean(sound.data.astype(np.float64) ** 2)))


def leftovers() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("fer-audio-speech-*"))


@needs_espeak
def test_real_espeak_renders_a_word_that_starts_at_once() -> None:
    before = leftovers()
    cache = open_speech(SpeechConfig(), RATE)
    assert cache.available, cache.reason
    word = cache.get("smiling")
    assert word is not None and word.rate == RATE
    assert 0.15 < word.duration_s < 1.5  # one spoken word at 190 wpm
    x = word.data.astype(np.float64)
    peak = np.abs(x).max()
    assert 0.05 < peak <= MAX_PEAK + 1e-6  # audible, loudness-matched, headroom kept
    first_20ms = np.abs(x[: RATE // 50]).max()
    assert first_20ms > peak * 10 ** (-30 / 20)  # leading silence trimmed: the word is under way at once
    last_40ms = np.abs(x[-RATE // 25 :]).max()
    assert last_40ms > peak * 10 ** (-50 / 20)  # trailing silence trimmed too
    assert abs(x[0]) < 0.01 and abs(x[-1]) < 0.01  # faded edges: no click
    assert cache.get("smiling") is word  # cached, not rendered again
    assert leftovers() <= before  # the temporary WAV is gone


@needs_espeak
def test_real_espeak_follows_rate_voice_and_volume() -> None:
    slow = open_speech(SpeechConfig(rate_wpm=120), RATE).get("the face looks surprised")
    fast = open_speech(SpeechConfig(rate_wpm=380), RATE).get("the face looks surprised")
    assert slow is not None and fast is not None
    assert slow.duration_s > 1.6 * fast.duration_s
    gb = open_speech(SpeechConfig(voice="English (Great Britain)"), RATE).get("hello there")
    us = open_speech(SpeechConfig(voice="gmw/en-us"), RATE).get("hello there")
    assert gb is not None and us is not None
    assert gb.frames != us.frames or not np.array_equal(gb.data, us.data)
    loud = open_speech(SpeechConfig(volume=1.0), RATE).get("angry")
    quiet = open_speech(SpeechConfig(volume=0.5), RATE).get("angry")
    assert loud is not None and quiet is not None
    # Two renders of one word differ slightly (espeak-ng is not bit-exact), so compare levels loosely.
    assert 0.4 < rms(quiet) / rms(loud) < 0.6


def test_volume_scales_the_prepared_phrase_exactly() -> None:
    samples, rate = RecordingTts().render("volume")
    full = prepare_speech(samples, rate, RATE, volume=1.0)
    half = prepare_speech(samples, rate, RATE, volume=0.5)
    assert full is not None and half is not None
    np.testing.assert_allclose(half.data, 0.5 * full.data, atol=1e-7)


@needs_espeak
def test_unknown_voice_warns_and_keeps_speaking(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fer_audio.speech"):
        cache = open_speech(SpeechConfig(voice="klingon-imperial"), RATE)
    assert cache.get("neutral") is not None
    assert any("speech.voice 'klingon-imperial': no such espeak-ng voice" in r.getMessage() for r in caplog.records)


def test_disabled_speech_reports_itself_unavailable() -> None:
    cache = open_speech(SpeechConfig(enabled=False), RATE)
    assert not cache.available
    assert "speech.enabled = false" in cache.reason
    assert cache.get("smiling") is None


def test_engine_that_cannot_start_gives_an_unavailable_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    import fer_audio.speech as speech

    def broken(cfg: SpeechConfig) -> None:
        raise SpeechUnavailable("speech unavailable: espeak-ng could not start (no data)")

    monkeypatch.setattr(speech, "Pyttsx3Engine", broken)
    cache = open_speech(SpeechConfig(), RATE)
    assert not cache.available and "espeak-ng could not start" in cache.reason


def test_fake_engine_is_trimmed_resampled_and_cached() -> None:
    tts = RecordingTts(rate=22050)
    cache = open_speech(SpeechConfig(), RATE, engine=tts)
    assert cache.prerender(["face", "face gone"]) == []
    sound = cache.get("face")
    assert sound is not None and sound.rate == RATE
    voiced = 0.08 + 0.03 * len("face")  # the fake pads 0.1 s of silence on both sides
    assert sound.duration_s == pytest.approx(voiced, abs=0.03)
    assert cache.get("face") is sound and tts.texts == ["face", "face gone"]
    assert "face" in cache


def test_failed_render_is_remembered_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    tts = RecordingTts(fail=True)
    cache = SpeechCache(tts, RATE)
    with caplog.at_level(logging.WARNING, logger="fer_audio.speech"):
        assert cache.get("sad") is None
        assert cache.get("sad") is None
    assert tts.texts == ["sad"]
    assert sum("cannot render 'sad'" in r.getMessage() for r in caplog.records) == 1


def test_silence_prepares_to_nothing() -> None:
    assert prepare_speech(np.zeros(1000, np.float32), 22050, RATE) is None
