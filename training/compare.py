"""Trained networks side by side, before any ship: three judges of "right", each face two ways.

    python -m training.compare models/fer_resnet18h.keras ~/fer-audio-runs/ft_ferplus:last \\
        --data ../shared/data/fer2013.npz --real ../shared/data/realfaces96.npz [--average 0.3,0.5]

A candidate is a ``.keras`` file, a run folder (its ``best_train.keras``: the epoch
chosen on PublicTest) or ``RUN:last`` (the weight average after the run's last epoch,
from its saved state). Each is scored on PublicTest against its FER-2013 label (one
annotator: what ships are chosen by) and against the FER+ majority of ten annotators,
and on the real press photos (``realfaces96.npz``, resized to 48x48), with one look
and flip-averaged, plus the per-expression recall where the labels disagree most.
``--average W`` also scores the first two candidates' logits averaged (W for the
first): an ensemble, and the two views split between them (the first sees the face,
the second its mirror image), which costs what one flip-averaged network does.
PrivateTest is never read. Float Keras networks: the shipped int8 file scores a few
tenths lower (the model card's export table).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from training import data as fer_data
from training.evaluate import predict_logits, report

RECALLS = ("fear", "sad", "neutral", "surprise")


def load_network(spec: str) -> Any:
    """The Keras network a candidate names (see the module docstring)."""
    import keras

    last = spec.endswith(":last")
    path = Path(spec[: -len(":last")] if last else spec)
    if path.suffix == ".keras":
        return keras.models.load_model(path, compile=False)
    if not last:
        return keras.models.load_model(path / "best_train.keras", compile=False)
    from training.train import float32_copy

    meta = json.loads((path / "train_meta.json").read_text())
    backup = path / "backup"
    keras.config.set_dtype_policy(meta["precision"])  # the saved state's own policy
    try:
        model = keras.models.load_model(backup / "model.keras")
        with np.load(backup / "ema.npz") as z:
            model.set_weights([z[f"w{i}"] for i in range(len(model.weights))])
    finally:
        keras.config.set_dtype_policy("float32")
    return float32_copy(model, meta["arch"])


def views(net: Any, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits of each face and of its mirror image."""
    def fn(x: np.ndarray) -> np.ndarray:
        return np.asarray(net(x, training=False), np.float32)
    return predict_logits(fn, images), predict_logits(fn, images[:, :, ::-1].copy())


def row(name: str, public: np.ndarray, real: np.ndarray | None, pub: fer_data.FerData,
        real_labels: np.ndarray | None) -> str:
    """One markdown row: FER-2013 and FER+ accuracy on PublicTest, the real photos, recalls."""
    r = report(public, pub.labels, 1.0, pub.ferplus_votes)
    cells = [name, f"{100 * r['accuracy']:.2f}", f"{100 * r['ferplus_majority_accuracy']:.2f}"
             if "ferplus_majority_accuracy" in r else "—"]
    cells.append("—" if real is None or real_labels is None else f"{100 * (real.argmax(1) == real_labels).mean():.2f}")
    cells += [f"{100 * r['per_class_recall'][k]:.1f}" for k in RECALLS]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidates", nargs="+", help="a .keras file, a run folder, or RUN:last")
    ap.add_argument("--data", required=True, help="fer2013.npz (PublicTest, with FER+ votes)")
    ap.add_argument("--real", type=Path, default=None, help="realfaces96.npz")
    ap.add_argument("--average", default="", help="weights of the first candidate, e.g. 0.3,0.5: the first "
                    "two candidates' logits averaged")
    args = ap.parse_args(argv)
    try:
        weights = [float(w) for w in args.average.split(",") if w.strip()]
    except ValueError:
        print(f"training.compare: --average {args.average!r}: expected weights like 0.3,0.5", file=sys.stderr)
        return 2
    if weights and (len(args.candidates) < 2 or not all(0 <= w <= 1 for w in weights)):
        print("training.compare: --average needs two candidates and weights from 0 to 1", file=sys.stderr)
        return 2
    pub = fer_data.load(args.data).split("public")
    real = real_y = None
    if args.real:
        import cv2

        with np.load(args.real) as d:
            real = np.stack([cv2.resize(f, (48, 48), interpolation=cv2.INTER_AREA) for f in d["images"]])
            real_y = d["labels"].astype(np.int64)
    scored = []
    for spec in args.candidates:
        try:
            net = load_network(spec)
        except (OSError, ValueError, KeyError) as e:
            print(f"training.compare: {spec}: not a network to load ({e})", file=sys.stderr)
            return 2
        scored.append((spec, views(net, pub.images), None if real is None else views(net, real)))
    print("| candidate | PublicTest, FER-2013 label | PublicTest, FER+ majority | real photos | "
          + " | ".join(f"recall {k}" for k in RECALLS) + " |")
    print("|---" + "|---:" * (3 + len(RECALLS)) + "|")
    for spec, (p, pf), rv in scored:
        print(row(f"{spec}, one look", p, None if rv is None else rv[0], pub, real_y))
        print(row(f"{spec}, flip-averaged", (p + pf) / 2, None if rv is None else (rv[0] + rv[1]) / 2, pub, real_y))
    for w in weights:
        (_, (a, _af), ra), (_, (b, bf), rb) = scored[:2]
        print(row(f"average, {w:g} first: one look each", w * a + (1 - w) * b,
                  None if ra is None or rb is None else w * ra[0] + (1 - w) * rb[0], pub, real_y))
        print(row(f"average, {w:g} first: face to the first, mirror to the second", w * a + (1 - w) * bf,
                  None if ra is None or rb is None else w * ra[0] + (1 - w) * rb[1], pub, real_y))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
