"""False or repeated cues per minute on steady faces, and missed changes, against the raw per-frame argmax.

    python benchmarks/steadiness.py

Clips (benchmarks/clips, ground truth beside each; see README.md):
  held         three people, each holding a clear expression for up to 20 s, three times
  talk_swap    a "talking" neutral face: a different clear-neutral PrivateTest face every 3 s, one slot
  talk_wobble  two neutral faces for 30 s with per-frame jitter, flicker, noise and JPEG-grade compression

No video of real talking faces exists here; the two talk clips approximate
the small, constant changes of a face in conversation (see README.md).

fer-audio's side is every cue the real pipeline played (default config,
15 fps). The baseline is what a `fer`/deepface user gets by announcing every
change of the model's per-frame top label, on exactly the same frames and
model outputs; it is shown with neutral announced ("raw argmax") and with
neutral silent like fer-audio's default ("raw, neutral silent").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Run, bench_config, clip, quiet_logs, table, timeline, write_result  # noqa: E402
from evaluate import Score, raw_argmax, run_clip, score  # noqa: E402

CLIPS = ("held", "talk_swap", "talk_wobble")
GOAL_PER_MIN = 0.2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--fps", type=float, default=15.0, help="analysis rate (max_fps)")
    ap.add_argument("--seconds", type=float, default=0.0, help="only the first seconds of each clip (0: all)")
    ap.add_argument("--name", default="steadiness")
    args = ap.parse_args(argv)
    run = Run(args.name)
    print(run.note())

    results: dict[str, Any] = {}
    rows: list[list[Any]] = []
    totals: dict[str, Score] = {}
    for name in [c.strip() for c in args.clips.split(",") if c.strip()]:
        tl = timeline(name)
        until = args.seconds if args.seconds > 0 else None
        cfg = bench_config(clip(name), max_fps=args.fps)
        with quiet_logs():
            r = run_clip(cfg, max_seconds=until)
        systems = {
            "fer-audio": r.heard,
            "raw argmax": raw_argmax(r.frames, r.labels),
            "raw, neutral silent": raw_argmax(r.frames, r.labels, silent=("neutral",)),
        }
        results[name] = {"frames": r.stats.analysed, "presenter": r.presenter}
        for who, heard in systems.items():
            sc = score(heard, tl, until=until)
            results[name][who] = sc.as_dict()
            t = totals.setdefault(who, Score())
            for f in ("correct", "repeated", "false", "expected", "missed"):
                setattr(t, f, getattr(t, f) + getattr(sc, f))
            t.minutes += sc.minutes
            t.face_minutes += sc.face_minutes
            rows.append([name, who, sc.minutes, sc.face_minutes, sc.correct, sc.repeated, sc.false,
                         sc.unwanted_per_min, sc.unwanted / sc.face_minutes if sc.face_minutes else 0.0,
                         f"{sc.missed}/{sc.expected}"])
        print(f"{name}: {r.stats.analysed} frames; presenter dropped {r.presenter['dropped_rate']} cue(s) "
              f"for the rate limit and {r.presenter['dropped_stale']} as stale")
    for who, t in totals.items():
        rows.append(["all", who, t.minutes, t.face_minutes, t.correct, t.repeated, t.false, t.unwanted_per_min,
                     t.unwanted / t.face_minutes if t.face_minutes else 0.0, f"{t.missed}/{t.expected}"])
    print()
    print(f"announcements on steady faces, {args.fps:g} fps analysis")
    print(table(["clip", "system", "min", "face-min", "correct", "repeated", "false", "unwanted/min",
                 "per face-min", "missed"], rows))
    ours = totals.get("fer-audio")
    if ours is not None and ours.minutes:
        ok = ours.unwanted_per_min <= GOAL_PER_MIN
        print(f"fer-audio: {ours.unwanted_per_min:.2f} false or repeated cues per minute "
              f"({'meets' if ok else 'misses'} the {GOAL_PER_MIN:g}/min goal), {ours.missed} of {ours.expected} "
              "changes missed")
        raw = totals["raw, neutral silent"]
        print(f"raw argmax with neutral silent: {raw.unwanted_per_min:.1f} per minute, {raw.missed} missed")
    print(run.note())
    write_result(args.name, run, {"fps": args.fps, "clips": results,
                                  "totals": {w: t.as_dict() for w, t in totals.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
