"""Every full schedule of the shipped recipe, kept in the card: the evidence of a plateau.

    python -m training.schedules --run ~/fer-audio-runs/resnet18h_s2 [--run DIR ...] [--card models/card.json]

A schedule is one run of a recipe from random weights through its whole
learning-rate schedule (one ``--seed``). The shipped card keeps the curve of the
network it ships (its schedule and the fine-tune after it, ``training.export``);
this keeps the curve of every schedule of the same recipe beside it, shipped or not,
finished or still training, so that whether training has plateaued can be read
from the card, and a schedule's curve outlives a machine that loses its run folder.
It reads only a run's logs (``history.csv``, ``train_meta.json``): no TensorFlow,
no data, a few milliseconds, so it can run while training holds the CPU.
Re-recording a seed replaces its entry. ``training.card_tables`` renders the table
(``<!-- card:schedules -->``); ``models/schedules.png`` plots the curves together.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from training.card import command_line, read_card, write_card

# How many epochs at the end of a schedule say whether it has plateaued: their spread,
# and how much their best gained over the best before them.
LAST = 20


class ScheduleError(ValueError):
    """A run folder that is not a whole schedule of the card's recipe."""


def record(run: Path, recipe: str | None, argv: list[str] | None = None) -> dict[str, Any]:
    """The card's entry for the schedule trained in ``run`` (as far as it has gone)."""
    meta_file, history = run / "train_meta.json", run / "history.csv"
    for f in (meta_file, history):
        if not f.is_file():
            raise ScheduleError(f"{run}: no {f.name}: not a run folder of training.train")
    meta = json.loads(meta_file.read_text())
    if meta.get("init_from") or meta.get("start_epoch"):
        raise ScheduleError(f"{run}: started from {meta.get('init_from')} after epoch {meta.get('start_epoch') or 0}, "
                            "not from random weights: record the run that began the schedule")
    if meta.get("teachers"):
        raise ScheduleError(f"{run}: taught by {meta['teachers'].get('specs')} (--teacher): a student of other "
                            "networks, not a schedule of the recipe on its own")
    if recipe is not None and meta.get("recipe") != recipe:
        raise ScheduleError(f"{run}: recipe {meta.get('recipe')!r}, and the card's model was trained by {recipe!r}")
    h = np.atleast_1d(np.genfromtxt(history, delimiter=",", names=True))
    epochs = h["epoch"].astype(int).tolist()
    if epochs != list(range(len(epochs))):
        raise ScheduleError(f"{run}: history.csv's epochs are not 0, 1, 2 ... in order")
    acc = [round(float(v), 4) for v in h["val_accuracy"]]
    peak = meta.get("peak_lr") or meta.get("lr")
    lr_end = float(h["lr"][-1]) if "lr" in (h.dtype.names or ()) else None
    return {
        "seed": meta.get("seed"), "recipe": meta.get("recipe"), "precision": meta.get("precision"),
        "schedule_epochs": meta.get("schedule_epochs") or meta.get("epochs"), "epochs": len(acc),
        "finished": bool(meta.get("finished")),
        "best_epoch": int(np.argmax(acc)) + 1, "best_public_accuracy": max(acc),
        "public_accuracy": acc,
        "lr_fraction_of_peak": round(lr_end / peak, 3) if lr_end is not None and peak else None,
        "median_images_per_second": meta.get("median_images_per_second"),
        "train_command": meta.get("command"),
        "recorded": dt.date.today().isoformat(), "command": command_line("training.schedules", argv),
    }


def updated(schedules: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """``schedules`` with ``entry`` in place of the same seed's, or after them (the order they began)."""
    seeds = [s.get("seed") for s in schedules]
    if entry.get("seed") in seeds:
        i = seeds.index(entry.get("seed"))
        return [*schedules[:i], entry, *schedules[i + 1:]]
    return [*schedules, entry]


def plateau(acc: list[float], last: int = LAST) -> dict[str, float] | None:
    """The last ``last`` epochs' lowest and highest accuracy, and their best's gain over the best
    before them; None while the schedule is shorter than twice that (nothing to compare yet)."""
    if len(acc) < 2 * last:
        return None
    tail, head = acc[-last:], acc[:-last]
    return {"low": min(tail), "high": max(tail), "gain": max(tail) - max(head)}


def plot(schedules: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for s in schedules:
        acc = np.asarray(s["public_accuracy"]) * 100
        state = "finished" if s.get("finished") else "training"
        ax.plot(np.arange(1, len(acc) + 1), acc, "-", label=f"seed {s.get('seed')} ({len(acc)} of "
                f"{s.get('schedule_epochs')} epochs, {state}; best {acc.max():.1f}%)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("PublicTest accuracy, %")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, action="append", required=True,
                    help="a run folder of training.train that began a schedule (repeat for more)")
    ap.add_argument("--card", type=Path, default=Path("models/card.json"))
    ap.add_argument("--no-plot", action="store_true", help="leave schedules.png as it is")
    args = ap.parse_args(argv)
    try:
        card = read_card(args.card)
    except (OSError, ValueError) as e:
        print(f"training.schedules: {args.card}: {e}", file=sys.stderr)
        return 2
    recipe = (card.get("training") or {}).get("recipe")
    schedules = list(card.get("schedules") or [])
    try:  # every run is checked before the card is touched
        entries = [record(run, recipe, argv if argv is not None else sys.argv[1:]) for run in args.run]
    except (OSError, ValueError) as e:
        print(f"training.schedules: {e}", file=sys.stderr)
        return 2
    for e in entries:
        schedules = updated(schedules, e)
        print(f"seed {e['seed']}: {e['epochs']} of {e['schedule_epochs']} epochs, best PublicTest "
              f"{100 * e['best_public_accuracy']:.2f}% at epoch {e['best_epoch']}"
              + ("" if e["finished"] else " (still training)"))
    card["schedules"] = schedules
    write_card(args.card, card)
    if not args.no_plot:
        plot(schedules, args.card.parent / "schedules.png",
             f"{recipe}: every schedule, PublicTest after each epoch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
