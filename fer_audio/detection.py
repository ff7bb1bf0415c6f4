"""Face detection with OpenCV: YuNet (default) or the Haar cascade (fallback).

Both run on a copy of the frame downscaled to ``detect_width``: YuNet is trained for faces of
roughly 10 to 300 pixels, and a smaller picture is what keeps detection cheap on a laptop CPU.
Boxes come back in the original frame's pixels, clipped to it, largest first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from fer_audio.config import DetectorConfig
from fer_audio.errors import FerAudioError
from fer_audio.types import Box, Landmarks

log = logging.getLogger(__name__)

HAAR_FILE = "haarcascade_frontalface_default.xml"


class DetectorError(FerAudioError):
    """A detector that cannot be built, phrased as one line naming the file and the problem."""


class FaceDetector(Protocol):
    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        """Faces in original pixels, largest first, at most max_faces, none under min_face_px."""
        ...


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Gray, gray with one channel, BGR or BGRA as uint8 BGR; the detectors want 3 channels."""
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        else:
            raise ValueError(f"image dtype {image.dtype} is not supported; expected uint8")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"image shape {image.shape} is not a picture; expected (h, w), (h, w, 3) or (h, w, 4)")


def detection_size(w: int, h: int, detect_width: int) -> tuple[int, int]:
    """Size to detect at: ``detect_width`` wide keeping aspect; smaller frames are not enlarged."""
    if w <= detect_width:
        return w, h
    return detect_width, max(1, round(h * detect_width / w))


RawBox = tuple[float, float, float, float, float]  # x, y, w, h, score in detection pixels
RawPoints = tuple[float, ...]  # ten numbers: five (x, y) landmarks in detection pixels


def finish_boxes(raw: list[RawBox], sx: float, sy: float, w: int, h: int, cfg: DetectorConfig,
                 points: list[RawPoints] | None = None) -> list[Box]:
    """Scale detector boxes (x, y, w, h, score) and their landmarks back to the frame, clip, filter, order."""
    boxes: list[Box] = []
    for i, (bx, by, bw, bh, score) in enumerate(raw):
        x0 = max(0.0, bx * sx)
        y0 = max(0.0, by * sy)
        x1 = min(float(w), (bx + bw) * sx)
        y1 = min(float(h), (by + bh) * sy)
        # What is left inside the frame is what later stages can use, so the size limit applies to it.
        if min(x1 - x0, y1 - y0) < cfg.min_face_px:
            continue
        marks = None
        if points is not None:
            p = points[i]
            pt = [(p[k] * sx, p[k + 1] * sy) for k in range(0, 10, 2)]
            marks = Landmarks(pt[0], pt[1], pt[2], pt[3], pt[4])
        boxes.append(Box(x0, y0, x1 - x0, y1 - y0, float(score), marks))
    boxes.sort(key=lambda b: (-b.area, b.x, b.y))
    return boxes[: cfg.max_faces]


class YuNetDetector:
    """OpenCV's FaceDetectorYN with the bundled YuNet ONNX model."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self._cfg = cfg
        path = Path(cfg.model)
        if not path.is_file():
            what = "is a folder, not" if path.is_dir() else "not found; expected"
            raise DetectorError(f"{path}: YuNet model file {what} an ONNX file")
        if path.stat().st_size == 0:
            raise DetectorError(f"{path}: YuNet model file is empty (0 bytes)")
        try:
            net = cv2.FaceDetectorYN.create(
                str(path), "", (cfg.detect_width, cfg.detect_width), cfg.score_threshold, cfg.nms_threshold
            )
        except cv2.error as exc:
            # cv2.error's text carries a C++ source location; its ``err`` is the readable part.
            reason = str(getattr(exc, "err", "") or "OpenCV could not parse it").strip().splitlines()[0]
            raise DetectorError(f"{path}: cannot load the YuNet model ({reason})") from None
        if net is None:
            raise DetectorError(f"{path}: cannot load the YuNet model")
        self._net = net
        self._size: tuple[int, int] = (cfg.detect_width, cfg.detect_width)

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        h, w = image_bgr.shape[:2]
        # A frame smaller than the smallest face we keep cannot hold one; skipping it also
        # keeps degenerate sizes (0 or 1 pixel) away from the network.
        if min(w, h) < self._cfg.min_face_px:
            return []
        image = to_bgr(image_bgr)
        sw, sh = detection_size(w, h, self._cfg.detect_width)
        small = image if (sw, sh) == (w, h) else cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        if (sw, sh) != self._size:
            self._net.setInputSize((sw, sh))
            self._size = (sw, sh)
        _, faces = self._net.detect(small)
        if faces is None:
            return []
        # Each row: x, y, w, h, five landmarks (x, y), score.
        raw = [(float(f[0]), float(f[1]), float(f[2]), float(f[3]), float(f[14])) for f in faces]
        points = [tuple(float(v) for v in f[4:14]) for f in faces]
        return finish_boxes(raw, w / sw, h / sh, w, h, self._cfg, points)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade: no model file to ship, but more misses and no score."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self._cfg = cfg
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if not folder:
            raise DetectorError(f"{HAAR_FILE}: this OpenCV build ships no Haar cascades (5.x dropped them)")
        path = Path(folder) / HAAR_FILE
        if not path.is_file():
            raise DetectorError(f"{path}: Haar cascade file not found")
        cascade = cv2.CascadeClassifier(str(path))
        if cascade.empty():
            raise DetectorError(f"{path}: cannot load the Haar cascade")
        self._cascade = cascade

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        h, w = image_bgr.shape[:2]
        if min(w, h) < self._cfg.min_face_px:
            return []
        gray = cv2.cvtColor(to_bgr(image_bgr), cv2.COLOR_BGR2GRAY)
        sw, sh = detection_size(w, h, self._cfg.detect_width)
        if (sw, sh) != (w, h):
            gray = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(1, int(self._cfg.min_face_px * sw / w))
        found = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        raw = [(float(x), float(y), float(bw), float(bh), 1.0) for x, y, bw, bh in found]
        return finish_boxes(raw, w / sw, h / sh, w, h, self._cfg)


def make_detector(cfg: DetectorConfig) -> FaceDetector:
    """The detector ``cfg.backend`` names; DetectorError when it cannot be built.

    Also sets OpenCV's thread count (``cfg.threads``), which is process-wide: at 15 fps
    a second thread's hand-offs cost more CPU in all than they save
    (benchmarks/cpu_load.py).
    """
    if cfg.threads > 0:
        cv2.setNumThreads(cfg.threads)
    if cfg.backend == "haar":
        return HaarDetector(cfg)
    return YuNetDetector(cfg)
