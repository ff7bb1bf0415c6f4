"""Per-expression enter thresholds: chosen for a precision, stored in the card, overridable (issue 13)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_audio.config import ConfigError, SmoothingConfig, parse_config
from fer_audio.emotion import ModelError, load_card
from fer_audio.resources import DEFAULT_CARD, LABELS
from fer_audio.smoothing import Smoother, resolve_thresholds
from fer_audio.types import Observation
from training.thresholds import GRID, choose, cue_stats

# -- the selection rule, on a hand-made set ----------------------------------


def _case() -> tuple[np.ndarray, np.ndarray]:
    """Two classes. Class 0 is right 9 times in 10 above 0.8 and half the time below; class 1 always."""
    rows, y = [], []
    for i in range(100):
        p = 0.85 if i < 50 else 0.45
        rows.append([p, 1 - p])
        y.append(0 if (i < 50 and i % 10) or (i >= 50 and i % 2) else 1)
    for _ in range(40):
        rows.append([0.2, 0.8])
        y.append(1)
    return np.array(rows), np.array(y)


def test_cue_stats_counts_only_faces_whose_top_label_is_the_class() -> None:
    probs, y = _case()
    assert cue_stats(probs, y, 0, 0.8) == pytest.approx((0.9, 45 / 70, 50))
    p, r, n = cue_stats(probs, y, 0, 0.4)
    assert n == 50  # the 0.45 rows have class 1 on top (0.55), so they are never class-0 cues
    p1, r1, n1 = cue_stats(probs, y, 1, 0.5)
    assert n1 == 90 and p1 == pytest.approx(65 / 90)


def test_choose_takes_the_lowest_threshold_that_holds_the_precision() -> None:
    probs, y = _case()
    labels = ["a", "b"]
    a, b = choose(probs, y, labels, precision=0.85, min_support=10)
    assert a.reached and a.enter == GRID[0] and a.precision == pytest.approx(0.9)  # every cue of a is at 0.85
    # b: up to 0.55 the rows at 0.55 (half right) pull precision to 72%; above it only the 0.8 rows: all right.
    assert b.reached and b.enter == pytest.approx(0.56) and b.precision == 1.0 and b.cued == 40
    (a_hi, _) = choose(probs, y, labels, precision=0.95, min_support=10)
    assert not a_hi.reached and a_hi.precision == pytest.approx(0.9)  # the best it can do, flagged


def test_no_threshold_goes_below_more_likely_than_all_the_others_together() -> None:
    # every face whose top label is class 0 is right, from 0.35 up: precision alone would take 0.35
    probs = np.array([[0.35, 0.33, 0.32]] * 30 + [[0.6, 0.2, 0.2]] * 30 + [[0.1, 0.8, 0.1]] * 30)
    y = np.array([0] * 60 + [1] * 30)
    (a, *_) = choose(probs, y, ["a", "b", "c"], precision=0.7, min_support=10)
    assert a.reached and a.enter == 0.5 and a.cued == 30 and a.recall == 0.5


# -- the card ---------------------------------------------------------------------


def _card_with(tmp_path: Path, thresholds: object) -> Path:
    raw = json.loads(DEFAULT_CARD.read_text())
    raw["thresholds"] = thresholds
    raw["files"] = {k: {**v, "path": str(DEFAULT_CARD.parent / v["path"])} for k, v in raw["files"].items()}
    path = tmp_path / "card.json"
    path.write_text(json.dumps(raw))
    return path


def test_shipped_card_has_a_threshold_for_every_label_and_says_how() -> None:
    card = load_card(DEFAULT_CARD)
    assert set(card.enter_thresholds) == set(LABELS)
    th = card.raw["thresholds"]
    assert th["chosen_on"] == "PublicTest" and th["command"].startswith("python -m training.thresholds ")
    for label, c in th["per_class"].items():
        assert c["enter"] == card.enter_thresholds[label]
        assert (c["precision"] >= th["target_precision"]) == c["reached"]


@pytest.mark.parametrize(("thresholds", "words"), [
    ({"enter": {"smug": 0.5}}, "thresholds.enter.smug: not one of the card's labels"),
    ({"enter": {"sad": 1.5}}, "thresholds.enter.sad: 1.5 is not a probability"),
    ({"enter": {"sad": "high"}}, "thresholds.enter.sad: 'high' is not a probability"),
    ({"enter": [0.5]}, "'thresholds.enter' must map expression labels"),
])
def test_bad_card_thresholds_are_refused_in_one_line(tmp_path: Path, thresholds: object, words: str) -> None:
    with pytest.raises(ModelError, match=words):
        load_card(_card_with(tmp_path, thresholds))


def test_a_card_without_thresholds_still_loads(tmp_path: Path) -> None:
    raw = json.loads(DEFAULT_CARD.read_text())
    raw.pop("thresholds", None)
    (tmp_path / "card.json").write_text(json.dumps(raw))
    assert load_card(tmp_path / "card.json").enter_thresholds == {}


# -- what the smoother uses -------------------------------------------------------


def test_config_wins_over_the_card_which_wins_over_the_default() -> None:
    card = {"sad": 0.35, "happy": 0.7}
    cfg = SmoothingConfig(enter_thresholds={"happy": 0.6})
    enter, exit_ = resolve_thresholds(cfg, LABELS, card)
    got = dict(zip(LABELS, enter, strict=True))
    assert got["happy"] == 0.6 and got["sad"] == 0.35 and got["angry"] == cfg.enter_threshold
    off = resolve_thresholds(cfg.model_copy(update={"card_thresholds": False}), LABELS, card)[0]
    assert dict(zip(LABELS, off, strict=True))["sad"] == cfg.enter_threshold
    # Hysteresis in proportion below the default, never above exit_threshold.
    ex = dict(zip(LABELS, exit_, strict=True))
    assert ex["sad"] == pytest.approx(cfg.exit_threshold * 0.35 / cfg.enter_threshold)
    assert ex["happy"] == cfg.exit_threshold and ex["angry"] == cfg.exit_threshold


def test_a_low_card_threshold_lets_a_quiet_class_be_cued() -> None:
    """A face held at p(sad) = 0.45: silent with one threshold of 0.55, cued with the card's 0.40."""
    sad = np.full(len(LABELS), 0.55 / (len(LABELS) - 1))
    sad[LABELS.index("sad")] = 0.45
    heard = {}
    for card in (None, {"sad": 0.40}):
        sm = Smoother(SmoothingConfig(), LABELS, card)
        events = [e for i in range(60) for e in sm.step(i * 0.05, [Observation(1, sad, 0.0, 0.3)])]
        heard[bool(card)] = [e.label for e in events if e.kind == "expression"]
    assert heard == {False: [], True: ["sad"]}
    sm = Smoother(SmoothingConfig(), LABELS, {"sad": 0.40})
    assert sm.enter_thresholds()["sad"] == 0.40
    sm.reconfigure(SmoothingConfig(enter_thresholds={"sad": 0.5}))  # a reload that overrides the card
    assert sm.enter_thresholds()["sad"] == 0.5


