"""Expression model: the card says what the weights mean; a backend runs them.

Label order, crop margin and temperature come from ``card.json`` beside the
weights, never from code, so a retrained model ships as files alone. The
default backend is LiteRT on the ``.tflite`` (small install, fast start);
the ``keras`` backend loads the ``.keras`` source when TensorFlow is present
and must agree with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fer_audio.config import ModelConfig
from fer_audio.errors import FerAudioError
from fer_audio.preprocess import faces_to_batch
from fer_audio.types import Box

log = logging.getLogger(__name__)


class ModelError(FerAudioError):
    """A model or card problem, as one line naming the file."""


@dataclass(frozen=True)
class ModelCard:
    path: Path
    labels: tuple[str, ...]
    files: dict[str, dict[str, Any]]
    temperature: float = 1.0
    crop_margin: float = 0.1
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    # Per-label enter thresholds chosen for this model (training.thresholds); empty: none.
    enter_thresholds: dict[str, float] = field(default_factory=dict)
    # Average each face's logits with its mirror image's (``predictor.flip_average``): the
    # export turns it on only when it wins on PublicTest; it doubles the model's work.
    flip_average: bool = False

    def file(self, kind: str) -> Path:
        entry = self.files.get(kind)
        if not entry or "path" not in entry:
            raise ModelError(f"{self.path}: files.{kind}.path missing")
        return (self.path.parent / str(entry["path"])).resolve()

    def sha256(self, kind: str) -> str | None:
        entry = self.files.get(kind) or {}
        v = entry.get("sha256")
        return str(v) if v else None


def load_card(path: str | Path) -> ModelCard:
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{p}: model card not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{p}: unreadable model card: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{p}: model card must be a JSON object")
    labels = raw.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelError(f"{p}: 'labels' must be a non-empty list of strings")
    files = raw.get("files")
    if not isinstance(files, dict):
        raise ModelError(f"{p}: 'files' must map kind (tflite, keras) to {{path, sha256}}")
    try:
        temperature = float(raw.get("temperature", 1.0))
        margin = float(raw.get("crop_margin", 0.1))
    except (TypeError, ValueError):
        raise ModelError(f"{p}: temperature and crop_margin must be numbers") from None
    if not 0.05 <= temperature <= 20:
        raise ModelError(f"{p}: temperature {temperature} outside 0.05..20")
    if not -0.3 <= margin <= 1:
        raise ModelError(f"{p}: crop_margin {margin} outside -0.3..1")
    predictor = raw.get("predictor", {})
    flip = predictor.get("flip_average", False) if isinstance(predictor, dict) else None
    if not isinstance(flip, bool):
        raise ModelError(f"{p}: predictor.flip_average must be true or false")
    return ModelCard(p, tuple(labels), files, temperature, margin, raw, _card_thresholds(p, raw, labels), flip)


def _card_thresholds(p: Path, raw: dict[str, Any], labels: list[str]) -> dict[str, float]:
    """``thresholds.enter`` of the card: label -> probability in (0, 1); absent is fine."""
    section = raw.get("thresholds")
    if section is None:
        return {}
    enter = section.get("enter") if isinstance(section, dict) else None
    if not isinstance(enter, dict):
        raise ModelError(f"{p}: 'thresholds.enter' must map expression labels to probabilities")
    out: dict[str, float] = {}
    for label, value in enter.items():
        if label not in labels:
            raise ModelError(f"{p}: thresholds.enter.{label}: not one of the card's labels")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ModelError(f"{p}: thresholds.enter.{label}: {value!r} is not a probability in (0, 1)")
        out[label] = float(value)
    return out


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Backend(Protocol):
    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 48, 48, 1) float32 raw pixels → (N, n_labels) logits."""
        ...


class LiteRTBackend:
    """The ``.tflite`` through ai-edge-litert; resizes the input only when N changes."""

    def __init__(self, path: Path, threads: int = 2) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - depends on the install
            raise ModelError("ai-edge-litert is not installed (pip install ai-edge-litert)") from None
        try:
            self._it = Interpreter(model_path=str(path), num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: not a loadable .tflite model: {exc}") from None
        self._in = self._it.get_input_details()[0]["index"]
        self._out = self._it.get_output_details()[0]["index"]
        self._n = -1

    def logits(self, batch: np.ndarray) -> np.ndarray:
        n = int(batch.shape[0])
        if n != self._n:
            self._it.resize_tensor_input(self._in, list(batch.shape))
            self._it.allocate_tensors()
            self._n = n
        self._it.set_tensor(self._in, np.ascontiguousarray(batch, dtype=np.float32))
        self._it.invoke()
        return np.array(self._it.get_tensor(self._out), dtype=np.float32)


class KerasBackend:
    """The ``.keras`` source model; needs TensorFlow (or another Keras backend) installed."""

    def __init__(self, path: Path) -> None:
        try:
            import keras
        except ImportError:
            raise ModelError("the keras backend needs TensorFlow/Keras (pip install 'fer-audio[train]')") from None
        try:
            self._model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # keras raises many types for a bad file
            raise ModelError(f"{path}: not a loadable .keras model: {exc}") from None

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._model(batch, training=False), dtype=np.float32)


def flip_averaged(logits: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
    """Mean logits of each face and its mirror image, run as one batch of 2N.

    Expressions are near-symmetric and the network was trained with flips, so the
    mirror is a second, slightly different look at the same face.
    """
    n = int(batch.shape[0])
    both = logits(np.concatenate([batch, batch[:, :, ::-1]]))
    out: np.ndarray = (both[:n] + both[n:]) / 2
    return out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


class EmotionModel:
    """Crops faces, runs them in one batch, returns calibrated probabilities."""

    def __init__(self, card: ModelCard, backend: Backend) -> None:
        self.card = card
        self.backend = backend

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """(N, 48, 48, 1) raw pixels → (N, n_labels) temperature-scaled probabilities."""
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if self.card.flip_average:
            return softmax(flip_averaged(self.backend.logits, batch), self.card.temperature)
        return softmax(self.backend.logits(batch), self.card.temperature)

    def predict(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """Probabilities for every face of one frame, in one batch."""
        return self.predict_batch(faces_to_batch(image, boxes, self.card.crop_margin))


def load_model(cfg: ModelConfig) -> EmotionModel:
    """Load the card and the backend it asks for; checks the file's sha256 first."""
    card = load_card(cfg.card)
    if card.flip_average and not cfg.flip_average:  # the user keeps the CPU: one look per face
        card = replace(card, flip_average=False)
    kind = "tflite" if cfg.backend == "litert" else "keras"
    path = card.file(kind)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found (named by {card.path})")
    expected = card.sha256(kind)
    if cfg.verify_sha256 and expected:
        actual = sha256_of(path)
        if actual != expected:
            raise ModelError(
                f"{path}: sha256 {actual[:12]}… does not match the card's {expected[:12]}… "
                "(file changed or corrupt)"
            )
    backend: Backend = LiteRTBackend(path, cfg.threads) if kind == "tflite" else KerasBackend(path)
    log.info("model %s (%s backend, %d labels%s)", path.name, cfg.backend, len(card.labels),
             ", flip-averaged" if card.flip_average else "")
    return EmotionModel(card, backend)
