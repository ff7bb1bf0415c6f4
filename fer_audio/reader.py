"""Faces and their expression probabilities, frame by frame, with no smoothing and no audio.

:class:`FaceReader` is the detector, the tracker and the model one frame goes
through; the service's frame loop (fer_audio.pipeline) uses it, and so can a
program that wants the expressions without the earcons::

    import fer_audio
    for frame in fer_audio.read_faces("meeting.mp4"):
        for face in frame.faces:
            print(frame.t, face.track, face.label, round(face.confidence, 2))
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_audio.config import AttentionConfig, Config
from fer_audio.headpose import head_of
from fer_audio.types import Box, Frame, FrameSource, Head

if TYPE_CHECKING:
    from fer_audio.pipeline import Detector, ExpressionModel, FaceTracker


@dataclass(frozen=True, eq=False)
class Face:
    """One person in one frame: where (box, and ``x`` in -1..1 left to right), who, and how they look.

    ``track`` stays the same for a person from frame to frame; ``probs`` is in
    ``labels`` order and sums to 1; ``head`` is the pose from the detector's
    landmarks (yaw, facing you), None when the detector gives none.
    """

    track: int
    box: Box
    x: float
    size: float
    probs: np.ndarray
    labels: tuple[str, ...]
    head: Head | None = None

    @property
    def label(self) -> str:
        """The most likely expression in this frame alone (the service smooths over frames first)."""
        return self.labels[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))


@dataclass(frozen=True, eq=False)
class FaceFrame:
    """The faces seen in one frame; ``t`` is seconds on the source's clock."""

    t: float
    faces: list[Face]


class FaceReader:
    """Detector, tracker and model for one frame at a time; the tracker keeps who is who between frames."""

    def __init__(self, detector: Detector, tracker: FaceTracker, model: ExpressionModel,
                 facing_ratio: float = AttentionConfig().facing_ratio) -> None:
        self.detector = detector
        self.tracker = tracker
        self.model = model
        self.facing_ratio = facing_ratio

    @classmethod
    def from_config(cls, cfg: Config | None = None) -> FaceReader:
        """The shipped detector and model (or the ones ``cfg`` names); raises their one-line errors."""
        from fer_audio.detection import make_detector
        from fer_audio.emotion import load_model
        from fer_audio.tracking import Tracker

        cfg = cfg or Config()
        return cls(make_detector(cfg.detector), Tracker(cfg.tracker), load_model(cfg.model),
                   cfg.attention.facing_ratio)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.model.labels)

    def read(self, image: np.ndarray) -> list[Face]:
        """The faces in one BGR frame that the detector found in it (tracks it missed are left out)."""
        h, w = image.shape[:2]
        tracks = self.tracker.update(self.detector.detect(image), w, h)
        seen = [tr for tr in tracks if tr.missed == 0]
        probs = self.model.predict(image, [tr.box for tr in seen])
        labels = self.labels
        return [Face(tr.id, tr.box, tr.x, tr.size, p, labels, head_of(tr.box, self.facing_ratio))
                for tr, p in zip(seen, probs, strict=True)]

    def reset(self) -> None:
        """Forget who was who (after a pause, say): the next faces get new track numbers."""
        self.tracker.reset()


def read_faces(source: str | Path | int | FrameSource, cfg: Config | None = None, *,
               max_seconds: float | None = None) -> Iterator[FaceFrame]:
    """Every analysed frame of a video file, image folder, camera index or stream URL, with its faces.

    ``cfg`` sets the detector, model and the source's frame rate (defaults:
    the shipped ones, ``source.max_fps`` frames a second). A file ends at its
    end; a camera runs until the caller stops iterating (it is reopened with
    backoff when lost, as in the service). Raises the source's, detector's or
    model's one-line error (all FerAudioError) when one cannot be used.
    """
    from fer_audio.sources import open_source

    cfg = cfg or Config()
    if isinstance(source, str | Path | int):
        src: FrameSource = open_source(cfg.source.model_copy(update={"uri": str(source)}))
    else:
        src = source
    try:
        reader = FaceReader.from_config(cfg)
        while True:
            item = src.read(timeout=0.1)
            if item is None:
                continue
            if isinstance(item, Frame):
                if max_seconds is not None and item.t > max_seconds:
                    return
                yield FaceFrame(item.t, reader.read(item.image))
            elif item.kind == "end":
                return
    finally:
        src.close()

