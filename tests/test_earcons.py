"""The bundled earcons: the committed files are what the script makes, and they meet the design rules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile

from fer_audio.config import CUE_KEYS, Config
from fer_audio.resources import SOUNDS_DIR

KEYS = (*CUE_KEYS, "startup", "paused", "resumed", "warning")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_earcons", SOUNDS_DIR / "make_earcons.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_earcons", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _script()


@pytest.fixture(scope="module")
def sounds() -> dict[str, np.ndarray]:
    out = {}
    for key in KEYS:
        info = soundfile.info(str(SOUNDS_DIR / f"{key}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_16"), key
        out[key], _ = soundfile.read(str(SOUNDS_DIR / f"{key}.wav"), dtype="float64")
    return out


def test_every_cue_and_system_sound_is_bundled_where_the_config_points() -> None:
    cfg = Config()
    for key in CUE_KEYS:
        assert cfg.cues[key].earcon == SOUNDS_DIR / f"{key}.wav"
    for key in KEYS:
        assert (SOUNDS_DIR / f"{key}.wav").is_file(), key


def test_durations(sounds: dict[str, np.ndarray]) -> None:
    for key, x in sounds.items():
        limit = 1.0 if key == "warning" else 0.3
        assert 0.03 < len(x) / 48000 <= limit + 1e-9, key


def test_loudness_matched_within_one_db(script: ModuleType, sounds: dict[str, np.ndarray]) -> None:
    levels = {k: script.loudness_lufs(x) for k, x in sounds.items()}
    mean = float(np.mean(list(levels.values())))
    for key, lufs in levels.items():
        assert abs(lufs - mean) <= 1.0, f"{key}: {lufs:.2f} LUFS against a mean of {mean:.2f}"


def test_pairwise_distinct_beyond_a_pitch_change(script: ModuleType, sounds: dict[str, np.ndarray]) -> None:
    reference = script.pitch_only_reference(sounds)
    closest, a, b = script.pairwise(sounds)[0]
    assert closest > reference, f"{a}/{b} differ by {closest:.2f} dB, a whole-tone shift by {reference:.2f} dB"


def test_distance_sees_the_difference_it_should(script: ModuleType, sounds: dict[str, np.ndarray]) -> None:
    happy = sounds["happy"]
    assert script.distance(happy, happy) == 0.0
    assert script.distance(happy, 0.5 * happy) < 7.0  # level alone (6 dB) is not a different sound
    assert script.distance(happy, script.transpose(happy, 2.0)) > 5.0


def test_no_clicks_at_either_end(sounds: dict[str, np.ndarray]) -> None:
    ms = 48  # 1 ms
    for key, x in sounds.items():
        peak = np.abs(x).max()
        assert abs(x[0]) <= 2 / 32768 and abs(x[-1]) <= 2 / 32768, key
        assert np.abs(x[:ms]).max() < 0.2 * peak, key  # a ramp, not a step
        assert np.abs(x[-ms:]).max() < 0.2 * peak, key
        assert peak <= 0.5 + 1e-4, key  # -6 dBFS: headroom for pan and overlap


@pytest.mark.slow
def test_committed_files_are_what_the_script_makes(tmp_path: Path, sounds: dict[str, np.ndarray]) -> None:
    mod = _script()
    assert mod.main(["--out", str(tmp_path)]) == 0  # the script's own checks pass too
    for key in KEYS:
        fresh, _ = soundfile.read(str(tmp_path / f"{key}.wav"), dtype="float64")
        np.testing.assert_array_equal(fresh, sounds[key], err_msg=key)
    readme = (tmp_path / "README.md").read_text()
    assert readme == (SOUNDS_DIR / "README.md").read_text()
    for key in KEYS:
        assert f"| {key}.wav |" in readme
