"""The training tools' card writes: other sections kept, and a failed write leaves the old card whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.card import command_line, update_card, write_card


def test_update_keeps_other_sections(tmp_path: Path) -> None:
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "m", "metrics": {"public": {"accuracy": 0.6}}}))
    new = update_card(card, robustness={"clean": 0.64}, crop_margin=0.1)
    on_disk = json.loads(card.read_text())
    assert on_disk == new
    assert on_disk == {"name": "m", "metrics": {"public": {"accuracy": 0.6}},
                       "robustness": {"clean": 0.64}, "crop_margin": 0.1}


def test_failed_write_leaves_the_old_card_and_no_temporary_file(tmp_path: Path) -> None:
    card = tmp_path / "card.json"
    before = json.dumps({"name": "m", "thresholds": {"enter": {"sad": 0.59}}})
    card.write_text(before)
    with pytest.raises(TypeError):
        write_card(card, {"name": "m", "bad": object()})  # not JSON: fails while writing
    assert card.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]


def test_command_line_is_what_a_reader_types() -> None:
    assert command_line("training.robustness", ["--model", "models/card.json", "--write-card"]) == \
        "python -m training.robustness --model models/card.json --write-card"
