"""Where the bundled data lives: ``models/``, ``sounds/`` and ``data/`` inside the package.

In a checkout ``fer_audio/models`` and ``fer_audio/sounds`` are symlinks to the
top-level folders (training writes there); a wheel carries the files
themselves. Either way they are found through :mod:`importlib.resources`, so
``pip install fer-audio`` works from any folder. ``FER_AUDIO_DATA`` points
elsewhere (a distribution package that puts data in /usr/share, say).
Nothing here touches the disk at import time.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def _package_root() -> Path:
    """The package's folder on disk: OpenCV and LiteRT open models by file name, so a zip import cannot work."""
    root = files("fer_audio")
    if not isinstance(root, Path):
        raise RuntimeError(f"fer_audio is installed as {root!r}; it needs a plain folder on disk (no zip import)")
    return root


PACKAGE_ROOT = _package_root()
DATA_ROOT = Path(os.environ.get("FER_AUDIO_DATA") or PACKAGE_ROOT)
MODELS_DIR = DATA_ROOT / "models"
SOUNDS_DIR = DATA_ROOT / "sounds"
DEFAULT_CARD = MODELS_DIR / "card.json"
DEFAULT_YUNET = MODELS_DIR / "face_detection_yunet_2026may.onnx"
DEMO_CLIP = PACKAGE_ROOT / "data" / "demo.mp4"
DEMO_TIMELINE = DEMO_CLIP.with_suffix(".json")

# FER-2013 order. The model card is the authority at run time; this copy
# names the config's cue keys, and tests check the card agrees.
LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
