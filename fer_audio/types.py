"""Plain value types passed between pipeline stages.

Each stage takes and returns these (or numpy arrays), never another stage's
internals, so stages can be tested and replaced one at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

EventKind = Literal["expression", "face_appeared", "face_lost", "facing", "looked_away", "nod", "shake"]
SourceEventKind = Literal["opened", "end", "lost", "restored", "error"]


Point = tuple[float, float]


@dataclass(frozen=True)
class Landmarks:
    """YuNet's five face points in original frame pixels.

    "Right" and "left" are the person's own: facing the camera, their right
    eye is on the image's left.
    """

    right_eye: Point
    left_eye: Point
    nose: Point
    mouth_right: Point
    mouth_left: Point

    @property
    def roll_deg(self) -> float:
        """Angle of the line between the eyes, degrees; positive when the image-right eye is lower."""
        (rx, ry), (lx, ly) = self.right_eye, self.left_eye
        return math.degrees(math.atan2(ly - ry, lx - rx))


@dataclass(frozen=True)
class Box:
    """A face box in original frame pixels; ``score`` is the detector's confidence.

    ``landmarks`` come from detectors that find them (YuNet), else None.
    """

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0
    landmarks: Landmarks | None = None

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def area(self) -> float:
        return max(self.w, 0.0) * max(self.h, 0.0)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Head:
    """One frame's head pose of one face, from its landmarks (see fer_audio.headpose).

    ``yaw_ratio`` is the nose's offset from the eyes' midpoint over the eye distance,
    positive when the face points toward the image's left; ``yaw_deg`` an angle made from
    it (saturates past ~60 deg); ``facing`` this frame's answer, before any dwell.
    ``pitch_ratio`` is where the nose sits between the eye line (0) and the mouth line (1),
    which moves when the head pitches and not when the camera does. ``nose`` (frame
    pixels), ``width`` (the box's) and ``pitch_ratio`` feed the nod/shake detector.
    """

    yaw_ratio: float
    yaw_deg: float
    facing: bool
    nose: Point
    width: float
    pitch_ratio: float


@dataclass(frozen=True)
class Track:
    """A person followed across frames.

    ``x`` is the horizontal centre in [-1, 1] (left edge -1), for panning;
    ``size`` is box height over frame height, for choosing the main face;
    ``missed`` counts frames since the last detection (0: seen this frame);
    ``head`` is this frame's pose, None without landmarks or when unseen this frame.
    """

    id: int
    box: Box
    x: float
    size: float
    missed: int = 0
    head: Head | None = None


@dataclass(frozen=True)
class Observation:
    """One track's model output at one frame: the smoother's input."""

    track: int
    probs: np.ndarray  # float, shape (n_labels,), in the model card's label order
    x: float
    size: float
    head: Head | None = None


@dataclass(frozen=True)
class Event:
    """Something the user may want to hear about: the smoother's output.

    ``t`` is seconds on the source's clock (from its start for files).
    ``label`` is an expression label for 'expression' events, else None.
    ``yaw`` (degrees, latest frame) and ``facing`` (the person's settled attention state)
    are None when the detector gives no landmarks or nothing is settled yet.
    """

    t: float
    track: int
    kind: EventKind
    label: str | None
    confidence: float
    x: float
    size: float
    yaw: float | None = None
    facing: bool | None = None

    @property
    def what(self) -> str:
        """The event in words, as logs and the timeline say it: 'happy', 'face appeared'."""
        if self.kind == "expression" and self.label is not None:
            return self.label
        return self.kind.replace("_", " ")

    def to_json(self) -> dict[str, object]:
        return {
            "t": round(self.t, 3), "track": self.track, "kind": self.kind, "label": self.label,
            "confidence": round(self.confidence, 4), "x": round(self.x, 4), "size": round(self.size, 4),
            "yaw": None if self.yaw is None else round(self.yaw, 1), "facing": self.facing,
        }


# -- what a source delivers (fer_audio.sources) ------------------------------------

@dataclass(frozen=True, eq=False)
class Frame:
    """One picture. ``t`` is seconds on the source clock (file time for files, since open for live)."""

    t: float
    index: int
    image: np.ndarray  # BGR uint8, shape (h, w, 3)


@dataclass(frozen=True)
class SourceEvent:
    """Something about the source itself that the caller (and maybe the user) should know."""

    kind: SourceEventKind
    t: float
    message: str


class FrameSource(Protocol):
    """A camera, file, folder or stream (fer_audio.sources): frames and source events, one at a time."""

    @property
    def is_live(self) -> bool: ...

    def read(self, timeout: float) -> Frame | SourceEvent | None:
        """Next frame or event; None when nothing new arrived within ``timeout`` seconds."""
        ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


# -- what the player reports (fer_audio.audio) -------------------------------------

@dataclass(frozen=True)
class AudioStatus:
    """For the status command: where cues go and what went wrong."""

    output: str
    device_ok: bool
    speech: bool
    played: int
    silenced: int
    underflows: int
    problem: str | None
    speech_engine: str = ""  # "speech-dispatcher", "espeak-ng" or "off"
