"""Build the demo clip from the committed real photographs, and benchmark clips from FER-2013.

    python benchmarks/make_clips.py demo
    python benchmarks/make_clips.py --data ../shared/data/fer2013.npz bench

The demo (fer_audio/data/demo.mp4, shipped in the package) is made only of the six
MIT-licensed photographs in tests/fixtures/faces (from ageitgey/face_recognition,
licence beside them): no FER-2013 image is ever committed or shipped. Each face is
found by YuNet in its photo, cut out as a square around its box, and held on a plain
background for a segment; the timeline JSON next to the clip says when, where and
which photo. The photos carry no expression labels (most people in them smile), so
what a segment should be cued is judged from the shipped model's own reading of it
(tests/test_end_to_end.py), not from a label here.

Benchmark clips (benchmarks/clips/, not committed; see benchmarks/README.md) need
clear, labelled expressions, so they are built on demand from FER-2013 PrivateTest
faces: only rows with exact pixels, and only faces whose FER+ crowd majority agrees
with the FER-2013 label by at least ``--min-votes`` of 10 (clear expressions, so a
clip tests the pipeline rather than label noise). A face is used only if YuNet finds
it where it was placed. The picker's seeds are fixed, so the clips are the same
every time they are built.
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


def drift(t: float, k: int) -> tuple[int, int]:
    """A slow drift of a few pixels of face ``k`` at time ``t``, as a real head never stays still."""
    return int(round(4 * np.sin(2 * np.pi * 0.3 * t + k))), int(round(3 * np.cos(2 * np.pi * 0.2 * t + k)))


def background(w: int, h: int, seed: int) -> np.ndarray:
    """A soft gradient with gentle blotches: not a flat field, never a face."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 95 + 40 * (xx / w) + 20 * (yy / h)
    noise = cv2.GaussianBlur(rng.normal(0, 25, (h // 8, w // 8)).astype(np.float32), (0, 0), 2)
    base += cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(base, 0, 255).astype(np.uint8)


class FacePicker:
    """Hands out clear PrivateTest faces of a label, each used once, that YuNet finds at the size they will have."""

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

    def _detectable_at(self, face: np.ndarray, size: int) -> bool:
        canvas = np.full((480, 640), 110, np.uint8)
        y0, x0 = (480 - size) // 2, (640 - size) // 2
        canvas[y0:y0 + size, x0:x0 + size] = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
        small = cv2.resize(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), (320, 240))
        self.det.setInputSize((320, 240))
        _, faces = self.det.detect(small)
        return faces is not None and len(faces) == 1

    def take_sized(self, label: str, size: int) -> int:
        while self.pool[label]:
            row = int(self.pool[label].pop())
            if self._detectable_at(self.images[row], size):
                return row
        raise SystemExit(f"no more clear, detectable PrivateTest faces labelled {label}")


PHOTOS_DIR = ROOT / "tests" / "fixtures" / "faces"
DEMO_DIR = ROOT / "fer_audio" / "data"


@dataclass(frozen=True)
class Segment:
    """One photographed face held in one place for a while.

    ``face`` picks a face in a photo with several, counted left to right.
    """

    start: float
    end: float
    cx: float  # face centre, fraction of frame width
    photo: str
    face: int = 0
    size: int = 200


def photo_face(photo: Path, face: int, size: int, det: Any) -> np.ndarray:
    """The ``face``-th face (left to right) of a photo, as a BGR square of ``size`` px around its box.

    The square is 1.7 times the box's longer side, so hair, chin and some shoulder
    come with it, as a camera would show a person; edges beyond the photo repeat.
    """
    image = cv2.imread(str(photo))
    if image is None:
        raise SystemExit(f"{photo}: not a picture OpenCV can read")
    scale = 640 / max(image.shape[:2])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    det.setInputSize((small.shape[1], small.shape[0]))
    _, found = det.detect(small)
    if found is None or len(found) <= face:
        raise SystemExit(f"{photo}: YuNet finds {0 if found is None else len(found)} faces, face {face} asked for")
    x, y, w, h = (float(v) / scale for v in sorted(found, key=lambda f: f[0])[face][:4])
    side = 1.7 * max(w, h)
    cx, cy = x + w / 2, y + h / 2
    pad = int(side)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    x0, y0 = int(round(cx - side / 2)) + pad, int(round(cy - side / 2)) + pad
    crop = padded[y0:y0 + int(side), x0:x0 + int(side)]
    return np.asarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))


