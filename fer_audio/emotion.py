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
from collections.abc import Callable, Sequence
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
    # More networks whose logits are averaged with the first's (``predictor.members``, each
    # a ``files`` map of its own): an ensemble, again only where it wins on PublicTest.
    members: tuple[dict[str, dict[str, Any]], ...] = ()
    # With members and flip_average: each network sees one view, the face and the mirror in
    # turn (``predictor.split_views``), so two networks cost what one flip-averaged does.
    split_views: bool = False

    def file(self, kind: str, member: int = 0) -> Path:
        """Network ``member``'s file (0: the card's own ``files``; k: ``predictor.members[k-1]``)."""
        files, where = self._files(member)
        entry = files.get(kind)
        if not entry or "path" not in entry:
            raise ModelError(f"{self.path}: {where}.{kind}.path missing")
        return (self.path.parent / str(entry["path"])).resolve()

    def sha256(self, kind: str, member: int = 0) -> str | None:
        entry = self._files(member)[0].get(kind) or {}
        v = entry.get("sha256")
        return str(v) if v else None

    def _files(self, member: int) -> tuple[dict[str, dict[str, Any]], str]:
        if member == 0:
            return self.files, "files"
        return self.members[member - 1], f"predictor.members[{member - 1}].files"

    @property
    def networks(self) -> int:
        return 1 + len(self.members)

    @property
    def passes(self) -> int:
        """Network runs per face: what the predictor costs against one network's one look."""
        if self.flip_average and not (self.split_views and self.members):
            return 2 * self.networks
        return self.networks


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
    if not isinstance(predictor, dict):
        raise ModelError(f"{p}: 'predictor' must be an object")
    flip, split = predictor.get("flip_average", False), predictor.get("split_views", False)
    for key, value in (("flip_average", flip), ("split_views", split)):
        if not isinstance(value, bool):
            raise ModelError(f"{p}: predictor.{key} must be true or false")
    members = _card_members(p, predictor.get("members", []))
    if split and not (members and flip):
        raise ModelError(f"{p}: predictor.split_views needs predictor.members and flip_average "
                         "(two networks to share the face and its mirror image)")
    return ModelCard(p, tuple(labels), files, temperature, margin, raw, _card_thresholds(p, raw, labels), flip,
                     members, split)


def _card_members(p: Path, members: Any) -> tuple[dict[str, dict[str, Any]], ...]:
    """``predictor.members``: a list of ``{"files": {kind: {path, sha256}}}``, one per extra network."""
    if not isinstance(members, list):
        raise ModelError(f"{p}: predictor.members must be a list of networks")
    out = []
    for i, m in enumerate(members):
        files = m.get("files") if isinstance(m, dict) else None
        if not isinstance(files, dict) or not files or not all(isinstance(v, dict) for v in files.values()):
            raise ModelError(f"{p}: predictor.members[{i}].files must map kind (tflite, keras) to {{path, sha256}}")
        out.append(files)
    return tuple(out)


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


def predictor_logits(networks: Sequence[Callable[[np.ndarray], np.ndarray]], batch: np.ndarray,
                     flip: bool = False, split: bool = False) -> np.ndarray:
    """Mean logits of every network's look at the faces: the card's predictor.

    Every network sees the faces; with ``flip`` each sees the faces and their
    mirror images; with ``split`` too (and two or more networks) network k sees
    the mirror images when k is odd and the faces otherwise: two views and two
    networks for the work of one flip-averaged network.
    """
    if flip and split and len(networks) > 1:
        mirror = batch[:, :, ::-1]
        looks = [net(mirror if k % 2 else batch) for k, net in enumerate(networks)]
    elif flip:
        looks = [flip_averaged(net, batch) for net in networks]
    else:
        looks = [net(batch) for net in networks]
    out: np.ndarray = np.mean(looks, axis=0) if len(looks) > 1 else looks[0]
    return out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


class EmotionModel:
    """Crops faces, runs them in one batch, returns calibrated probabilities."""

    def __init__(self, card: ModelCard, backend: Backend, members: Sequence[Backend] = ()) -> None:
        if len(members) != len(card.members):
            raise ModelError(f"{card.path}: the card names {len(card.members)} member networks, "
                             f"{len(members)} were loaded")
        self.card = card
        self.backend = backend
        self.members = tuple(members)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """(N, 48, 48, 1) raw pixels → (N, n_labels) temperature-scaled probabilities."""
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        networks = [self.backend.logits, *(m.logits for m in self.members)]
        logits = predictor_logits(networks, batch, self.card.flip_average, self.card.split_views)
        return softmax(logits, self.card.temperature)

    def predict(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """Probabilities for every face of one frame, in one batch."""
        return self.predict_batch(faces_to_batch(image, boxes, self.card.crop_margin))


def load_model(cfg: ModelConfig) -> EmotionModel:
    """Load the card and the backend it asks for; checks the file's sha256 first."""
    card = load_card(cfg.card)
    if card.flip_average and not cfg.flip_average:  # the user keeps the CPU: no mirror image
        card = replace(card, flip_average=False, split_views=False)
    if card.members and not cfg.ensemble:  # the user keeps the CPU: the first network alone
        card = replace(card, members=(), split_views=False)
    kind = "tflite" if cfg.backend == "litert" else "keras"
    backends = [_load_backend(card, kind, k, cfg) for k in range(card.networks)]
    log.info("model %s (%s backend, %d labels, %s)", card.file(kind).name, cfg.backend, len(card.labels),
             describe(card))
    return EmotionModel(card, backends[0], backends[1:])


def _load_backend(card: ModelCard, kind: str, member: int, cfg: ModelConfig) -> Backend:
    """One network's backend, after checking its file against the card's sha256."""
    path = card.file(kind, member)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found (named by {card.path})")
    expected = card.sha256(kind, member)
    if cfg.verify_sha256 and expected:
        actual = sha256_of(path)
        if actual != expected:
            raise ModelError(
                f"{path}: sha256 {actual[:12]}… does not match the card's {expected[:12]}… "
                "(file changed or corrupt)"
            )
    return LiteRTBackend(path, cfg.threads) if kind == "tflite" else KerasBackend(path)


def describe(card: ModelCard) -> str:
    """The predictor in words, for logs and pages: "single network", "2 networks, flip-averaged", ..."""
    what = "single network" if not card.members else f"{card.networks} networks averaged"
    if card.flip_average:
        what += ", face and mirror image shared between them" if card.split_views else ", flip-averaged"
    return what