def test_config_thresholds_are_checked_with_the_key_path() -> None:
    assert parse_config("[smoothing]\nenter_thresholds = { sad = 0.4 }\n").smoothing.enter_thresholds == {"sad": 0.4}
    with pytest.raises(ConfigError, match=r"smoothing\.enter_thresholds: .*unknown expression 'smug'"):
        parse_config("[smoothing]\nenter_thresholds = { smug = 0.4 }\n")
    with pytest.raises(ConfigError, match=r"smoothing\.enter_thresholds.*"):
        parse_config("[smoothing]\nenter_thresholds = { sad = 1.4 }\n")


@pytest.mark.dataset
def test_thresholds_script_reproduces_the_card(fer2013_npz: Path, tmp_path: Path) -> None:
    """Re-running the script on the shipped model gives the card's thresholds (skips without the dataset)."""
    from training import thresholds

    card = tmp_path / "card.json"
    shutil.copy(DEFAULT_CARD, card)
    shipped = load_card(DEFAULT_CARD)
    for member in range(shipped.networks):  # every network the predictor runs, members too
        shutil.copy(shipped.file("tflite", member), tmp_path / shipped.file("tflite", member).name)
    assert thresholds.main(["--model", str(card), "--data", str(fer2013_npz), "--write-card"]) == 0
    assert load_card(card).enter_thresholds == load_card(DEFAULT_CARD).enter_thresholds
