"""Load FER-2013 from any of its three public forms into one in-memory shape.

Every loader returns a :class:`FerData`: uint8 images (N, 48, 48), labels in
the FER-2013 order (0 angry … 6 neutral), a usage code per row (0 Training,
1 PublicTest, 2 PrivateTest) and, when the source has them, FER+ votes.
Keeping one shape means training and evaluation never care where data came from.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
SPLIT_CODES: dict[str, int] = {"train": 0, "public": 1, "private": 2}

# FER+ vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear,
# contempt, unknown, NF. Map the seven shared ones onto FER-2013's label order.
_FERPLUS_TO_FER = {0: 6, 1: 3, 2: 5, 3: 4, 4: 0, 5: 1, 6: 2}


@dataclass(frozen=True)
class FerData:
    images: np.ndarray  # uint8 (N, 48, 48)
    labels: np.ndarray  # uint8 (N,)
    usage: np.ndarray  # uint8 (N,)
    ferplus_votes: np.ndarray | None = None  # uint8 (N, 10)

    def split(self, name: str) -> FerData:
        """Rows of one split: 'train', 'public' or 'private'."""
        if name not in SPLIT_CODES:
            raise ValueError(f"unknown split {name!r}; expected one of {sorted(SPLIT_CODES)}")
        mask = self.usage == SPLIT_CODES[name]
        votes = None if self.ferplus_votes is None else self.ferplus_votes[mask]
        return FerData(self.images[mask], self.labels[mask], self.usage[mask], votes)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load(path: str | Path) -> FerData:
    """Load from an .npz, a Kaggle ``fer2013.csv``, or a train/test image-folder tree."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    if p.is_dir():
        return load_image_folders(p)
    if p.suffix == ".npz":
        return load_npz(p)
    if p.suffix == ".csv":
        return load_csv(p)
    raise ValueError(f"{p}: expected a .npz, a .csv or a folder of class folders")


def load_npz(path: str | Path) -> FerData:
    with np.load(path, allow_pickle=False) as d:
        votes = d["ferplus_votes"] if "ferplus_votes" in d.files else None
        return FerData(
            images=np.asarray(d["images"], dtype=np.uint8),
            labels=np.asarray(d["labels"], dtype=np.uint8),
            usage=np.asarray(d["usage"], dtype=np.uint8),
            ferplus_votes=None if votes is None else np.asarray(votes, dtype=np.uint8),
        )


def load_csv(path: str | Path) -> FerData:
    """Kaggle's fer2013.csv: columns emotion, pixels (2304 space-separated), Usage."""
    images, labels, usage = [], [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for lineno, row in enumerate(reader, start=2):
            try:
                px = np.array(row["pixels"].split(), dtype=np.uint8)
                if px.size != 48 * 48:
                    raise ValueError(f"{px.size} pixels, expected 2304")
                images.append(px.reshape(48, 48))
                labels.append(int(row["emotion"]))
                usage.append(USAGES.index(row["Usage"]))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{lineno}: bad row: {exc}") from exc
    return FerData(np.stack(images), np.array(labels, np.uint8), np.array(usage, np.uint8))


def load_image_folders(root: str | Path) -> FerData:
    """The msambare/fer2013 layout: root/{train,test}/<label>/*.png|jpg.

    ``test`` has no public/private distinction in that layout; its files are
    split by their ``PublicTest_``/``PrivateTest_`` name prefix when present,
    otherwise counted as PrivateTest (the held-out set).
    """
    import cv2  # local: only this loader needs image decoding

    root = Path(root)
    images, labels, usage = [], [], []
    for sub, default_usage in (("train", 0), ("test", 2)):
        for li, label in enumerate(LABELS):
            folder = root / sub / label
            if not folder.is_dir():
                continue
            for f in sorted(folder.iterdir()):
                if f.suffix.lower() not in (".png", ".jpg", ".jpeg"):
                    continue
                img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
                if img is None:
                    raise ValueError(f"{f}: not a readable image")
                if img.shape != (48, 48):
                    img = cv2.resize(img, (48, 48), interpolation=cv2.INTER_AREA)
                u = default_usage
                if f.name.startswith("PublicTest_"):
                    u = 1
                elif f.name.startswith("PrivateTest_"):
                    u = 2
                images.append(img)
                labels.append(li)
                usage.append(u)
    if not images:
        raise ValueError(f"{root}: no images under train/<label>/ or test/<label>/")
    return FerData(np.stack(images), np.array(labels, np.uint8), np.array(usage, np.uint8))


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """FER+ majority label in FER-2013 order, or -1 where no majority exists.

    A row counts when its most-voted class is one of the seven shared emotions
    and is a strict maximum (ties, 'contempt', 'unknown' and 'not a face' drop out).
    """
    out = np.full(votes.shape[0], -1, dtype=np.int64)
    v = votes.astype(np.int64)
    top = v.argmax(axis=1)
    counts = np.sort(v, axis=1)
    strict = counts[:, -1] > counts[:, -2]
    for fp, fer in _FERPLUS_TO_FER.items():
        out[(top == fp) & strict & (v.sum(axis=1) > 0)] = fer
    return out


def ferplus_soft_labels(votes: np.ndarray) -> np.ndarray:
    """FER+ votes over the seven shared classes as probabilities in FER order (rows may be 0)."""
    v = votes.astype(np.float32)
    soft = np.zeros((v.shape[0], len(LABELS)), np.float32)
    for fp, fer in _FERPLUS_TO_FER.items():
        soft[:, fer] = v[:, fp]
    s = soft.sum(axis=1, keepdims=True)
    return np.divide(soft, s, out=np.zeros_like(soft), where=s > 0)
