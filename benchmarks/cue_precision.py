"""Per-expression precision and recall of the cues heard, before and after issue 13.

    python benchmarks/cue_precision.py [--fps 15] [--seconds 0] [--clips latency,held,...]
    python benchmarks/cue_precision.py --clips changes --name cue_precision_changes

By default the latency clip and the three steady clips run once through the real
pipeline while a tap records every frame's observations (as tradeoff.py
does); the recordings are replayed through the real Smoother, CuePlanner and
CuePresenter four ways: one enter threshold for all and the old presenter
(a rate-limited cue dropped: before), per-expression thresholds from the
model card, the presenter that keeps a true cue waiting, and both (after).

The ``changes`` clip (42 expression onsets among three people) is scored on its
own: it has enough cues per expression to compare models, which the default
four (about ten faces) do not. Median onset latency comes from every clip that
is not a steady one; unwanted cues per minute only from the steady ones.

Per expression, over the clips scored: a cue is *right* when the face in its
slot shows that expression then (a repeat of a right cue is still right);
*precision* = right / cues; *recall* = expression changes to it that got a
right cue / all such changes (evaluate.score's rules: neutral is silent).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Run, bench_config, clip, quiet_logs, table, timeline, write_result  # noqa: E402
from evaluate import run_clip, score  # noqa: E402
from tradeoff import STEADY, replay  # noqa: E402

from fer_audio.config import LABELS, Config  # noqa: E402
from fer_audio.emotion import load_card  # noqa: E402

CLIPS = ("latency", *STEADY)
VARIANTS = (("before: one threshold, drop", False, False), ("card thresholds", True, False),
            ("waiting cues", False, True), ("after: both", True, True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--seconds", type=float, default=0.0, help="only the first seconds of each clip (0: all)")
    ap.add_argument("--name", default="cue_precision")
    ap.add_argument("--clips", default=",".join(CLIPS), help="comma-separated benchmark clips to score")
    ap.add_argument("--card", type=Path, default=None, help="another model's card, to compare it (default: shipped)")
    ap.add_argument("--thresholds", default="",
                    help="enter thresholds to use instead of the card's, e.g. sad=0.45,fear=0.40 (what a user's "
                         "[smoothing] enter_thresholds would do)")
    args = ap.parse_args(argv)
    try:
        override = {k.strip(): float(v) for k, v in (kv.split("=") for kv in args.thresholds.split(",") if kv)}
    except ValueError:
        raise SystemExit(f"--thresholds: {args.thresholds!r}: expected label=value pairs, e.g. sad=0.45") from None
    unknown = sorted(set(override) - set(LABELS))
    if unknown:
        raise SystemExit(f"--thresholds: {unknown[0]!r} is not an expression; expected one of {', '.join(LABELS)}")
    base = Config()
    if args.card is not None:
        base = base.model_copy(update={"model": base.model.model_copy(update={"card": args.card})})
    clips = [c for c in args.clips.split(",") if c]
    run = Run(args.name)
    print(run.note())
    until = args.seconds if args.seconds > 0 else None
    recorded: dict[str, Any] = {}
    for name in clips:
        with quiet_logs():
            recorded[name] = run_clip(bench_config(clip(name), max_fps=args.fps, base=base), max_seconds=until)
        print(f"recorded {name}: {recorded[name].stats.analysed} frames")
    card = {**load_card(base.model.card).enter_thresholds, **override}
    print(("card thresholds" + (f" with {args.thresholds}" if override else "") + ": ")
          + (", ".join(f"{k} {v:.2f}" for k, v in card.items()) or "none"))

    results: dict[str, Any] = {}
    for title, use_card, pending in VARIANTS:
        cues: Counter[str] = Counter()
        wrong: Counter[str] = Counter()
        hits: Counter[str] = Counter()
        missed: Counter[str] = Counter()
        unwanted, minutes, lats = 0, 0.0, []
        for name in clips:
            rec = recorded[name]
            heard = replay(rec.frames, rec.labels, base, card if use_card else None, pending)
            sc = score(heard, timeline(name), until=until)
            end = until if until is not None else float(timeline(name)["duration"])
            cues.update(h.label for h in heard if h.t <= end)
            wrong.update(f["label"] for f in sc.false_list)
            hits.update(x["label"] for x in sc.latencies)
            missed.update(m["label"] for m in sc.missed_list)
            if name not in STEADY:
                lats += [x["latency_s"] for x in sc.latencies]
            else:
                unwanted += sc.unwanted
                minutes += sc.minutes
        per = {}
        for label in sorted(set(cues) | set(missed)):
            n, right = cues[label], cues[label] - wrong[label]
            changes = hits[label] + missed[label]
            per[label] = {"cues": n, "right": right, "precision": right / n if n else None,
                          "changes": changes, "cued_changes": hits[label],
                          "recall": hits[label] / changes if changes else None}
        results[title] = {"per_label": per, "steady_unwanted_per_min": unwanted / minutes if minutes else None,
                          "latency_median_s": statistics.median(lats) if lats else None,
                          "onsets_cued": len(lats)}

    labels = sorted({lb for r in results.values() for lb in r["per_label"]})
    print()
    print(f"precision / recall of cues per expression, {', '.join(clips)} at {args.fps:g} fps "
          "(right/cues, cued changes/changes)")
    rows = []
    for title, r in results.items():
        cells = []
        for lb in labels:
            c = r["per_label"].get(lb)
            if c is None:
                cells.append("-")
                continue
            p = f"{100 * c['precision']:.0f}%" if c["precision"] is not None else "-"
            rc = f"{100 * c['recall']:.0f}%" if c["recall"] is not None else "-"
            cells.append(f"{p} ({c['right']}/{c['cues']}) / {rc} ({c['cued_changes']}/{c['changes']})")
        med = r["latency_median_s"]
        unwanted = r["steady_unwanted_per_min"]
        rows.append([title, *cells, f"{1000 * med:.0f}" if med is not None else "-",
                     f"{unwanted:.2f}" if unwanted is not None else "-"])
    print(table(["variant", *labels, "median onset ms", "steady unwanted/min"], rows))
    print(run.note())
    write_result(args.name, run, {"fps": args.fps, "clips": clips, "card_thresholds": card, "variants": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
