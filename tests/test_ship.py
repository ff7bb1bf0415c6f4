"""training/ship.sh's guards: a model ships only when what will run beats the shipped model on
PublicTest, and a refused or failed ship leaves models/ exactly as it was.

The export itself needs the full dataset; here a stand-in for ``python -m training.export``
writes the card an export would write, so the script's own decisions are what is tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIP = ROOT / "training" / "ship.sh"

OLD_CARD = {
    "name": "fer_old",
    "metrics": {"public": {"accuracy": 0.647}},
    "export": {"shipped": "float32", "variants": {"float32": {"public_accuracy": 0.647}}},
}

# Runs every python command the script makes with the real interpreter, except the export,
# which writes a card whose shipped variant scores $FAKE_SHIPPED_PUBLIC and a new .tflite.
STAND_IN = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "training.export" ]; then
    echo "export $*" >> export_calls.txt
    echo new > models/fer_new.tflite
    exec {python} -c "
import json, os
flip = os.environ.get('FAKE_FLIP_PUBLIC')
c = {{'name': 'fer_new', 'metrics': {{'public': {{'accuracy': 0.66}}}},
      'export': {{'shipped': os.environ['SHIP'] if os.environ.get('SHIP', 'auto') != 'auto' else 'int8',
                 'variants': {{'int8': {{'public_accuracy': float(os.environ['FAKE_SHIPPED_PUBLIC']),
                                       'public_accuracy_flip': float(flip or 0)}},
                              'float32': {{'public_accuracy': 0.66, 'public_accuracy_flip': 0.66}}}}}},
      'predictor': {{'flip_average': bool(flip)}}}}
json.dump(c, open('models/card.json', 'w'))"
fi
if [ "$1" = "-m" ]; then
    echo "ship.sh stand-in: stop after export ($2)" >&2
    exit 3
fi
exec {python} "$@"
"""


def _setup(tmp_path: Path, best_public: float, old_card: dict | None = None) -> dict[str, str]:  # type: ignore[type-arg]
    models = tmp_path / "models"
    models.mkdir()
    (models / "card.json").write_text(json.dumps(old_card or OLD_CARD))
    (models / "fer_old.tflite").write_text("old")
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.csv").write_text(f"epoch,val_accuracy\n0,0.5\n1,{best_public}\n")
    py = tmp_path / "py"
    py.write_text(STAND_IN.format(python=sys.executable))
    py.chmod(0o755)
    # ship.sh runs from the checkout, where training/ is importable; here it runs in tmp_path.
    return {**os.environ, "PYTHON": str(py), "PYTHONPATH": str(ROOT)}


def _ship(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SHIP), "run", "fer_new", "fer2013.npz"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def _models(tmp_path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((tmp_path / "models").iterdir())}


def test_a_run_that_does_not_beat_the_shipped_model_is_refused_before_export(tmp_path: Path) -> None:
    env = _setup(tmp_path, best_public=0.647)
    before = _models(tmp_path)
    r = _ship(tmp_path, env)
    assert r.returncode == 1
    assert "does not beat the shipped fer_old's trained network (0.647)" in r.stderr
    assert not (tmp_path / "export_calls.txt").exists()
    assert _models(tmp_path) == before


def test_a_shipped_variant_below_the_old_model_restores_models(tmp_path: Path) -> None:
    # The float network beats the old model, but the int8 file that would run does not.
    env = {**_setup(tmp_path, best_public=0.6484), "FAKE_SHIPPED_PUBLIC": "0.6461"}
    before = _models(tmp_path)
    r = _ship(tmp_path, env)
    assert r.returncode == 1, r.stderr
    assert ("the int8 .tflite (as the service runs it) scores 0.6461 on PublicTest, not above the shipped "
            "fer_old (0.647)") in r.stderr
    assert "--ship auto" in (tmp_path / "export_calls.txt").read_text()
    assert _models(tmp_path) == before  # fer_new.tflite gone, the old card back


