"""Expression onset to cue audio: how long after a face changes does its earcon start?

    python benchmarks/latency.py [--rates 15,30]

The clip (benchmarks/clips/latency.mp4, 30 fps) holds a neutral face, then
the same slot switches to a clear expression at a known time, ten times
(ground truth in latency.json). It runs through the real pipeline into the
WAV sink at each analysis rate (max_fps). WavSink places every cue on the
source timeline, so the onset of each earcon in the WAV, found by
cross-correlation with the earcon files, minus the ground-truth onset, is
the pipeline's own latency: the smoothing and dwell, quantised by the frame
rate. A live camera adds the time to analyse a frame (measured in this same
run) and the output device's buffer (audio.DEVICE_LATENCY_S); capture delay
of a real camera is not included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Run, bench_config, clip, quiet_logs, table, timeline, write_result  # noqa: E402
from evaluate import Heard, earcon_onsets, run_clip, score, segment_confidence  # noqa: E402

GOAL_S = 0.400
CLIP = "latency"


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def measure(rate: float, tmp: Path, smoothing: dict[str, float] | None = None,
            seconds: float | None = None) -> dict[str, Any]:
    from fer_audio.sinks import DEVICE_LATENCY_S

    wav = tmp / f"latency_{rate:g}.wav"
    cfg = bench_config(clip(CLIP), max_fps=rate, output="wav", wav_path=wav, smoothing=smoothing)
    with quiet_logs():
        r = run_clip(cfg, max_seconds=seconds)
    tl = timeline(CLIP)
    earcons = {k: Path(c.earcon) for k, c in cfg.cues.items()
               if c.mode in ("earcon", "both") and c.earcon is not None and k in r.labels}
    found = earcon_onsets(wav, earcons)
    # Each earcon found in the WAV must be a cue the pipeline played at that time: this checks the method.
    heard: list[Heard] = []
    unmatched = 0
    worst_dt = 0.0
    for t, label, _ncc in found:
        near = [h for h in r.heard if h.label == label and abs(h.t - t) < 0.005]
        if not near:
            unmatched += 1
            continue
        worst_dt = max(worst_dt, abs(near[0].t - t))
        heard.append(Heard(t, label, near[0].x, near[0].track))
    sc = score(heard, tl, until=seconds)
    conf = segment_confidence(r.frames, tl, r.labels)
    for item in (*sc.latencies, *sc.missed_list):
        item["model_p"] = round(conf.get((item["x"], item["onset"]), float("nan")), 3)
    lat = [x["latency_s"] for x in sc.latencies]
    frame_s = r.stats.seconds / r.stats.analysed if r.stats.analysed else 0.0
    med = statistics.median(lat) if lat else float("nan")
    return {
        "rate": rate, "smoothing": cfg.smoothing.model_dump(), "frames": r.stats.analysed,
        "earcons_in_wav": len(found), "cues_played": len(r.heard), "wav_onsets_without_a_cue": unmatched,
        "wav_vs_cue_time_max_s": worst_dt,
        "onsets": sc.expected, "detected": sc.correct, "missed": sc.missed, "false": sc.false,
        "latency_median_s": med, "latency_p90_s": percentile(lat, 0.9),
        "latency_max_s": max(lat) if lat else float("nan"),
        "frame_processing_s": frame_s, "device_latency_s": DEVICE_LATENCY_S,
        "live_estimate_median_s": med + frame_s + DEVICE_LATENCY_S,
        "per_onset": sc.latencies, "missed_list": sc.missed_list, "false_list": sc.false_list,
        "presenter": r.presenter,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="15,30", help="analysis rates (max_fps), comma separated")
    ap.add_argument("--seconds", type=float, default=0.0, help="only the first seconds of the clip (0: all)")
    ap.add_argument("--name", default="latency")
    args = ap.parse_args(argv)
    run = Run(args.name)
    print(run.note())
    rates = [float(x) for x in args.rates.split(",") if x.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="fer-audio-latency-") as tmpdir:
        for rate in rates:
            results.append(measure(rate, Path(tmpdir), seconds=args.seconds or None))
            print(f"{rate:g} fps done")

    rows = [[f"{r['rate']:g}", r["onsets"], r["detected"], r["missed"], r["false"],
             1000 * r["latency_median_s"], 1000 * r["latency_p90_s"], 1000 * r["latency_max_s"],
             1000 * r["frame_processing_s"], 1000 * r["live_estimate_median_s"]] for r in results]
    print()
    print("onset to first cue sample in the WAV, default smoothing, milliseconds")
    print(table(["fps", "onsets", "cued", "missed", "false", "median", "p90", "max", "frame ms",
                 "live est. median"], rows))
    onsets = sorted({x["onset"] for r in results for x in r["per_onset"]}
                    | {x["onset"] for r in results for x in r["missed_list"]})
    per = []
    for t in onsets:
        label = next((s["label"] for s in timeline(CLIP)["segments"] if s["start"] == t), "?")
        cells: list[Any] = [f"{t:g}", label]
        for r in results:
            hit = next((x for x in r["per_onset"] if x["onset"] == t), None)
            miss = next((x for x in r["missed_list"] if x["onset"] == t), None)
            p = (hit or miss or {}).get("model_p", float("nan"))
            cells.append(f"{1000 * hit['latency_s']:.0f}" if hit else "missed")
            cells.append(f"{p:.2f}")
        per.append(cells)
    print()
    print("per onset, milliseconds; p: the model's mean probability of the shown label over the segment")
    print(table(["onset s", "label", *[h for r in results for h in (f"{r['rate']:g} fps", "p")]], per))
    checks = [f"{r['rate']:g} fps: {r['earcons_in_wav']} earcons found in the WAV, {r['cues_played']} cues played, "
              f"{r['wav_onsets_without_a_cue']} WAV onsets without a cue, largest WAV-vs-cue offset "
              f"{1000 * r['wav_vs_cue_time_max_s']:.2f} ms" for r in results]
    print("\n".join(checks))
    goal = next((r for r in results if r["rate"] == 15), None)
    if goal is not None:
        ok = goal["latency_median_s"] <= GOAL_S
        print(f"goal at 15 fps: median {1000 * goal['latency_median_s']:.0f} ms "
              f"({'meets' if ok else 'misses'} the {1000 * GOAL_S:.0f} ms goal); live estimate "
              f"{1000 * goal['live_estimate_median_s']:.0f} ms")
        if not ok:
            sm = goal["smoothing"]
            print(f"the floor is min_dwell_s ({sm['min_dwell_s']:g} s) plus the time the smoothed probability "
                  f"needs to reach enter_threshold ({sm['enter_threshold']:g}) at half_life_s "
                  f"({sm['half_life_s']:g} s); see benchmarks/tradeoff.py for what lowering them costs")
    print(run.note())
    write_result(args.name, run, {"clip": CLIP, "goal_s": GOAL_S, "results": results, "checks": checks})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
