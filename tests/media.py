"""Test media built from the committed real-face photographs (tests/fixtures/faces).

Videos are written into a test's temporary folder and never committed: they are cheap to
make and this keeps the repository small.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

FACES_DIR = Path(__file__).resolve().parent / "fixtures" / "faces"
PHOTOS = (
    "alex-lacamoire.png",
    "biden.jpg",
    "kit_with_rose.jpg",
    "obama-480p.jpg",
    "obama.jpg",
    "obama_partial_face.jpg",
)


def load_photo(name: str) -> np.ndarray:
    """A fixture photo as BGR uint8; fails loudly when the fixture is missing."""
    path = FACES_DIR / name
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: fixture photo missing or unreadable")
    return np.asarray(image)


def place(photo: np.ndarray, size: tuple[int, int], x: int, y: int, gray: int = 128) -> np.ndarray:
    """``photo`` pasted at (x, y) on a flat gray canvas of ``size`` (w, h), cropped at the edges."""
    w, h = size
    canvas = np.full((h, w, 3), gray, np.uint8)
    ph, pw = photo.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + pw, w), min(y + ph, h)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = photo[y0 - y : y1 - y, x0 - x : x1 - x]
    return canvas


def panning_frames(n: int, size: tuple[int, int] = (320, 240), photo: str = "obama-480p.jpg") -> list[np.ndarray]:
    """``n`` frames of a real face sliding left to right, each visibly different from the last."""
    image = load_photo(photo)
    w, h = size
    scale = min(h * 0.9 / image.shape[0], w * 0.6 / image.shape[1])
    face = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))))
    span = max(w - face.shape[1], 1)
    frames = []
    for i in range(n):
        x = round(i * span / max(n - 1, 1)) if n > 1 else 0
        frames.append(place(face, size, x, (h - face.shape[0]) // 2))
    return frames


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float, fourcc: str = "mp4v") -> Path:
    """Encode ``frames`` (all one size) with OpenCV; mp4v in .mp4 or MJPG in .avi both work here."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write {fourcc} video here")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def face_video(tmp: Path, n: int = 30, fps: float = 30.0, name: str = "face.mp4", fourcc: str = "mp4v") -> Path:
    """A short clip of a real face moving across a 320x240 frame."""
    return write_video(tmp / name, panning_frames(n), fps, fourcc)


def corrupt_mjpeg_frame(path: Path, frame: int) -> None:
    """Overwrite the JPEG data of one frame of an MJPG .avi, leaving the container intact.

    OpenCV then fails that one read and carries on with the next frame: a corrupt frame
    in the middle of an otherwise good file.
    """
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    start, end = starts[frame], starts[frame + 1]
    data[start : end - 8] = b"\x5a" * (end - 8 - start)
    path.write_bytes(bytes(data))
