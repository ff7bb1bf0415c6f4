"""Evaluate a model file on one FER-2013 split, through the same code the runtime uses.

    python -m training.evaluate --model models/card.json --data ../shared/data/fer2013.npz --split private

``--model`` takes a card (its .tflite and temperature are used), a .tflite, or
a .keras. Prints accuracy, macro-F1, per-class recall, the confusion matrix,
accuracy against FER+ majority labels and the calibration error. PrivateTest
is for the final report only: run it once per shipped model.
``--write-card`` stores the metrics, the date and this command in the card.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from training import data as fer_data
from training import metrics
from training.card import command_line, read_card, write_card


def load_logits_fn(model: Path, threads: int = 2, single: bool = False) -> tuple[Any, float, Path | None]:
    """(logits function, temperature, card path or None) for a card, .tflite or .keras.

    A card gives its predictor as the service runs it (flip-averaged, an ensemble,
    as the card says) unless ``single``: its first network, no test-time augmentation.
    """
    from fer_audio import emotion

    if model.suffix == ".json":
        card = emotion.load_card(model)
        if single:
            return emotion.LiteRTBackend(card.file("tflite"), threads).logits, card.temperature, model
        nets = [emotion.LiteRTBackend(card.file("tflite", k), threads).logits for k in range(card.networks)]
        return ((lambda x: emotion.predictor_logits(nets, x, card.flip_average, card.split_views)),
                card.temperature, model)
    if model.suffix == ".tflite":
        return emotion.LiteRTBackend(model, threads).logits, 1.0, None
    if model.suffix == ".keras":
        return emotion.KerasBackend(model).logits, 1.0, None
    raise SystemExit(f"{model}: expected card.json, .tflite or .keras")


def predict_logits(logits_fn: Any, images: np.ndarray, batch: int = 256) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch, :, :, None].astype(np.float32)
        out.append(logits_fn(x))
    return np.concatenate(out)


def report(logits: np.ndarray, y: np.ndarray, temperature: float,
           votes: np.ndarray | None) -> dict[str, Any]:
    n = len(fer_data.LABELS)
    probs = metrics.softmax(logits, temperature)
    pred = probs.argmax(axis=1)
    cm = metrics.confusion_matrix(y, pred, n)
    result: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": metrics.accuracy(cm),
        "macro_f1": metrics.macro_f1(cm),
        "per_class_recall": dict(zip(fer_data.LABELS, map(float, metrics.per_class_recall(cm)), strict=True)),
        "confusion_matrix": cm.tolist(),
        "ece": metrics.expected_calibration_error(probs, y),
        "ece_uncalibrated": metrics.expected_calibration_error(metrics.softmax(logits), y),
    }
    if votes is not None:
        major = fer_data.ferplus_majority(votes)
        keep = major >= 0
        result["ferplus_majority_accuracy"] = float((pred[keep] == major[keep]).mean())
        result["ferplus_rows"] = int(keep.sum())
    return result


def format_report(name: str, r: dict[str, Any]) -> str:
    lines = [
        f"{name}: {r['n']} faces",
        f"accuracy {100 * r['accuracy']:.2f}%  macro-F1 {100 * r['macro_f1']:.2f}%  "
        f"ECE {100 * r['ece']:.2f}% (uncalibrated {100 * r['ece_uncalibrated']:.2f}%)",
    ]
    if "ferplus_majority_accuracy" in r:
        lines.append(f"FER+ majority-label accuracy {100 * r['ferplus_majority_accuracy']:.2f}% "
                     f"({r['ferplus_rows']} faces with a clear majority)")
    lines.append("recall: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["per_class_recall"].items()))
    lines.append("confusion matrix (rows true, columns predicted): " + " ".join(fer_data.LABELS))
    for label, row in zip(fer_data.LABELS, r["confusion_matrix"], strict=True):
        lines.append(f"  {label:>8} " + " ".join(f"{v:5d}" for v in row))
    return "\n".join(lines)


def plot_confusion(cm: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(fer_data.LABELS)), fer_data.LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(fer_data.LABELS)), fer_data.LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(j, i, f"{cm[i, j]}\n{100 * norm[i, j]:.0f}%", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", choices=sorted(fer_data.SPLIT_CODES), default="public")
    ap.add_argument("--json", type=Path, help="also write the metrics here")
    ap.add_argument("--plot", type=Path, help="write a confusion-matrix PNG here")
    ap.add_argument("--write-card", action="store_true", help="store the metrics in the model card")
    ap.add_argument("--predictor", action="store_true",
                    help="the shipped predictor as the service runs it (flip-averaged when the card says so); "
                         "default: the single model, no test-time augmentation")
    args = ap.parse_args(argv)

    logits_fn, temperature, card_path = load_logits_fn(args.model, single=not args.predictor)
    ds = fer_data.load(args.data).split(args.split)
    logits = predict_logits(logits_fn, ds.images)
    r = report(logits, ds.labels.astype(np.int64), temperature, ds.ferplus_votes)
    split_name = fer_data.USAGES[fer_data.SPLIT_CODES[args.split]]
    print(format_report(f"{args.model} on {split_name}", r))
    command = command_line("training.evaluate", argv)
    r.update({"split": split_name, "date": dt.date.today().isoformat(), "command": command,
              "temperature": temperature, "predictor": "card" if args.predictor else "single model"})
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    if args.plot:
        plot_confusion(np.array(r["confusion_matrix"]), args.plot,
                       f"{split_name}: {100 * r['accuracy']:.1f}% accuracy")
    if args.write_card:
        if card_path is None:
            raise SystemExit("--write-card needs --model to be a card.json")
        card = read_card(card_path)
        # metrics.<split> is the single model (the number the issue counts); the predictor's
        # own, flip-averaged or not, sits beside it in metrics.predictor.<split>.
        stored = card.setdefault("metrics", {})
        (stored.setdefault("predictor", {}) if args.predictor else stored)[args.split] = r
        write_card(card_path, card)
        print(f"metrics written to {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
