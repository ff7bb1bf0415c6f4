"""``fer-audio analyze PHOTO...``: what the pipeline sees in still pictures.

For people ("what does it see in this picture?"), for bug reports and for tests: the same
detector, model and head pose as a live run, one picture at a time, with no smoothing (a
photo has no time). It reads the photos and the model and writes nothing else: no events,
no audio, no socket.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from fer_audio.config import Config
from fer_audio.headpose import head_of
from fer_audio.types import Box


class PhotoError(ValueError):
    """A picture that cannot be read; one line naming the file."""


@dataclass(frozen=True)
class FaceReport:
    """One face in one picture."""

    image: str
    box: Box
    expression: str
    probabilities: dict[str, float]
    yaw: float | None
    facing: bool | None

    def to_json(self) -> dict[str, Any]:
        b = self.box
        return {
            "image": self.image,
            "box": [round(b.x, 1), round(b.y, 1), round(b.w, 1), round(b.h, 1)],
            "expression": self.expression,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "yaw": None if self.yaw is None else round(self.yaw, 1),
            "facing": self.facing,
        }


def read_photo(path: Path) -> np.ndarray:
    """The picture as BGR uint8; PhotoError when it is missing or not a picture."""
    import cv2

    if not path.is_file():
        raise PhotoError(f"{path}: {'is a folder, not' if path.is_dir() else 'no such'} file")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise PhotoError(f"{path}: cannot read: {exc.strerror or exc}") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise PhotoError(f"{path}: not a picture OpenCV can read (JPEG, PNG, BMP, TIFF, WebP)")
    return np.asarray(image)


class Analyzer:
    """Detector + model + head pose on single pictures; built once for many photos."""

    def __init__(self, cfg: Config, detector: Any = None, model: Any = None) -> None:
        from fer_audio.detection import make_detector
        from fer_audio.emotion import load_model

        self._ratio = cfg.attention.facing_ratio
        self._detector = detector if detector is not None else make_detector(cfg.detector)
        self._model = model if model is not None else load_model(cfg.model)

    def faces(self, image: np.ndarray, name: str) -> list[FaceReport]:
        """Every face found, largest first (the detector's order)."""
        boxes: list[Box] = self._detector.detect(image)
        if not boxes:
            return []
        probs = self._model.predict(image, boxes)
        labels: tuple[str, ...] = tuple(self._model.labels)
        out = []
        for box, p in zip(boxes, probs, strict=True):
            head = head_of(box, self._ratio)
            out.append(FaceReport(
                image=name, box=box, expression=labels[int(np.argmax(p))],
                probabilities={lb: float(v) for lb, v in zip(labels, p, strict=True)},
                yaw=None if head is None else head.yaw_deg,
                facing=None if head is None else head.facing,
            ))
        return out


def _where(box: Box, width: int) -> str:
    x = 2.0 * box.cx / width - 1.0 if width > 0 else 0.0
    return "left" if x < -0.33 else "right" if x > 0.33 else "centre"


def summary(name: str, faces: Sequence[FaceReport], width: int) -> str:
    """One plain line per picture, for a screen reader."""
    if not faces:
        return f"{name}: no faces found"
    parts = []
    for f in faces:
        conf = f.probabilities[f.expression]
        if f.facing is None:
            att = "pose unknown"
        elif f.facing:
            att = "facing you"
        else:
            att = f"turned away (yaw {f.yaw:+.0f} degrees)" if f.yaw is not None else "turned away"
        parts.append(f"{_where(f.box, width)}, {f.expression} ({conf:.2f}), {att}")
    count = "1 face" if len(faces) == 1 else f"{len(faces)} faces"
    return f"{name}: {count}: " + "; ".join(parts)


def analyze(cfg: Config, photos: Sequence[Path], as_json: bool, out: IO[str] = sys.stdout,
            err: IO[str] = sys.stderr, analyzer: Analyzer | None = None) -> int:
    """Print what each photo shows. 0: all read; 2: at least one could not be read (named on err)."""
    an = analyzer if analyzer is not None else Analyzer(cfg)
    status = 0
    for path in photos:
        try:
            image = read_photo(path)
        except PhotoError as exc:
            print(f"fer-audio analyze: {exc}", file=err)
            status = 2
            continue
        faces = an.faces(image, str(path))
        if as_json:
            for f in faces:
                print(json.dumps(f.to_json()), file=out)
        else:
            print(summary(str(path), faces, image.shape[1]), file=out)
        out.flush()
    return status
