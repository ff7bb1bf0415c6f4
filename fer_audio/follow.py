"""Detect on every n-th frame, follow the known faces in between: most of the CPU per frame saved.

YuNet on the whole (downscaled) frame is the largest cost of a frame with one
or two faces. Between two full passes a face moves a few pixels, so a
detector pass on a small patch around each known face finds it again, with
fresh landmarks, at a fraction of the cost. Nothing is guessed: a face the
patch pass does not find is not reported (the tracker counts it missed, as
it would after a full pass that missed it), and new faces are found at the
next full pass, at most ``detect_every - 1`` frames later.

When the patches together would cost as much as a full pass (many faces),
the full pass runs instead.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from fer_audio.config import DetectorConfig
from fer_audio.detection import FaceDetector, detection_size, finish_boxes, to_bgr
from fer_audio.types import Box

# The patch spans this many face sides around the last box: room for a move between full passes.
# It is seen at the full pass's own scale (detect_width), so a face comes out the same size, and its
# box and crop the same, as a full pass would give: measured on the benchmark clips, patches
# downscaled further (faces of 40-64 px) missed faces or moved the boxes enough to change cues.
NEIGHBOURHOOD = 2.0
# Two followed faces whose boxes overlap this much are one face found twice.
DUPLICATE_IOU = 0.5


def _region(box: Box, w: int, h: int) -> tuple[int, int, int, int]:
    """The frame rectangle (x0, y0, x1, y1) around ``box`` that a patch covers, clipped to the frame."""
    side = NEIGHBOURHOOD * max(box.w, box.h)
    cx, cy = box.cx, box.y + box.h / 2
    x0, y0 = max(0, math.floor(cx - side / 2)), max(0, math.floor(cy - side / 2))
    x1, y1 = min(w, math.ceil(cx + side / 2)), min(h, math.ceil(cy + side / 2))
    return x0, y0, x1, y1


def _closest(found: list[Box], prev: Box) -> Box | None:
    """The detection in a patch that is the face we followed: the best overlap with its last box."""
    best = max(found, key=lambda b: (b.iou(prev), b.score), default=None)
    if best is None or best.iou(prev) <= 0.0:
        return None
    return best


class FollowingDetector:
    """A YuNet detector that runs on the full frame every ``detect_every`` calls and on patches between."""

    def __init__(self, full: FaceDetector, cfg: DetectorConfig) -> None:
        self._full = full
        self._cfg = cfg
        self._every = cfg.detect_every
        self._count = 0
        self._last: list[Box] = []
        self._net = cv2.FaceDetectorYN.create(str(Path(cfg.model)), "", (cfg.detect_width, cfg.detect_width),
                                              cfg.score_threshold, cfg.nms_threshold)
        self._size = (cfg.detect_width, cfg.detect_width)
        self.full_passes = 0  # for the benchmarks and tests
        self.patch_passes = 0

    def reset(self) -> None:
        """Forget the known faces: the next call is a full pass."""
        self._count = 0
        self._last = []

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        h, w = image_bgr.shape[:2]
        due = self._count % self._every == 0
        self._count += 1
        sw, sh = detection_size(w, h, self._cfg.detect_width)
        scale = sw / w
        cost = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in (_region(b, w, h) for b in self._last))
        if due or not self._last or cost * scale * scale >= sw * sh:
            self._count = 1  # the next full pass comes detect_every frames after this one
            self.full_passes += 1
            self._last = self._full.detect(image_bgr)
            return self._last
        image = to_bgr(image_bgr)
        kept: list[Box] = []
        for prev in self._last:
            self.patch_passes += 1
            box = self._in_patch(image, prev, w, h, scale)
            if box is not None and all(box.iou(k) < DUPLICATE_IOU for k in kept):
                kept.append(box)
        kept.sort(key=lambda b: (-b.area, b.x, b.y))
        self._last = kept
        return kept

    def _in_patch(self, image: np.ndarray, prev: Box, w: int, h: int, scale: float) -> Box | None:
        x0, y0, x1, y1 = _region(prev, w, h)
        rw, rh = x1 - x0, y1 - y0
        if rw < self._cfg.min_face_px or rh < self._cfg.min_face_px:
            return None
        pw, ph = max(1, round(rw * scale)), max(1, round(rh * scale))
        region = image[y0:y1, x0:x1]
        patch = region if (pw, ph) == (rw, rh) else cv2.resize(region, (pw, ph), interpolation=cv2.INTER_AREA)
        if (pw, ph) != self._size:
            self._net.setInputSize((pw, ph))
            self._size = (pw, ph)
        _, faces = self._net.detect(patch)
        if faces is None:
            return None
        raw = [(float(f[0]), float(f[1]), float(f[2]), float(f[3]), float(f[14])) for f in faces]
        points = [tuple(float(v) for v in f[4:14]) for f in faces]
        # finish_boxes scales to the region's pixels; shift each box (and its points) to the frame.
        found = [_shift(b, x0, y0) for b in finish_boxes(raw, rw / pw, rh / ph, rw, rh, self._cfg, points)]
        return _closest(found, prev)


def _shift(b: Box, dx: float, dy: float) -> Box:
    from fer_audio.types import Landmarks

    marks = b.landmarks
    if marks is not None:
        def mv(p: tuple[float, float]) -> tuple[float, float]:
            return (p[0] + dx, p[1] + dy)

        marks = Landmarks(mv(marks.right_eye), mv(marks.left_eye), mv(marks.nose), mv(marks.mouth_right),
                          mv(marks.mouth_left))
    return Box(b.x + dx, b.y + dy, b.w, b.h, b.score, marks)


def make_following(detector: FaceDetector, cfg: DetectorConfig) -> FaceDetector:
    """Wrap a YuNet detector when ``detect_every`` > 1; the Haar cascade and n = 1 detect every frame."""
    if cfg.detect_every <= 1 or cfg.backend != "yunet":
        return detector
    return FollowingDetector(detector, cfg)
