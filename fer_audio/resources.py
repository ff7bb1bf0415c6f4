"""Where the bundled data lives: models/ and sounds/ beside the package.

``FER_AUDIO_DATA`` points elsewhere (a packaged install that puts data in
/usr/share, say). Nothing here touches the disk at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT = Path(os.environ.get("FER_AUDIO_DATA") or Path(__file__).resolve().parent.parent)
MODELS_DIR = DATA_ROOT / "models"
SOUNDS_DIR = DATA_ROOT / "sounds"
DEFAULT_CARD = MODELS_DIR / "card.json"
DEFAULT_YUNET = MODELS_DIR / "face_detection_yunet_2026may.onnx"
DEMO_CLIP = Path(__file__).resolve().parent / "data" / "demo.mp4"
DEMO_TIMELINE = DEMO_CLIP.with_suffix(".json")

# FER-2013 order. The model card is the authority at run time; this copy
# names the config's cue keys, and tests check the card agrees.
LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
