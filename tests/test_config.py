"""Config schema: defaults, the shipped example, and one clear line for each kind of bad file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fer_audio.config import (
    CUE_KEYS,
    Config,
    ConfigError,
    example_toml,
    load_config,
    parse_config,
)
from fer_audio.resources import LABELS

EXAMPLE = Path(__file__).resolve().parent.parent / "fer_audio" / "config.example.toml"


def test_defaults_are_valid_and_cover_every_label() -> None:
    cfg = Config()
    assert set(cfg.cues) == set(CUE_KEYS)
    assert set(LABELS) <= set(cfg.cues)
    assert cfg.smoothing.exit_threshold < cfg.smoothing.enter_threshold
    assert cfg.audio.min_interval_s == 1.5


def test_shipped_example_is_generated_from_the_schema() -> None:
    assert EXAMPLE.read_text() == example_toml(), "regenerate: python -c 'from fer_audio.config import ...'"


def test_shipped_example_loads_as_is_and_uncommented() -> None:
    assert load_config(EXAMPLE) == Config()
    # Uncomment every "# key = value" line: the result must still equal the defaults,
    # so a user who edits any line starts from the true default.
    text = re.sub(r"^# (\w+ = .*)$", r"\1", EXAMPLE.read_text(), flags=re.M)
    assert text.count("\n") > 50
    assert parse_config(text, "uncommented", EXAMPLE.parent) == Config()


def test_missing_default_file_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_config(None) == Config()


def test_xdg_file_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "fer-audio").mkdir()
    (tmp_path / "fer-audio" / "config.toml").write_text("[audio]\nmin_interval_s = 3.0\n")
    assert load_config(None).audio.min_interval_s == 3.0


def test_partial_cue_section_keeps_other_defaults() -> None:
    cfg = parse_config('[cues.happy]\nmode = "speech"\n')
    assert cfg.cues["happy"].mode == "speech"
    assert cfg.cues["happy"].text == "smiling"
    assert cfg.cues["sad"] == Config().cues["sad"]


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "mine.wav").write_bytes(b"")
    f = tmp_path / "c.toml"
    f.write_text('[cues.happy]\nearcon = "mine.wav"\n[cues.sad]\nearcon = "sounds/sad.wav"\n')
    cfg = load_config(f)
    assert cfg.cues["happy"].earcon == tmp_path / "mine.wav"
    # Not beside the file, so the bundled sound is meant.
    assert cfg.cues["sad"].earcon == Config().cues["sad"].earcon


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[smoothing]\nenter_treshold = 0.5\n", "smoothing.enter_treshold: unknown key"),
        ("[smoothing]\nenter_threshold = 1.5\n", "smoothing.enter_threshold: Input should be less than 1"),
        ("[smoothing]\nenter_threshold = 0.5\nexit_threshold = 0.6\n", "exit_threshold must not exceed"),
        ('[smoothing]\nhalf_life_s = "fast"\n', "smoothing.half_life_s: Input should be a valid number"),
        ("[audio]\nmin_interval_s = -1\n", "audio.min_interval_s: Input should be greater than or equal to 0"),
        ('[audio]\nverbosity = "chatty"\n', "audio.verbosity: Input should be 'all'"),
        ('[cues.happy]\nmode = "loud"\n', "cues.happy.mode: Input should be 'earcon'"),
        ('[cues.hapy]\nmode = "silent"\n', "unknown cue 'hapy'"),
        ('[cues.happy]\ncolour = "red"\n', "cues.happy.colour: unknown key"),
        ("[detector]\nbackend = 'dlib'\n", "detector.backend: Input should be 'yunet' or 'haar'"),
        ("[nonsense]\nx = 1\n", "nonsense: unknown key"),
        ("[source\nuri = 0\n", "not valid TOML"),
        ("source = 3\n", "source: Input should be a valid dictionary"),
    ],
)
def test_bad_values_give_one_line_naming_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{f}: ")
    assert expected in msg


def test_file_level_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[cues.happy]\ntext = "\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * 1_100_000)
    with pytest.raises(ConfigError, match="at most"):
        load_config(huge)
