"""Face box → model input. One function, shared by the runtime and by training's crop studies.

The model takes raw 0–255 gray pixels (48×48); normalisation is inside the
model. What lives here is only the geometry: FER-2013 faces are framed
tightly but include some forehead and chin, so a detector box is widened by
a margin (from the model card) and made square before resizing. FER-2013's
faces are upright, a camera's are not: when the detector found the eyes, the
square is turned about the face's centre so that the eyes are level
(``align``), which is what FER-2013's own registration did.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from fer_audio.types import Box

INPUT_SIZE = 48


def to_gray(image: np.ndarray) -> np.ndarray:
    """BGR, BGRA or gray uint8 → gray uint8 (no copy for gray input)."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def square_crop_box(box: Box, margin: float) -> tuple[int, int, int]:
    """Square region (x0, y0, side) around ``box``, widened by ``margin`` of its side each way.

    A negative margin tightens the square: detectors often draw a looser box
    than FER-2013's framing, and the crop study in training/ measures which fits.
    """
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    s = max(int(round(side)), 1)
    return int(round(cx - s / 2.0)), int(round(cy - s / 2.0)), s


def _region(gray: np.ndarray, x0: int, y0: int, s: int) -> np.ndarray | None:
    """The square (x0, y0, s) of ``gray``, with what falls outside the frame replicated from its border.

    Replicated borders look more like FER's own framing than black bars.
    None when the square misses the frame entirely.
    """
    h, w = gray.shape[:2]
    x1, y1 = x0 + s, y0 + s
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    crop = gray[cy0:cy1, cx0:cx1]
    pad = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pad):
        crop = cv2.copyMakeBorder(crop, *pad, borderType=cv2.BORDER_REPLICATE)
    return crop


MIN_ROLL_DEG = 1.0  # below this, turning the crop would only blur it


def face_to_input(gray: np.ndarray, box: Box, margin: float, size: int = INPUT_SIZE,
                  align: bool = True) -> np.ndarray:
    """Crop one face from a gray frame into a (size, size) uint8 image, eyes levelled when known.

    The turn happens at the frame's own resolution on a region large enough
    to hold the square at any angle, then the square is resized once
    (INTER_AREA when shrinking), so a turned face is no blurrier than an
    upright one.
    """
    x0, y0, s = square_crop_box(box, margin)
    roll = box.landmarks.roll_deg if align and box.landmarks is not None else 0.0
    if abs(roll) < MIN_ROLL_DEG:
        crop = _region(gray, x0, y0, s)
    else:
        pad = int(math.ceil(s * (math.sqrt(2.0) - 1.0) / 2.0)) + 1
        region = _region(gray, x0 - pad, y0 - pad, s + 2 * pad)
        crop = None
        if region is not None:
            c = (s + 2 * pad - 1) / 2.0
            # getRotationMatrix2D turns counter-clockwise on screen for a positive angle, which
            # lifts the image-right eye when it was the lower one (positive roll).
            m = cv2.getRotationMatrix2D((c, c), roll, 1.0)
            turned = cv2.warpAffine(region, m, (s + 2 * pad, s + 2 * pad), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
            crop = turned[pad:pad + s, pad:pad + s]
    if crop is None:
        return np.zeros((size, size), np.uint8)
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def faces_to_batch(image: np.ndarray, boxes: list[Box], margin: float, align: bool = True) -> np.ndarray:
    """All faces of one frame as a float32 batch (N, 48, 48, 1), raw 0–255."""
    gray = to_gray(image)
    batch = np.empty((len(boxes), INPUT_SIZE, INPUT_SIZE, 1), np.float32)
    for i, b in enumerate(boxes):
        batch[i, :, :, 0] = face_to_input(gray, b, margin, align=align)
    return batch
