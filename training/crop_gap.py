"""How much accuracy is lost between FER's own framing and the runtime's detector crops?

    python -m training.crop_gap --data ../shared/data/fer2013.npz --tune public --report private

Each test face is placed into a 640×480 frame (scaled 120–260 px, shifted,
on a textured background, as a camera frame would hold it); the runtime's
detector finds it, the runtime's crop function cuts it out with a candidate
margin, and the shipped model classifies it. The "direct" path feeds the
original 48×48 face. The margin is chosen on PublicTest and the chosen one is
reported on PrivateTest; ``--write-card`` stores the result and the margin.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_audio.config import DetectorConfig, ModelConfig
from fer_audio.detection import make_detector
from fer_audio.emotion import load_model
from fer_audio.preprocess import face_to_input
from fer_audio.types import Box
from training import data as fer_data
from training.card import command_line, update_card

MARGINS = (-0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15, 0.2, 0.3)


def place(face: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Box]:
    """Put one face into a camera-sized frame; return the frame and where the face is."""
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = 80 + 60 * (xx / w) + rng.normal(0, 6, (h, w))
    s = int(rng.integers(120, 261))
    x0, y0 = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
    frame = np.clip(bg, 0, 255).astype(np.uint8)
    frame[y0:y0 + s, x0:x0 + s] = cv2.resize(face, (s, s), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), Box(x0, y0, s, s)


def found(detector: Any, frame: np.ndarray, truth: Box, min_iou: float = 0.3) -> Box | None:
    """The detected box that is the placed face (best overlap, at least ``min_iou``), or None."""
    best = max(detector.detect(frame), key=truth.iou, default=None)
    return best if best is not None and truth.iou(best) >= min_iou else None


def placed_and_found(images: np.ndarray, detector: Any, rng: np.random.Generator,
                     roll_deg: float = 0.0) -> Iterator[tuple[int, np.ndarray, Box, Box]]:
    """Each face placed in a camera-sized frame (rolled ``roll_deg`` about its centre) and found.

    Yields (index, gray frame, placed box, detected box) for the faces the detector
    finds where they were put; the rest are skipped, so callers count them. One
    loop for the crop study, the rolled-face study and the real-photo probe, so they
    place, find and crop faces the same way.
    """
    for i, face in enumerate(images):
        frame, truth = place(face, rng)
        if roll_deg:
            centre = (truth.x + truth.w / 2, truth.y + truth.h / 2)
            frame = cv2.warpAffine(frame, cv2.getRotationMatrix2D(centre, roll_deg, 1.0), frame.shape[1::-1],
                                   borderMode=cv2.BORDER_REPLICATE)
        best = found(detector, frame, truth)
        if best is not None:
            yield i, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), truth, best


def study(images: np.ndarray, labels: np.ndarray, model: Any, detector: Any,
          seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    direct = model.predict_batch(images[..., None].astype(np.float32)).argmax(1)
    crops: dict[float, list[np.ndarray]] = {m: [] for m in MARGINS}
    found_idx: list[int] = []
    ious: list[float] = []
    for i, gray, truth, best in placed_and_found(images, detector, rng):
        found_idx.append(i)
        ious.append(truth.iou(best))
        for m in MARGINS:
            crops[m].append(face_to_input(gray, best, m))
    idx = np.array(found_idx)
    y = labels[idx]
    result: dict[str, Any] = {
        "faces": int(len(images)), "detected": int(len(idx)),
        "detection_rate": float(len(idx) / len(images)),
        "median_iou_with_placed_square": float(np.median(ious)) if ious else 0.0,
        "direct_accuracy_all": float((direct == labels).mean()),
        "direct_accuracy_detected": float((direct[idx] == y).mean()) if len(idx) else 0.0,
        "by_margin": {},
    }
    for m in MARGINS:
        batch = np.stack(crops[m])[..., None].astype(np.float32)
        pred = model.predict_batch(batch).argmax(1)
        result["by_margin"][str(m)] = float((pred == y).mean())
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--card", type=Path, default=ModelConfig().card)
    ap.add_argument("--tune", default="public", choices=["public"])
    ap.add_argument("--report", default="private", choices=["private", "public"])
    ap.add_argument("--write-card", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="first N faces of each split (quick checks)")
    args = ap.parse_args(argv)

    model = load_model(ModelConfig(card=args.card))
    detector = make_detector(DetectorConfig())
    ds = fer_data.load(args.data)
    out: dict[str, Any] = {}
    for split in (args.tune, args.report):
        part = ds.split(split)
        n = args.limit or len(part)
        r = study(part.images[:n], part.labels[:n].astype(np.int64), model, detector)
        out[split] = r
        print(f"{split}: detected {r['detected']}/{r['faces']} ({100 * r['detection_rate']:.1f}%), "
              f"direct accuracy on those {100 * r['direct_accuracy_detected']:.2f}%", flush=True)
        print("  margin -> accuracy through detector crops: " + ", ".join(
            f"{m}: {100 * a:.2f}%" for m, a in r["by_margin"].items()), flush=True)
    tuned = out[args.tune]["by_margin"]
    best_margin = float(max(tuned, key=lambda m: tuned[m]))
    rep = out[args.report]
    gap_before = rep["direct_accuracy_detected"] - rep["by_margin"][str(model.card.crop_margin)]
    gap_after = rep["direct_accuracy_detected"] - rep["by_margin"][str(best_margin)]
    print(f"chosen on {args.tune}: margin {best_margin}; gap on {args.report}: "
          f"{100 * gap_before:.2f} points at margin {model.card.crop_margin} → {100 * gap_after:.2f} at {best_margin}")
    if args.write_card:
        update_card(args.card, crop_study={
            **out, "previous_margin": model.card.crop_margin, "chosen_margin": best_margin,
            "chosen_on": args.tune, "gap_points_before": 100 * gap_before, "gap_points_after": 100 * gap_after,
            "date": dt.date.today().isoformat(),
            "command": command_line("training.crop_gap", argv),
        }, crop_margin=best_margin)
        print(f"crop margin {best_margin} written to {args.card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
