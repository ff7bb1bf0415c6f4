"""The data the service needs at run time is inside the package, so a wheel carries it.

The full check (build the wheel, install it into a fresh venv, run the demo) is
packaging/check_wheel.sh, which ``make test`` runs; these are the quick halves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from fer_audio import resources
from fer_audio.config import Config

ROOT = Path(__file__).resolve().parent.parent


def _shipped() -> set[Path]:
    """Files the wheel's package-data patterns select, as the build would see them."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["fer_audio"]
    pkg = ROOT / "fer_audio"
    return {p for pat in patterns for p in pkg.glob(pat) if p.is_file()}


def test_data_is_found_inside_the_package() -> None:
    assert resources.PACKAGE_ROOT == ROOT / "fer_audio"
    assert resources.MODELS_DIR == resources.PACKAGE_ROOT / "models"
    # In a checkout they are the top-level folders, where training writes.
    assert resources.MODELS_DIR.resolve() == ROOT / "models"
    assert resources.SOUNDS_DIR.resolve() == ROOT / "sounds"


def test_everything_the_default_config_opens_is_shipped() -> None:
    cfg = Config()
    card = json.loads(cfg.model.card.read_text())
    needed = {cfg.detector.model, cfg.model.card, cfg.model.card.parent / card["files"]["tflite"]["path"],
              resources.DEMO_CLIP, resources.DEMO_TIMELINE}
    needed |= {c.earcon for c in cfg.cues.values() if c.earcon is not None}
    needed |= set(resources.SOUNDS_DIR.glob("*.wav"))  # system sounds (startup, warning, ...) too
    missing = sorted(str(p) for p in needed if p not in _shipped())
    assert not missing, missing


def test_training_leftovers_stay_out_of_the_wheel() -> None:
    names = {p.name for p in _shipped()}
    card = json.loads(Config().model.card.read_text())
    assert card["files"]["tflite"]["path"] in names
    assert not {n for n in names if n.endswith((".keras", ".png", ".csv", ".py"))}


def test_fer_audio_data_overrides(tmp_path: Path) -> None:
    env = {**os.environ, "FER_AUDIO_DATA": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", "import fer_audio.resources as r; print(r.DEFAULT_YUNET); print(r.SOUNDS_DIR)"],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(tmp_path / "models" / "face_detection_yunet_2026may.onnx"), str(tmp_path / "sounds")]
