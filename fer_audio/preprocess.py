"""Face box → model input. One function, shared by the runtime and by training's crop studies.

The model takes raw 0–255 gray pixels (48×48); normalisation is inside the
model. What lives here is only the geometry: FER-2013 faces are framed
tightly but include some forehead and chin, so a detector box is widened by
a margin (from the model card) and made square before resizing.
"""

from __future__ import annotations

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


def face_to_input(gray: np.ndarray, box: Box, margin: float, size: int = INPUT_SIZE) -> np.ndarray:
    """Crop one face from a gray frame into a (size, size) uint8 image.

    Parts of the square that fall outside the frame are filled by replicating
    the border, which looks more like FER's own framing than black bars.
    """
    h, w = gray.shape[:2]
    x0, y0, s = square_crop_box(box, margin)
    x1, y1 = x0 + s, y0 + s
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return np.zeros((size, size), np.uint8)
    crop = gray[cy0:cy1, cx0:cx1]
    pad = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pad):
        crop = cv2.copyMakeBorder(crop, *pad, borderType=cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def faces_to_batch(image: np.ndarray, boxes: list[Box], margin: float) -> np.ndarray:
    """All faces of one frame as a float32 batch (N, 48, 48, 1), raw 0–255."""
    gray = to_gray(image)
    batch = np.empty((len(boxes), INPUT_SIZE, INPUT_SIZE, 1), np.float32)
    for i, b in enumerate(boxes):
        batch[i, :, :, 0] = face_to_input(gray, b, margin)
    return batch
