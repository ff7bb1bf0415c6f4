"""Training-time augmentation in numpy + OpenCV, one affine warp per face.

Keras' random image layers were measured here at ~11 s per batch of 128 on
the torch backend (0.3 s on TensorFlow): per-image geometry through generic
tensor ops. A single cv2.warpAffine per 48×48 face costs microseconds on any
backend, so the input pipeline never starves the model.

Levels: ``light`` (geometry, contrast, brightness), ``strong`` (+ blur and
random erasing: the shipped 1.2 M model), ``real`` (+ what real camera faces
do to FER-2013's bright, upright, frontal ones: darkening by gamma, larger
roll, a horizontal squeeze like a turned head, a small face upscaled, sensor
noise). ``mix_batch`` adds mixup/cutmix on top, on the soft labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Level:
    """Probabilities and ranges of one augmentation level (0 turns a step off)."""

    max_rot_deg: float = 10.0
    squeeze: float = 0.0  # p of a horizontal squeeze to 0.7–1.0 of the width (a turned head)
    blur: float = 0.0
    erase: float = 0.0
    gamma: float = 0.0  # p of gamma 1.3–3 (darker) or 0.6–0.9 (brighter)
    shrink: float = 0.0  # p of down to 14–30 px and back up (a small face in the frame)
    noise: float = 0.0  # p of Gaussian sensor noise, sigma 2–8 grey levels


LEVELS: dict[str, Level] = {
    "light": Level(),
    "strong": Level(blur=0.15, erase=0.5),
    "real": Level(max_rot_deg=15.0, squeeze=0.3, blur=0.15, erase=0.5, gamma=0.3, shrink=0.2, noise=0.2),
}


def random_affine(rng: np.random.Generator, size: int = 48, max_shift: float = 0.1,
                  max_rot_deg: float = 10.0, scale: tuple[float, float] = (0.85, 1.15),
                  flip: bool = True, squeeze: float = 1.0) -> np.ndarray:
    """A 2×3 matrix: flip, squeeze x, rotate and scale about the centre, then shift."""
    c = (size - 1) / 2.0
    m = cv2.getRotationMatrix2D((c, c), float(rng.uniform(-max_rot_deg, max_rot_deg)),
                                float(rng.uniform(*scale)))
    if flip and rng.random() < 0.5:
        m[:, 0] *= -1  # mirror x, then put the centre back where it was
    if squeeze != 1.0:
        m[:, 0] *= squeeze
    m[0, 2] = c - (m[0, 0] * c + m[0, 1] * c)
    m[1, 2] = c - (m[1, 0] * c + m[1, 1] * c)
    m[:, 2] += rng.uniform(-max_shift, max_shift, 2) * size
    return m


def augment_batch(images: np.ndarray, rng: np.random.Generator, strength: str = "strong") -> np.ndarray:
    """uint8 (N, 48, 48) → float32 (N, 48, 48, 1), raw 0–255 like the model's input."""
    lv = LEVELS[strength]
    n, h, w = images.shape
    out = np.empty((n, h, w), np.float32)
    for i in range(n):
        sq = float(rng.uniform(0.7, 1.0)) if lv.squeeze and rng.random() < lv.squeeze else 1.0
        m = random_affine(rng, h, max_rot_deg=lv.max_rot_deg, squeeze=sq)
        face = cv2.warpAffine(images[i], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if lv.shrink and rng.random() < lv.shrink:
            s = int(rng.integers(14, 31))
            face = cv2.resize(cv2.resize(face, (s, s), interpolation=cv2.INTER_AREA), (w, h),
                              interpolation=cv2.INTER_LINEAR)
        img = face.astype(np.float32)
        if lv.gamma and rng.random() < lv.gamma:
            g = rng.uniform(1.3, 3.0) if rng.random() < 0.75 else rng.uniform(0.6, 0.9)
            img = 255.0 * (img / 255.0) ** g
        # Contrast about the face's mean, then brightness.
        mean = img.mean()
        img = (img - mean) * rng.uniform(0.7, 1.3) + mean + rng.uniform(-0.15, 0.15) * 255
        if lv.noise and rng.random() < lv.noise:
            img = img + rng.normal(0.0, rng.uniform(2.0, 8.0), img.shape).astype(np.float32)
        if lv.blur and rng.random() < lv.blur:
            img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.2)))
        if lv.erase and rng.random() < lv.erase:  # random erasing: an occluding patch of noise
            area = rng.uniform(0.02, 0.15) * h * w
            ratio = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
            eh = int(min(h, round(np.sqrt(area * ratio))))
            ew = int(min(w, round(np.sqrt(area / ratio))))
            y0, x0 = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
            img[y0:y0 + eh, x0:x0 + ew] = rng.uniform(0, 255, (eh, ew))
        out[i] = img
    np.clip(out, 0, 255, out=out)
    return out[..., None]


def mix_batch(x: np.ndarray, y: np.ndarray, w: np.ndarray, rng: np.random.Generator, p: float,
              mixup_alpha: float = 0.4, cutmix_alpha: float = 1.0) -> None:
    """Mix a fraction ``p`` of faces with a random partner, in place: half mixup, half cutmix.

    ``y`` are soft labels (N, C) and ``w`` per-face weights; both are mixed
    with the same proportion as the pixels (cutmix: the pasted area's share),
    so a mixed face's loss is the weighted mix of its two classes' losses.
    """
    n, h, wd = x.shape[:3]
    chosen = np.flatnonzero(rng.random(n) < p)
    partner = rng.integers(0, n, len(chosen))
    xs, ys, ws = x[partner].copy(), y[partner].copy(), w[partner].copy()
    for k, i in enumerate(chosen):
        if rng.random() < 0.5:
            lam = float(rng.beta(mixup_alpha, mixup_alpha))
            x[i] = lam * x[i] + (1 - lam) * xs[k]
        else:
            cut = np.sqrt(1.0 - float(rng.beta(cutmix_alpha, cutmix_alpha)))
            ch, cw = int(h * cut), int(wd * cut)
            cy, cx = int(rng.integers(0, h)), int(rng.integers(0, wd))
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, wd)
            x[i, y0:y1, x0:x1] = xs[k, y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * wd)
        y[i] = lam * y[i] + (1 - lam) * ys[k]
        w[i] = lam * w[i] + (1 - lam) * ws[k]