def test_ship_variant_is_passed_on_and_a_later_failure_restores_models(tmp_path: Path) -> None:
    env = {**_setup(tmp_path, best_public=0.6484), "FAKE_SHIPPED_PUBLIC": "0.6484", "SHIP": "float32"}
    before = _models(tmp_path)
    r = _ship(tmp_path, env)
    assert "--ship float32" in (tmp_path / "export_calls.txt").read_text()
    # The variant check passed (0.66 float32 > 0.647); the stand-in then fails the crop study.
    assert r.returncode == 3, r.stderr
    assert "a step failed" in r.stderr and "models/ restored to fer_old" in r.stderr
    assert _models(tmp_path) == before


def test_prior_runs_reach_the_export_so_a_fine_tune_keeps_the_whole_curve(tmp_path: Path) -> None:
    env = {**_setup(tmp_path, best_public=0.6484), "FAKE_SHIPPED_PUBLIC": "0.6484",
           "PRIOR_RUNS": "/runs/schedule1 /runs/schedule1b"}
    _ship(tmp_path, env)
    call = (tmp_path / "export_calls.txt").read_text()
    assert "--prior-run /runs/schedule1 --prior-run /runs/schedule1b" in call
    env.pop("PRIOR_RUNS")
    (tmp_path / "export_calls.txt").unlink()
    _ship(tmp_path, env)
    assert "--prior-run" not in (tmp_path / "export_calls.txt").read_text()


def test_members_reach_the_export_and_only_what_runs_is_compared(tmp_path: Path) -> None:
    # The first network is no better than the shipped one (0.647 = 0.647): alone it would be refused
    # before the export; with a member the ensemble may still win, so the export decides.
    env = {**_setup(tmp_path, best_public=0.647), "FAKE_SHIPPED_PUBLIC": "0.6484", "MEMBERS": "/runs/seed2"}
    r = _ship(tmp_path, env)
    assert "--member /runs/seed2" in (tmp_path / "export_calls.txt").read_text()
    assert "does not beat" not in r.stderr and r.returncode == 3, r.stderr  # past both gates


# The old model's int8 file scored above its float network (quantisation noise): 0.640 vs 0.647.
OLD_INT8_CARD = {
    "name": "fer_old",
    "metrics": {"public": {"accuracy": 0.640}},
    "export": {"shipped": "int8", "variants": {"int8": {"public_accuracy": 0.647}}},
}


def test_the_first_gate_compares_trained_networks_and_the_second_what_runs(tmp_path: Path) -> None:
    # 0.645 beats the old trained network (0.640), though not the old int8 file (0.647): exported.
    # The new int8 file alone (0.6461) would not beat what runs; flip-averaged (0.655) it does.
    env = {**_setup(tmp_path, best_public=0.645, old_card=OLD_INT8_CARD),
           "FAKE_SHIPPED_PUBLIC": "0.6461", "FAKE_FLIP_PUBLIC": "0.655"}
    before = _models(tmp_path)
    r = _ship(tmp_path, env)
    assert (tmp_path / "export_calls.txt").exists()
    assert r.returncode == 3, r.stderr  # past both gates; the stand-in then fails the crop study
    assert "not above the shipped" not in r.stderr
    assert _models(tmp_path) == before


def test_a_flip_averaged_predictor_below_what_runs_is_refused(tmp_path: Path) -> None:
    env = {**_setup(tmp_path, best_public=0.645, old_card=OLD_INT8_CARD),
           "FAKE_SHIPPED_PUBLIC": "0.6461", "FAKE_FLIP_PUBLIC": "0.6465"}
    before = _models(tmp_path)
    r = _ship(tmp_path, env)
    assert r.returncode == 1, r.stderr
    assert "scores 0.6465 on PublicTest, not above the shipped fer_old (0.647)" in r.stderr
    assert _models(tmp_path) == before


def test_a_run_below_the_old_trained_network_is_refused_before_export(tmp_path: Path) -> None:
    env = _setup(tmp_path, best_public=0.639, old_card=OLD_INT8_CARD)
    r = _ship(tmp_path, env)
    assert r.returncode == 1
    assert "does not beat the shipped fer_old's trained network (0.64)" in r.stderr
    assert not (tmp_path / "export_calls.txt").exists()
