"""``fer-audio sounds``: each earcon followed by its name, into a WAV (real espeak-ng) or the device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from pulse import onsets_by_correlation

from fer_audio.audio import WORD_GAP_S
from fer_audio.config import CUE_KEYS, Config
from fer_audio.learning import SYSTEM_NAMES, learning_sequence, play_learning
from fer_audio.resources import SOUNDS_DIR
from fer_audio.sound import load_sound
from fer_audio.speech import open_speech

RATE = 48000


def test_sequence_defaults_to_every_cue_then_system_sounds() -> None:
    cfg = Config()
    items = learning_sequence(cfg.audio, cfg.speech, cfg.cues, None)
    assert [i.key for i in items] == [*CUE_KEYS, *SYSTEM_NAMES]
    happy = next(i for i in items if i.key == "happy")
    assert happy.text == "smiling" and happy.earcon == SOUNDS_DIR / "happy.wav" and happy.mode == "both"
    neutral = next(i for i in items if i.key == "neutral")
    assert neutral.earcon == SOUNDS_DIR / "neutral.wav"  # silent by default, still learnable


def test_unknown_key_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert play_learning(Config(), ["happy", "smug"], tmp_path / "x.wav") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fer-audio sounds: unknown sound 'smug'; expected one of angry,")
    assert "\n" not in err


def test_writes_each_earcon_then_its_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = ["happy", "sad", "face_lost", "warning"]
    out = tmp_path / "learn.wav"
    assert play_learning(Config(), keys, out) == 0
    assert f"wrote {out}: 4 sounds" in capsys.readouterr().out
    rec, rate = soundfile.read(out, dtype="float64")
    assert rate == RATE
    mono = rec.sum(axis=1)
    cfg = Config()
    items = learning_sequence(cfg.audio, cfg.speech, cfg.cues, keys)
    speaking = open_speech(cfg.speech, RATE).available
    onsets = []
    for item in items:
        assert item.earcon is not None
        template = load_sound(item.earcon, RATE).data
        found = onsets_by_correlation(mono, template, threshold=0.95)
        assert len(found) == 1, item.key  # each earcon exactly once
        at = found[0][0]
        onsets.append(at)
        # espeak-ng varies a little from render to render, so the name is checked by
        # where it must be, not by its waveform: silence for the gap, then speech at once.
        word_at = at + len(template) + int(WORD_GAP_S * RATE)
        gap = mono[at + len(template) : word_at]
        assert np.abs(gap).max() < 1e-3, item.key
        if speaking:
            start = np.abs(mono[word_at : word_at + RATE // 50]).max()  # first 20 ms
            body = np.sqrt(np.mean(mono[word_at : word_at + RATE // 5] ** 2))  # first 200 ms
            assert start > 0.002 and body > 0.005, item.key  # silence here is 0 (16-bit: < 1e-4)
    assert len(onsets) == len(keys) and onsets == sorted(onsets)  # one onset per sound, in the order asked


def test_no_device_says_to_use_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = Config()
    cfg = cfg.model_copy(update={"audio": cfg.audio.model_copy(update={"device": "no-such-device-xyz"})})
    slept: list[float] = []
    assert play_learning(cfg, ["happy"], None, sleep=slept.append) == 1
    assert "--out FILE.wav" in capsys.readouterr().err
    assert slept == []


def test_learning_sequence_uses_the_users_cue_files(tmp_path: Path) -> None:
    mine = tmp_path / "ding.wav"
    soundfile.write(mine, (0.3 * np.sin(np.arange(4800) / 5)).astype(np.float32), RATE)
    cfg = Config.model_validate({"cues": {"happy": {"earcon": str(mine), "text": "grinning"}}})
    [item] = learning_sequence(cfg.audio, cfg.speech, cfg.cues, ["happy"])
    assert item.earcon == mine and item.text == "grinning"
