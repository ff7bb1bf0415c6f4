"""The player facade: cue modes, fallbacks, and that nothing ever raises into the frame loop."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fakes import FakeCue, RecordingSink, RecordingTts

from fer_audio.audio import SYSTEM_SOUNDS, AudioOut
from fer_audio.config import AudioConfig, Config, CueConfig, SpeechConfig
from fer_audio.resources import SOUNDS_DIR
from fer_audio.sound import Sound, load_sound

RATE = 48000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def player(sink: RecordingSink | None = None, speech: SpeechConfig | None = None,
           cues: dict[str, CueConfig] | None = None, tts: RecordingTts | None = None,
           clock: Clock | None = None) -> tuple[AudioOut, RecordingSink]:
    cfg = Config()
    sink = sink or RecordingSink()
    out = AudioOut(cfg.audio, speech or cfg.speech, cfg.cues if cues is None else cues, sink=sink,
                   tts=tts or RecordingTts(), clock=clock or Clock(), retry_initial_s=1.0, retry_max_s=8.0)
    return out, sink


def earcon_of(key: str) -> Sound:
    return load_sound(SOUNDS_DIR / f"{key}.wav", RATE)


def test_earcon_mode_plays_the_earcon_with_gain_and_pan() -> None:
    out, sink = player()
    assert out.play(FakeCue("happy", "earcon", SOUNDS_DIR / "happy.wav", "", gain_db=-3.0, pan=-0.5), 2.0)
    [(t, voices, queued)] = sink.played
    assert t == 2.0 and not queued
    [v] = voices
    assert v.sound.frames == earcon_of("happy").frames and v.gain_db == -3.0 and v.pan == -0.5


def test_speech_mode_plays_the_prerendered_word() -> None:
    tts = RecordingTts()
    cues = {"happy": CueConfig(mode="speech", earcon=SOUNDS_DIR / "happy.wav", text="smiling")}
    out, sink = player(cues=cues, tts=tts)
    assert tts.texts == ["smiling"]  # rendered at start-up, not at the first cue
    out.play(FakeCue("happy", "speech", None, "smiling"), 1.0)
    out.play(FakeCue("happy", "speech", None, "smiling"), 5.0)
    assert tts.texts == ["smiling"]  # and only once
    assert [len(v) for _, v, _ in sink.played] == [1, 1]


def test_both_mode_word_follows_earcon() -> None:
    out, sink = player()
    out.play(FakeCue("sad", "both", SOUNDS_DIR / "sad.wav", "sad"), 1.0)
    [(_, (earcon, word), _)] = sink.played
    assert earcon.offset == 0 and word.offset > earcon.end


def test_system_sounds_and_unknown_names() -> None:
    out, sink = player()
    for name in SYSTEM_SOUNDS:
        assert out.play_system(name, 0.0)
    assert not out.play_system("fanfare", 0.0)
    assert len(sink.played) == len(SYSTEM_SOUNDS)


def test_silent_mode_plays_nothing() -> None:
    out, sink = player()
    assert not out.play(FakeCue("neutral", "silent", None, ""), 1.0)
    assert sink.played == []


def test_missing_earcon_file_falls_back_to_the_word(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "gone.wav"
    cues = {"happy": CueConfig(mode="earcon", earcon=missing, text="smiling")}
    with caplog.at_level(logging.WARNING, logger="fer_audio.audio"):
        out, sink = player(cues=cues)
    assert sum("gone.wav: no such file" in r.getMessage() for r in caplog.records) == 1
    assert out.play(FakeCue("happy", "earcon", missing, "smiling"), 1.0)
    [(_, (word,), _)] = sink.played
    assert word.sound is out.speech.get("smiling")


def test_speech_unavailable_falls_back_to_earcons_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    cues = {"happy": CueConfig(mode="speech", earcon=SOUNDS_DIR / "happy.wav", text="smiling")}
    with caplog.at_level(logging.WARNING, logger="fer_audio.audio"):
        out, sink = player(cues=cues, speech=SpeechConfig(enabled=False))
        for t in (1.0, 3.0, 5.0):
            assert out.play(FakeCue("happy", "speech", None, "smiling"), t)
    notices = [r for r in caplog.records if "spoken cues fall back to their earcons" in r.getMessage()]
    assert len(notices) == 1
    happy, warning = earcon_of("happy").frames, earcon_of("warning").frames
    frames = [[v.sound.frames for v in voices] for _, voices, _ in sink.played]
    assert frames == [[happy, warning], [happy], [happy]]  # the warning earcon sounds once, after the cue
    assert not out.status().speech


def test_tts_that_cannot_render_still_leaves_the_earcon() -> None:
    out, sink = player(tts=RecordingTts(fail=True))
    assert out.play(FakeCue("angry", "both", SOUNDS_DIR / "angry.wav", "angry"), 1.0)
    [(_, (only,), _)] = sink.played
    assert only.sound.frames == earcon_of("angry").frames


def test_device_lost_is_reported_once_retried_with_backoff_and_back_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    sink = RecordingSink()
    out, _ = player(sink=sink, clock=clock)
    cue = FakeCue("happy", "earcon", SOUNDS_DIR / "happy.wav", "")
    assert out.play(cue, 0.0)
    sink.problem = "the output stream stopped"
    sink.reopen_failures = 2
    with caplog.at_level(logging.DEBUG, logger="fer_audio.audio"):
        assert not out.play(cue, 1.0)  # noticed: silent from here
        assert sink.closed
        clock.now += 0.5
        assert not out.play(cue, 2.0)  # before the first retry: no attempt
        clock.now += 0.6
        assert not out.play(cue, 3.0)  # retry 1 fails -> wait 2 s
        clock.now += 1.0
        assert not out.play(cue, 4.0)  # inside the 2 s wait
        clock.now += 1.1
        assert not out.play(cue, 5.0)  # retry 2 fails -> wait 4 s
        clock.now += 4.1
        assert out.play(cue, 6.0)  # retry 3 succeeds
        assert out.play(cue, 7.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("audio device lost: the output stream stopped" in m for m in warnings) == 1
    assert sum("audio device is back" in m for m in warnings) == 1
    assert sink.reopened == 1
    assert [t for t, _, _ in sink.played] == [0.0, 6.0, 7.0]
    assert out.status().device_ok and out.status().silenced == 5  # t = 1, 2, 3, 4, 5


def test_play_failure_goes_silent_and_never_raises() -> None:
    out, sink = player(sink=RecordingSink(fail_play=True))
    assert not out.play(FakeCue("fear", "earcon", SOUNDS_DIR / "fear.wav", ""), 1.0)
    assert not out.status().device_ok
    assert not out.play(FakeCue("fear", "earcon", SOUNDS_DIR / "fear.wav", ""), 2.0)


def test_malformed_cue_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    out, _ = player()

    class Broken:
        key = "happy"
        mode = "earcon"
        text = ""
        gain_db = 0.0
        pan = 0.0

        @property
        def earcon(self) -> Path:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="fer_audio.audio"):
        assert not out.play(Broken(), 1.0)
        assert not out.play(Broken(), 2.0)
    assert sum("audio play failed" in r.getMessage() for r in caplog.records) == 1


def test_device_that_cannot_open_falls_back_to_silence(caplog: pytest.LogCaptureFixture) -> None:
    """Real PortAudio, a device name that matches nothing: warned once, silent, never raises."""
    cfg = Config()
    audio = AudioConfig(output="device", device="no-such-device-for-fer-audio-tests")
    with caplog.at_level(logging.WARNING, logger="fer_audio.audio"):
        out = AudioOut(audio, cfg.speech, cfg.cues, tts=RecordingTts())
        assert not out.play(FakeCue("happy", "earcon", SOUNDS_DIR / "happy.wav", ""), 1.0)
        assert not out.play_system("warning", 1.5)
    st = out.status()
    assert not st.device_ok and st.silenced == 2
    assert st.problem is not None and "no-such-device-for-fer-audio-tests" in st.problem
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("audio device unavailable" in m for m in msgs) == 1
    out.close()
    out.close()
    assert not out.play(FakeCue("happy", "earcon", SOUNDS_DIR / "happy.wav", ""), 2.0)  # after close: no-op


def test_say_renders_on_demand_and_caches() -> None:
    tts = RecordingTts()
    out, sink = player(tts=tts)
    before = list(tts.texts)
    assert out.say("camera lost", 1.0)
    assert out.say("camera lost", 9.0)
    assert tts.texts == [*before, "camera lost"]
    assert all(queued for _, _, queued in sink.played)  # speech waits for sounds already playing
    assert not out.say("   ", 10.0)


def test_silent_output_counts_and_cannot_fail() -> None:
    cfg = Config()
    out = AudioOut(AudioConfig(output="silent"), cfg.speech, cfg.cues, tts=RecordingTts())
    assert out.play(FakeCue("happy", "earcon", SOUNDS_DIR / "happy.wav", ""), 1.0)
    assert out.status().output == "silent" and out.status().played == 1
    out.close()
