"""Choose each expression's enter threshold so that a cue of it is right at a stated precision.

    python -m training.thresholds --model models/card.json --data ../shared/data/fer2013.npz --write-card

Run it again whenever the model changes (a new card): the thresholds belong
to the weights, like the temperature, and live in the card beside them.

Why per class: the model's probabilities for sad and fear stay low even when
it is right, so one threshold for all either cues angry and happy faces that
are not, or never cues sad and fear at all. A held face gives the smoother
a steady probability, so the question per class ``c`` is: among faces whose
top label is ``c`` with probability at least ``t``, how many really show
``c`` (precision of a cue) and how many ``c`` faces get one (recall)? The
threshold is the lowest ``t`` on a 0.01 grid at which precision reaches the
target and stays there for every higher ``t`` that still cues at least
``--min-support`` faces (a lone lucky point does not count). A class that
never reaches it gets the ``t`` of its best precision, and the card says so.

The grid starts at ``FLOOR`` (0.50): a cue needs its expression at least as
likely as all the others together. Precision over all faces above ``t`` is
carried by the confident ones, so for happy, surprise and disgust the rule
alone went down to 0.30, where a steady face's smoothed top label may hold
three tenths of the probability: on the benchmark clips (epoch 125, replayed
by ``benchmarks/cue_precision.py``'s recordings) floors of 0.30 / 0.45 / 0.50 /
0.55 gave 3.2 / 2.8 / 2.0 / 1.2 unwanted cues a minute on the steady clips,
median onset 333 / 333 / 400 / 467 ms (target 400), and 6 / 4 / 4 / 4 wrong
cues for 36 / 36 / 36 / 37 of 42 changes cued on the ``changes`` clip.

Chosen on PublicTest (``--split public``, the default), like every other
choice; PrivateTest stays for the report. The runtime reads
``thresholds.enter`` from the card; ``[smoothing] enter_thresholds`` in the
config overrides any of them, ``card_thresholds = false`` ignores them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from training.card import command_line, update_card

FLOOR = 0.50
GRID = np.round(np.arange(FLOOR, 0.951, 0.01), 2)
DEFAULT_PRECISION = 0.70
DEFAULT_MIN_SUPPORT = 20


@dataclass(frozen=True)
class Choice:
    """One class's threshold and what it gives on the split it was chosen on."""

    label: str
    enter: float
    precision: float  # of cues: cued faces of this class that really show it
    recall: float     # faces of this class that get a cue
    cued: int         # faces that get a cue of this class
    reached: bool     # precision reached the target


def cue_stats(probs: np.ndarray, y: np.ndarray, k: int, t: float) -> tuple[float, float, int]:
    """(precision, recall, cued) of class ``k`` cues at threshold ``t``: top label k with p_k >= t."""
    cued = (probs.argmax(axis=1) == k) & (probs[:, k] >= t)
    n = int(cued.sum())
    hits = int((cued & (y == k)).sum())
    total = int((y == k).sum())
    return (hits / n if n else float("nan")), (hits / total if total else float("nan")), n


def choose(probs: np.ndarray, y: np.ndarray, labels: list[str], precision: float = DEFAULT_PRECISION,
           min_support: int = DEFAULT_MIN_SUPPORT, grid: np.ndarray = GRID) -> list[Choice]:
    """The threshold of every class (see the module docstring for the rule)."""
    out = []
    for k, label in enumerate(labels):
        rows = [(float(t), *cue_stats(probs, y, k, float(t))) for t in grid]
        usable = [r for r in rows if r[3] >= min_support]
        pick = None
        for i, r in enumerate(usable):
            if all(q[1] >= precision for q in usable[i:]):
                pick = r
                break
        reached = pick is not None
        if pick is None:
            pick = max(usable, key=lambda r: (r[1], -r[0])) if usable else rows[-1]
        t, p, rec, n = pick
        out.append(Choice(label, t, p, rec, n, reached))
    return out


def format_table(choices: list[Choice], probs: np.ndarray, y: np.ndarray, default: float,
                 precision: float) -> str:
    lines = [f"per-class enter thresholds for cue precision >= {100 * precision:.0f}%, "
             f"against one threshold of {default:.2f} for all:",
             f"  {'label':>8}  enter  precision  recall  cued  | at {default:.2f}: precision  recall  cued"]
    for k, c in enumerate(choices):
        p0, r0, n0 = cue_stats(probs, y, k, default)
        flag = "" if c.reached else "  (target not reachable: best precision)"
        lines.append(f"  {c.label:>8}  {c.enter:.2f}  {100 * c.precision:8.1f}%  {100 * c.recall:5.1f}%  "
                     f"{c.cued:4d}  |          {100 * p0:8.1f}%  {100 * r0:5.1f}%  {n0:4d}{flag}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from fer_audio.config import SmoothingConfig
    from training import data as fer_data
    from training import metrics
    from training.evaluate import load_logits_fn, predict_logits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="the model card (card.json)")
    ap.add_argument("--data", required=True, help="fer2013.npz, fer2013.csv or an image-folder tree")
    ap.add_argument("--split", choices=sorted(fer_data.SPLIT_CODES), default="public")
    ap.add_argument("--precision", type=float, default=DEFAULT_PRECISION, help="target precision of a cue")
    ap.add_argument("--min-support", type=int, default=DEFAULT_MIN_SUPPORT,
                    help="a threshold must cue at least this many faces to count")
    ap.add_argument("--write-card", action="store_true", help="store the thresholds in the card")
    args = ap.parse_args(argv)
    if args.model.suffix != ".json":
        print(f"fer-audio: error: {args.model}: --model must be a card.json", file=sys.stderr)
        return 2
    if not 0 < args.precision < 1:
        print(f"fer-audio: error: --precision {args.precision}: must be between 0 and 1", file=sys.stderr)
        return 2

    logits_fn, temperature, card_path = load_logits_fn(args.model)
    ds = fer_data.load(args.data).split(args.split)
    probs = metrics.softmax(predict_logits(logits_fn, ds.images), temperature)
    y = ds.labels.astype(np.int64)
    labels = list(fer_data.LABELS)
    choices = choose(probs, y, labels, args.precision, args.min_support)
    split_name = fer_data.USAGES[fer_data.SPLIT_CODES[args.split]]
    default = SmoothingConfig().enter_threshold
    print(f"{args.model} on {split_name} ({len(y)} faces)")
    print(format_table(choices, probs, y, default, args.precision))
    if args.write_card:
        assert card_path is not None
        update_card(card_path, thresholds={
            "enter": {c.label: c.enter for c in choices},
            "target_precision": args.precision,
            "chosen_on": split_name,
            "rule": f"lowest threshold on a 0.01 grid ({GRID[0]:.2f}-{GRID[-1]:.2f}) at which the precision of a cue "
                    "(top label c with p_c >= t) reaches the target and stays there for every higher "
                    f"threshold cueing at least {args.min_support} faces; else the threshold of the best precision",
            "per_class": {c.label: {k: v for k, v in asdict(c).items() if k != "label"} for c in choices},
            "date": dt.date.today().isoformat(),
            "command": command_line("training.thresholds", argv),
        })
        print(f"thresholds written to {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
