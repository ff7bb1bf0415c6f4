"""Build test and demo clips from real FER-2013 PrivateTest faces, with ground-truth timelines.

    python benchmarks/make_clips.py --data ../shared/data/fer2013.npz demo

Faces come only from PrivateTest (never from training faces), only rows with
exact pixels, and only faces whose FER+ crowd majority agrees with the
FER-2013 label by at least ``--min-votes`` of 10 (clear expressions, so a
clip tests the pipeline rather than label noise). Each face is upscaled and
held on a plain background for a segment; the timeline JSON next to the clip
says when, where and what. A face is used only if YuNet finds it where it was
placed, so a clip never asks the pipeline for a face no detector could see.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FERPLUS_COL = {"angry": 4, "disgust": 5, "fear": 6, "happy": 1, "sad": 3, "surprise": 2, "neutral": 0}
ROOT = Path(__file__).resolve().parent.parent
YUNET = ROOT / "models" / "face_detection_yunet_2026may.onnx"


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    cx: float  # face centre, fraction of frame width
    label: str
    size: int = 200


def background(w: int, h: int, seed: int) -> np.ndarray:
    """A soft gradient with gentle blotches: not a flat field, never a face."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 95 + 40 * (xx / w) + 20 * (yy / h)
    noise = cv2.GaussianBlur(rng.normal(0, 25, (h // 8, w // 8)).astype(np.float32), (0, 0), 2)
    base += cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(base, 0, 255).astype(np.uint8)


class FacePicker:
    """Hands out clear, detectable PrivateTest faces of a label, each used once."""

    def __init__(self, npz: Path, min_votes: int, seed: int) -> None:
        d = np.load(npz)
        self.images = d["images"]
        ok = (d["usage"] == 2) & (d["exact_pixels"] == 1)
        self.pool: dict[str, list[int]] = {}
        rng = np.random.default_rng(seed)
        for li, label in enumerate(LABELS):
            votes = d["ferplus_votes"][:, FERPLUS_COL[label]]
            rows = np.where(ok & (d["labels"] == li) & (votes >= min_votes))[0]
            self.pool[label] = list(rng.permutation(rows))
        self.det = cv2.FaceDetectorYN.create(str(YUNET), "", (320, 240), 0.7, 0.3)

    def _detectable(self, face: np.ndarray) -> bool:
        canvas = np.full((480, 640), 110, np.uint8)
        canvas[140:340, 220:420] = cv2.resize(face, (200, 200), interpolation=cv2.INTER_CUBIC)
        small = cv2.resize(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), (320, 240))
        self.det.setInputSize((320, 240))
        _, faces = self.det.detect(small)
        return faces is not None and len(faces) == 1

    def take(self, label: str) -> int:
        while self.pool[label]:
            row = int(self.pool[label].pop())
            if self._detectable(self.images[row]):
                return row
        raise SystemExit(f"no more clear, detectable PrivateTest faces labelled {label}")


def render(segments: list[Segment], rows: list[int], images: np.ndarray, out: Path,
           duration: float, fps: float = 15.0, size: tuple[int, int] = (640, 480),
           seed: int = 0) -> list[dict[str, Any]]:
    w, h = size
    bg = background(w, h, seed)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise SystemExit(f"{out}: OpenCV cannot write mp4v video here")
    faces = [cv2.resize(images[r], (s.size, s.size), interpolation=cv2.INTER_CUBIC)
             for s, r in zip(segments, rows, strict=True)]
    n = int(round(duration * fps))
    for i in range(n):
        t = i / fps
        frame = bg.copy()
        for k, (s, face) in enumerate(zip(segments, faces, strict=True)):
            if s.start <= t < s.end:
                # A slow drift of a few pixels, as a real head never stays still.
                dx = int(round(4 * np.sin(2 * np.pi * 0.3 * t + k)))
                dy = int(round(3 * np.cos(2 * np.pi * 0.2 * t + k)))
                x0 = int(round(s.cx * w - s.size / 2)) + dx
                y0 = (h - s.size) // 2 + dy
                frame[y0:y0 + s.size, x0:x0 + s.size] = face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return [
        {"start": s.start, "end": s.end, "x": round(2 * s.cx - 1, 4), "label": s.label,
         "row": r, "box": [round(s.cx * w - s.size / 2), (h - s.size) // 2, s.size, s.size]}
        for s, r in zip(segments, rows, strict=True)
    ]


DEMO: list[Segment] = [
    Segment(1.5, 4.5, 0.5, "happy"),
    Segment(4.5, 7.5, 0.5, "surprise"),
    Segment(9.0, 12.0, 0.5, "sad"),
    Segment(13.5, 17.5, 0.25, "angry"),
    Segment(13.5, 17.5, 0.75, "happy"),
    Segment(17.5, 21.5, 0.25, "neutral"),
    Segment(17.5, 21.5, 0.75, "fear"),
    Segment(23.0, 26.0, 0.75, "surprise"),
    Segment(27.5, 30.5, 0.25, "happy"),
]
DEMO_DURATION = 32.0


def make(name: str, segments: list[Segment], duration: float, picker: FacePicker,
         out_dir: Path, fps: float = 15.0) -> Path:
    rows = [picker.take(s.label) for s in segments]
    clip = out_dir / f"{name}.mp4"
    timeline = render(segments, rows, picker.images, clip, duration, fps)
    meta = {
        "clip": clip.name, "fps": fps, "duration": duration, "size": [640, 480],
        "source": "FER-2013 PrivateTest rows (exact pixels, FER+ majority agrees with the label)",
        "segments": timeline,
    }
    (out_dir / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {clip} ({clip.stat().st_size} B, {len(segments)} face segments)")
    return clip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="fer2013.npz")
    ap.add_argument("--min-votes", type=int, default=7)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("which", nargs="*", default=["demo"])
    args = ap.parse_args(argv)
    picker = FacePicker(args.data, args.min_votes, args.seed)
    if "demo" in args.which:
        make("demo", DEMO, DEMO_DURATION, picker, ROOT / "fer_audio" / "data")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
