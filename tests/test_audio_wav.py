"""The WAV output: cues land on the source timeline, and the file holds what the mixer made."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from fakes import FakeCue, RecordingTts
from pulse import onsets_by_correlation

from fer_audio.audio import WORD_GAP_S, AudioOut
from fer_audio.config import AudioConfig, Config
from fer_audio.mixer import Mixer, Voice
from fer_audio.resources import SOUNDS_DIR
from fer_audio.sinks import AudioOutputError, WavSink
from fer_audio.sound import load_sound

RATE = 48000


def left_over_right_db(seg: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(seg[:, 0] ** 2) / np.sum(seg[:, 1] ** 2)))


def wav_player(tmp_path: Path, **audio: object) -> tuple[AudioOut, Path]:
    cfg = Config()
    path = tmp_path / "out.wav"
    a = cfg.audio.model_copy(update={"output": "wav", "wav_path": path, **audio})
    return AudioOut(a, cfg.speech, cfg.cues, tts=RecordingTts()), path


def test_cue_onsets_match_the_timeline(tmp_path: Path) -> None:
    player, path = wav_player(tmp_path)
    plan = [("happy", 0.5, -0.8), ("sad", 1.3, 0.8), ("surprise", 2.05, 0.0), ("happy", 2.9, 0.3)]
    for key, t, pan in plan:
        assert player.play(FakeCue(key, "earcon", SOUNDS_DIR / f"{key}.wav", "", pan=pan), t)
    player.close()
    rec, rate = soundfile.read(path, dtype="float32")
    assert rate == RATE and rec.shape[1] == 2
    mono = rec.sum(axis=1)
    for key in ("happy", "sad", "surprise"):
        template = load_sound(SOUNDS_DIR / f"{key}.wav", RATE).data
        found = [i for i, c in onsets_by_correlation(mono, template, threshold=0.95)]
        expected = [round(t * RATE) for k, t, _ in plan if k == key]
        assert found == expected, key


def test_pan_shows_in_the_file(tmp_path: Path) -> None:
    player, path = wav_player(tmp_path)
    player.play(FakeCue("happy", "earcon", SOUNDS_DIR / "happy.wav", "", pan=-0.8), 0.1)
    player.play(FakeCue("sad", "earcon", SOUNDS_DIR / "sad.wav", "", pan=0.8), 1.0)
    player.close()
    rec, _ = soundfile.read(path, dtype="float64")
    first, second = rec[: RATE // 2], rec[RATE : RATE + RATE // 2]
    assert left_over_right_db(first) > 10 and left_over_right_db(second) < -10  # pan 0.8: 16 dB apart


def test_file_holds_exactly_what_the_mixer_renders(tmp_path: Path) -> None:
    a = load_sound(SOUNDS_DIR / "angry.wav", RATE)
    b = load_sound(SOUNDS_DIR / "fear.wav", RATE)
    path = tmp_path / "direct.wav"
    sink = WavSink(path, RATE, master_db=-6.0)
    sink.play([Voice(a, 0.0, -0.5)], 0.25)
    sink.play([Voice(b, 3.0, 0.4), Voice(a, -2.0, 0.0, 9000)], 0.3)  # overlapping on purpose
    sink.close(end_t=1.5)
    rec, _ = soundfile.read(path, dtype="float32")
    assert len(rec) == int(1.5 * RATE)  # written out to end_t
    ref = Mixer(RATE, master_db=-6.0)
    ref.add(a, 0.0, -0.5, start_sample=12000)
    ref.add_group([Voice(b, 3.0, 0.4), Voice(a, -2.0, 0.0, 9000)], base=14400)
    np.testing.assert_allclose(rec, ref.render(len(rec)), atol=1.0 / 32768 + 1e-7)  # 16-bit rounding only


def test_both_mode_puts_the_word_after_the_earcon(tmp_path: Path) -> None:
    player, path = wav_player(tmp_path)
    cue = FakeCue("happy", "both", SOUNDS_DIR / "happy.wav", "smiling")
    player.play(cue, 0.4)
    word = player.speech.get("smiling")
    player.close()
    assert word is not None
    rec, _ = soundfile.read(path, dtype="float32")
    mono = rec.sum(axis=1)
    earcon = load_sound(SOUNDS_DIR / "happy.wav", RATE)
    [(e_at, _)] = onsets_by_correlation(mono, earcon.data, threshold=0.9)
    [(w_at, _)] = onsets_by_correlation(mono, word.data, threshold=0.9)
    assert e_at == round(0.4 * RATE)
    assert w_at == e_at + earcon.frames + int(WORD_GAP_S * RATE)


def test_say_waits_for_the_sounds_already_placed(tmp_path: Path) -> None:
    player, path = wav_player(tmp_path)
    player.play_system("warning", 1.0)
    player.say("camera lost", 1.0)
    word = player.speech.get("camera lost")
    player.close()
    assert word is not None
    rec, _ = soundfile.read(path, dtype="float32")
    warning = load_sound(SOUNDS_DIR / "warning.wav", RATE)
    [(w_at, _)] = onsets_by_correlation(rec.sum(axis=1), word.data, threshold=0.9)
    assert w_at >= round(1.0 * RATE) + warning.frames


def test_a_cue_behind_the_timeline_is_placed_at_its_end(tmp_path: Path) -> None:
    sink = WavSink(tmp_path / "late.wav", RATE)
    s = load_sound(SOUNDS_DIR / "neutral.wav", RATE)
    sink.play([Voice(s)], 1.0)
    sink.play([Voice(s)], 2.0)
    sink.play([Voice(s)], 0.5)  # clock went backwards (a looping file): no crash, no overwrite
    assert sink.frames_written == 2 * RATE
    sink.close()
    sink.close()  # idempotent


def test_unwritable_wav_path_is_one_clear_line(tmp_path: Path) -> None:
    cfg = Config()
    bad = tmp_path / "no" / "such" / "dir" / "out.wav"
    with pytest.raises(AudioOutputError, match=r"out\.wav: cannot write a WAV file there"):
        AudioOut(cfg.audio.model_copy(update={"output": "wav", "wav_path": bad}), cfg.speech, cfg.cues,
                 tts=RecordingTts())
    with pytest.raises(AudioOutputError, match="audio.wav_path: required"):
        AudioOut(AudioConfig(output="wav"), cfg.speech, cfg.cues, tts=RecordingTts())