def render(segments: list[Segment], out: Path, duration: float, fps: float = 15.0,
           size: tuple[int, int] = (640, 480), seed: int = 0) -> list[dict[str, Any]]:
    w, h = size
    bg = cv2.cvtColor(background(w, h, seed), cv2.COLOR_GRAY2BGR)
    det = cv2.FaceDetectorYN.create(str(YUNET), "", (320, 240), 0.7, 0.3)
    faces = [photo_face(PHOTOS_DIR / s.photo, s.face, s.size, det) for s in segments]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise SystemExit(f"{out}: OpenCV cannot write mp4v video here")
    n = int(round(duration * fps))
    for i in range(n):
        t = i / fps
        frame = bg.copy()
        for k, (s, face) in enumerate(zip(segments, faces, strict=True)):
            if s.start <= t < s.end:
                dx, dy = drift(t, k)
                x0 = int(round(s.cx * w - s.size / 2)) + dx
                y0 = (h - s.size) // 2 + dy
                frame[y0:y0 + s.size, x0:x0 + s.size] = face
        writer.write(frame)
    writer.release()
    return [
        {"start": s.start, "end": s.end, "x": round(2 * s.cx - 1, 4), "photo": s.photo, "face": s.face,
         "box": [round(s.cx * w - s.size / 2), (h - s.size) // 2, s.size, s.size]}
        for s in segments
    ]


# Times and places are those the tests rely on: one person at the centre, a change of
# person there, a pause, two people side by side (x -0.5 and +0.5) from 13.5 s, both
# replaced at 17.5 s, then one on each side in turn. A face that replaces another in
# the same place shows another expression, as the tracker keeps it the same person.
DEMO: list[Segment] = [
    Segment(1.5, 4.5, 0.5, "obama.jpg"),
    Segment(4.5, 7.5, 0.5, "kit_with_rose.jpg", face=1),
    Segment(9.0, 12.0, 0.5, "kit_with_rose.jpg", face=0),
    Segment(13.5, 17.5, 0.25, "alex-lacamoire.png"),
    Segment(13.5, 17.5, 0.75, "obama-480p.jpg"),
    Segment(17.5, 21.5, 0.25, "kit_with_rose.jpg", face=1),
    Segment(17.5, 21.5, 0.75, "biden.jpg"),
    Segment(23.0, 26.0, 0.75, "obama_partial_face.jpg"),
    Segment(27.5, 30.5, 0.25, "alex-lacamoire.png"),
]
DEMO_DURATION = 32.0


def make_demo(out_dir: Path = DEMO_DIR, fps: float = 15.0) -> Path:
    clip = out_dir / "demo.mp4"
    timeline = render(DEMO, clip, DEMO_DURATION, fps)
    meta = {
        "clip": clip.name, "fps": fps, "duration": DEMO_DURATION, "size": [640, 480],
        "source": "tests/fixtures/faces: six photographs from ageitgey/face_recognition (MIT); "
                  "expressions not labelled",
        "segments": timeline,
    }
    (out_dir / "demo.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {clip} ({clip.stat().st_size} B, {len(DEMO)} face segments)")
    return clip


# --------------------------------------------------------------------------- benchmark clips
#
# Everything below is for benchmarks/ only and needs the full FER-2013 npz.

BENCH_DIR = ROOT / "benchmarks" / "clips"
BENCH_SEED = 2027


@dataclass(frozen=True)
class Shot:
    """One face in one slot for a while. ``wobble`` adds what a held camera and a talking face add:
    per-frame jitter, brightness flicker, sensor noise and JPEG-grade compression of the face."""

    start: float
    end: float
    cx: float  # face centre, fraction of frame width
    label: str
    size: int = 160
    cy: float = 0.5  # face centre, fraction of frame height
    wobble: bool = False


@dataclass(frozen=True)
class ClipSpec:
    shots: list[Shot]
    duration: float
    fps: float
    purpose: str


def _wobbled(face: np.ndarray, rng: np.random.Generator, t: float, k: int) -> np.ndarray:
    """A face as a cheap webcam sees a talking person: light flicker, noise, compression."""
    gain = 1.0 + 0.06 * np.sin(2 * np.pi * 0.7 * t + k)
    out = face.astype(np.float32) * gain + rng.normal(0, 1.5, face.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    quality = int(rng.integers(30, 70))
    ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.asarray(cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE)) if ok else out


def render_bench(shots: list[Shot], rows: list[int], images: np.ndarray, out: Path, duration: float,
                 fps: float, size: tuple[int, int] = (640, 480), seed: int = 1) -> list[dict[str, Any]]:
    w, h = size
    bg = background(w, h, seed)
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise SystemExit(f"{out}: OpenCV cannot write mp4v video here")
    faces = [cv2.resize(images[r], (s.size, s.size), interpolation=cv2.INTER_CUBIC)
             for s, r in zip(shots, rows, strict=True)]
    n = int(round(duration * fps))
    for i in range(n):
        t = i / fps
        frame = bg.copy()
        for k, (s, face) in enumerate(zip(shots, faces, strict=True)):
            if s.start <= t < s.end:
                dx, dy = drift(t, k)
                patch = face
                if s.wobble:
                    dx += int(rng.integers(-2, 3))
                    dy += int(rng.integers(-2, 3))
                    patch = _wobbled(face, rng, t, k)
                x0 = min(max(int(round(s.cx * w - s.size / 2)) + dx, 0), w - s.size)
                y0 = min(max(int(round(s.cy * h - s.size / 2)) + dy, 0), h - s.size)
                frame[y0:y0 + s.size, x0:x0 + s.size] = patch
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return [
        {"start": s.start, "end": s.end, "x": round(2 * s.cx - 1, 4), "y": round(2 * s.cy - 1, 4),
         "label": s.label, "row": r, "wobble": s.wobble,
         "box": [round(s.cx * w - s.size / 2), round(s.cy * h - s.size / 2), s.size, s.size]}
        for s, r in zip(shots, rows, strict=True)
    ]


def changes(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every moment a slot's ground-truth expression changes (or a face appears), in time order.

    A slot is a face position; consecutive segments in one slot are one person's
    track for the pipeline (the box does not move), so a new label there is an
    expression change the pipeline should report.
    """
    by_slot: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for seg in segments:
        by_slot.setdefault((seg["x"], seg["y"]), []).append(seg)
    out: list[dict[str, Any]] = []
    for (x, y), segs in by_slot.items():
        segs.sort(key=lambda s: s["start"])
        prev: dict[str, Any] | None = None
        for seg in segs:
            contiguous = prev is not None and abs(prev["end"] - seg["start"]) < 1e-9
            before = prev["label"] if contiguous and prev is not None else None
            if before != seg["label"]:
                out.append({"t": seg["start"], "x": x, "y": y, "from": before, "to": seg["label"]})
            prev = seg
    out.sort(key=lambda c: (c["t"], c["x"], c["y"]))
    return out


def make_bench(name: str, spec: ClipSpec, rows: list[int], images: np.ndarray, out_dir: Path) -> Path:
    clip = out_dir / f"{name}.mp4"
    timeline = render_bench(spec.shots, rows, images, clip, spec.duration, spec.fps)
    meta = {
        "clip": clip.name, "fps": spec.fps, "duration": spec.duration, "size": [640, 480],
        "purpose": spec.purpose,
        "source": "FER-2013 PrivateTest rows (exact pixels, FER+ majority agrees with the label)",
        "segments": timeline,
        "changes": changes(timeline),
    }
    (out_dir / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {clip} ({clip.stat().st_size} B, {len(spec.shots)} face shots)")
    return clip


def _two_halves(cx: float, cy: float, size: int, first: str, second: str, duration: float) -> list[Shot]:
    return [Shot(0.0, duration / 2, cx, first, size, cy), Shot(duration / 2, duration, cx, second, size, cy)]


def _latency_shots() -> list[Shot]:
    """Neutral, then the same slot switching to a clear expression at a known time, ten times.

    Onsets at 2, 7, 12, ... s fall on frame boundaries at both 15 and 30 fps.
    """
    shots: list[Shot] = []
    expressions = ["happy", "surprise", "sad", "angry", "fear", "happy", "surprise", "sad", "angry", "happy"]
    t = 0.0
    for i, label in enumerate(expressions):
        lead = 2.0 if i == 0 else 2.5
        shots.append(Shot(t, t + lead, 0.5, "neutral", 200))
        shots.append(Shot(t + lead, t + lead + 2.5, 0.5, label, 200))
        t += lead + 2.5
    return shots


def _held_shots() -> list[Shot]:
    """Three people, each holding one expression for up to 20 s, three times: long steady stretches.

    Person k arrives and changes 3k seconds after person 0, so no two changes compete for the
    presenter's global rate limit (min_interval_s): a miss here is the smoother's, not the limiter's.
    """
    plan = [["happy", "sad", "surprise"], ["surprise", "angry", "happy"], ["sad", "happy", "angry"]]
    shots = []
    for k, labels in enumerate(plan):
        cx, lag = (1 + 2 * k) / 6, 3.0 * k
        edges = [lag, 20.0 + lag, 40.0 + lag, 60.0]
        shots += [Shot(edges[i], edges[i + 1], cx, label, 160) for i, label in enumerate(labels)]
    return shots


def _talk_swap_shots() -> list[Shot]:
    """A "talking" neutral face: a different clear-neutral PrivateTest face every 3 s in one slot."""
    return [Shot(3.0 * i, 3.0 * (i + 1), 0.5, "neutral", 200) for i in range(20)]


def _talk_wobble_shots() -> list[Shot]:
    """Two people, each one neutral face for 30 s, with jitter, flicker, noise and compression.

    30 s, not 60: per-frame noise is what a video codec cannot predict, and the clip must stay small.
    """
    return [Shot(0.0, 30.0, 0.28, "neutral", 180, wobble=True), Shot(0.0, 30.0, 0.72, "neutral", 180, wobble=True)]


def _changes_shots() -> list[Shot]:
    """Three people, each alternating a neutral face and a clear expression every 4 s, for 2 minutes.

    42 expression onsets (8 each of angry, fear, happy, sad, surprise; 2 disgust, the
    pool holds only 4 clear ones), in a fixed shuffled order dealt to the three slots in
    turn: enough cues per expression to compare models, which the ten-face clips above
    cannot. Slot k starts 8k/3 s after slot 0, so onsets come 2.7 s apart overall and
    never compete for the presenter's global rate limit (1.5 s).
    """
    labels = [lb for lb in ("angry", "fear", "happy", "sad", "surprise") for _ in range(8)] + ["disgust"] * 2
    order = [labels[i] for i in np.random.default_rng(5).permutation(len(labels))]
    shots: list[Shot] = []
    for k in range(3):
        cx, t = (1 + 2 * k) / 6, 8.0 * k / 3
        for label in order[k::3]:
            shots += [Shot(t, t + 4.0, cx, "neutral", 160), Shot(t + 4.0, t + 8.0, cx, label, 160)]
            t += 8.0
    return shots


BENCH: dict[str, ClipSpec] = {
    "faces1": ClipSpec(_two_halves(0.5, 0.5, 200, "happy", "surprise", 10.0), 10.0, 30.0,
                       "throughput: one face"),
    "faces3": ClipSpec([s for cx, a, b in ((1 / 6, "happy", "sad"), (1 / 2, "surprise", "happy"),
                                            (5 / 6, "neutral", "angry"))
                        for s in _two_halves(cx, 0.5, 160, a, b, 10.0)], 10.0, 30.0,
                       "throughput: three faces in a row"),
    "faces6": ClipSpec([s for (cx, cy), (a, b) in zip(
        ((1 / 6, 0.27), (1 / 2, 0.27), (5 / 6, 0.27), (1 / 6, 0.73), (1 / 2, 0.73), (5 / 6, 0.73)),
        (("happy", "sad"), ("surprise", "happy"), ("neutral", "angry"),
         ("sad", "happy"), ("angry", "surprise"), ("happy", "neutral")), strict=True)
        for s in _two_halves(cx, cy, 130, a, b, 10.0)], 10.0, 30.0,
                       "throughput: six faces in two rows"),
    "latency": ClipSpec(_latency_shots(), 52.0, 30.0,
                        "latency: neutral then a clear expression in the same slot, ten onsets"),
    "held": ClipSpec(_held_shots(), 60.0, 15.0, "steadiness: three people holding expressions for 20 s each"),
    "talk_swap": ClipSpec(_talk_swap_shots(), 60.0, 15.0,
                          "steadiness: one slot, a different neutral face every 3 s"),
    "talk_wobble": ClipSpec(_talk_wobble_shots(), 30.0, 15.0,
                            "steadiness: two neutral faces with jitter, flicker, noise and compression"),
    # Last, so the clips above keep their faces.
    "changes": ClipSpec(_changes_shots(), 120.0, 15.0,
                        "cue precision: three people, neutral and a clear expression in turn, 42 onsets"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="fer2013.npz (benchmark clips only)")
    ap.add_argument("--min-votes", type=int, default=7)
    ap.add_argument("--bench-seed", type=int, default=BENCH_SEED,
                    help="seed of the benchmark clips' face picker")
    ap.add_argument("--out-dir", type=Path, default=BENCH_DIR, help="where benchmark clips go")
    ap.add_argument("which", nargs="*", default=["demo"],
                    help="demo, bench (every benchmark clip), or benchmark clip names: " + ", ".join(BENCH))
    args = ap.parse_args(argv)
    unknown = sorted(set(args.which) - {"demo", "bench", *BENCH})
    if unknown:
        raise SystemExit(f"unknown clip {unknown[0]!r}; expected demo, bench or one of {', '.join(BENCH)}")
    if "demo" in args.which:
        make_demo()
    wanted = [n for n in BENCH if "bench" in args.which or n in args.which]
    if wanted:
        if args.data is None or not args.data.is_file():
            raise SystemExit(f"--data: {args.data or 'missing'}: the FER-2013 npz is needed for benchmark clips")
        bench_picker = FacePicker(args.data, args.min_votes, args.bench_seed)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for name in BENCH:  # always in the same order, so a clip's faces do not depend on the others asked for
            spec = BENCH[name]
            rows = [bench_picker.take_sized(s.label, s.size) for s in spec.shots]
            if name in wanted:
                make_bench(name, spec, rows, bench_picker.images, args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
