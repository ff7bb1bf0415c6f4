"""Which smoothing setting trades latency against steadiness, and by how much.

    python benchmarks/tradeoff.py [--fps 15]

The latency and steadiness clips run once through the real pipeline (default
config) while a tap records every frame's observations (track, time, model
probabilities). Those recordings are then replayed through the real
Smoother, CuePlanner and CuePresenter for a grid of smoothing settings: the
detector and model are deterministic on a file, so a replay gives the cues a
full run with that setting would give, at a fraction of the cost. Latency is
the cue time minus the ground-truth onset (the same quantity latency.py reads
from the WAV; latency.py checks the two agree). Nothing in fer_audio/config.py
is changed: the table is for the lead to choose defaults from.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Run, bench_config, clip, quiet_logs, table, timeline, write_result  # noqa: E402
from evaluate import Heard, run_clip, score  # noqa: E402

from fer_audio.config import Config, SmoothingConfig  # noqa: E402
from fer_audio.types import Observation  # noqa: E402

STEADY = ("held", "talk_swap", "talk_wobble")
HALF_LIVES = (0.1, 0.15, 0.25)
DWELLS = (0.1, 0.2, 0.4)
ENTERS = (0.45, 0.55)


def replay(frames: Sequence[tuple[float, Sequence[Observation]]], labels: Sequence[str], cfg: Config,
           card_thresholds: Mapping[str, float] | None = None, pending: bool = True) -> list[Heard]:
    """The cues the real smoother, planner and presenter give for recorded observations.

    ``card_thresholds``: the model card's per-expression enter thresholds (as
    the service uses them); ``pending``: hand the presenter the scene, as the
    pipeline does, so a rate-limited cue waits while true (False: the old
    presenter, which dropped it).
    """
    from fer_audio.cues import CuePlanner, CuePresenter
    from fer_audio.smoothing import Smoother

    sm = Smoother(cfg.smoothing, labels, card_thresholds)
    planner = CuePlanner(cfg.cues, cfg.audio)
    presenter = CuePresenter(cfg.audio)
    heard = []
    for t, obs in frames:
        events = sm.step(t, obs)
        for cue in presenter.present(planner.plan(events), t, sm.holding() if pending else None):
            heard.append(Heard(t, cue.key, cue.pan / cfg.audio.pan_width, cue.track))
    return heard


def grid(default: SmoothingConfig, enters: Sequence[float] = ENTERS) -> list[dict[str, float]]:
    out = []
    for hl, dwell, enter in itertools.product(HALF_LIVES, DWELLS, enters):
        exit_ = min(default.exit_threshold, enter - 0.1)
        out.append({"half_life_s": hl, "min_dwell_s": dwell, "enter_threshold": enter, "exit_threshold": exit_})
    d = {"half_life_s": default.half_life_s, "min_dwell_s": default.min_dwell_s,
         "enter_threshold": default.enter_threshold, "exit_threshold": default.exit_threshold}
    if d not in out:
        out.insert(0, d)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--seconds", type=float, default=0.0, help="only the first seconds of each clip (0: all)")
    ap.add_argument("--name", default="tradeoff")
    ap.add_argument("--no-card-thresholds", action="store_true",
                    help="one enter threshold for all (the grid's), not the model card's per expression")
    args = ap.parse_args(argv)
    run = Run(args.name)
    print(run.note())
    until = args.seconds if args.seconds > 0 else None
    recorded: dict[str, Any] = {}
    for name in ("latency", *STEADY):
        with quiet_logs():
            r = run_clip(bench_config(clip(name), max_fps=args.fps), max_seconds=until)
        recorded[name] = r
        print(f"recorded {name}: {r.stats.analysed} frames")

    base = Config()
    from fer_audio.emotion import load_card

    card = None if args.no_card_thresholds else load_card(base.model.card).enter_thresholds or None
    if card:
        print("enter thresholds from the model card: " + ", ".join(f"{k} {v:.2f}" for k, v in card.items()))
    rows = []
    results = []
    # With the card's thresholds the grid's enter column only applies to labels the card leaves out.
    for setting in grid(base.smoothing, ENTERS if card is None else (base.smoothing.enter_threshold,)):
        cfg = base.model_copy(update={"smoothing": base.smoothing.model_copy(update=setting)})
        lat = score(replay(recorded["latency"].frames, recorded["latency"].labels, cfg, card), timeline("latency"),
                    until=until)
        lats = [x["latency_s"] for x in lat.latencies]
        unwanted = missed = expected = 0
        minutes = 0.0
        for name in STEADY:
            sc = score(replay(recorded[name].frames, recorded[name].labels, cfg, card), timeline(name), until=until)
            unwanted += sc.unwanted
            missed += sc.missed
            expected += sc.expected
            minutes += sc.minutes
        med = statistics.median(lats) if lats else float("nan")
        is_default = setting["half_life_s"] == base.smoothing.half_life_s and \
            setting["min_dwell_s"] == base.smoothing.min_dwell_s and \
            setting["enter_threshold"] == base.smoothing.enter_threshold
        results.append({"smoothing": setting, "default": is_default, "latency_median_s": med,
                        "onsets_cued": lat.correct, "onsets": lat.expected, "latency_clip_false": lat.false,
                        "steady_unwanted_per_min": unwanted / minutes if minutes else None,
                        "steady_missed": missed, "steady_expected": expected})
        rows.append([setting["half_life_s"], setting["min_dwell_s"], setting["enter_threshold"],
                     setting["exit_threshold"], 1000 * med, f"{lat.correct}/{lat.expected}", lat.false,
                     unwanted / minutes if minutes else 0.0, f"{missed}/{expected}", "default" if is_default else ""])
    print()
    print(f"smoothing settings replayed on recorded model outputs, {args.fps:g} fps")
    print(table(["half_life_s", "min_dwell_s", "enter", "exit", "latency ms", "onsets cued", "false (latency)",
                 "steady unwanted/min", "steady missed", ""], rows))
    print(run.note())
    write_result(args.name, run, {"fps": args.fps, "settings": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
