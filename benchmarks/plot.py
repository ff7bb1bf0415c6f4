"""Plots from the JSON results: fps_vs_faces.png, latency.png (and tradeoff.png when tradeoff.json exists).

    python benchmarks/plot.py [--results benchmarks/results]

Needs matplotlib (fer-audio's [train] extra, or benchmarks/.venv-peer which
has it); reads only JSON, so any Python with matplotlib will do. A plot whose
input is missing is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        print(f"{path.name}: not found; its plot is skipped (run the benchmark first)")
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def subtitle(meta: dict[str, Any]) -> str:
    m = meta.get("machine", {})
    s = f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {meta.get('date', '')}"
    return s + ("  (DISTORTED: machine busy)" if meta.get("distorted") else "")


def plot_fps(data: dict[str, Any], out: Path) -> None:
    import matplotlib.pyplot as plt

    clips = data["clips"]
    names = sorted(clips, key=lambda n: clips[n]["faces"])
    faces = [clips[n]["faces"] for n in names]
    systems = sorted({k for n in names for k in clips[n] if k != "faces"}, key=lambda s: (s != "fer-audio", s))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {"fer-audio": "o", "fer default": "s", "fer keras": "^", "fer mtcnn": "D"}
    for s in systems:
        ys = [clips[n].get(s, {}).get("fps_median", math.nan) for n in names]
        if all(math.isnan(y) for y in ys):
            continue
        ax.plot(faces, ys, marker=markers.get(s, "x"), label=s, linewidth=2 if s == "fer-audio" else 1)
    ax.axhline(30, color="grey", linestyle="--", linewidth=1, label="goal: 30 fps")
    ax.set_xlabel("faces in the frame (640x480)")
    ax.set_ylabel("frames per second (median)")
    ax.set_xticks(faces)
    ax.set_ylim(bottom=0)
    ax.set_title("Whole-pipeline throughput: fer-audio and fer, same clips, same run", fontsize=10)
    fig.text(0.5, 0.01, subtitle(data["meta"]), ha="center", fontsize=7)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")


def plot_latency(data: dict[str, Any], out: Path) -> None:
    import matplotlib.pyplot as plt

    results = data["results"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, r in enumerate(results):
        lat = [1000 * x["latency_s"] for x in r["per_onset"]]
        xs = [i + 1 + 0.08 * ((k % 5) - 2) for k in range(len(lat))]
        ax.scatter(xs, lat, alpha=0.8, label=f"{r['rate']:g} fps: {r['detected']}/{r['onsets']} cued")
        if lat:
            med = statistics.median(lat)
            ax.hlines(med, i + 0.7, i + 1.3, color="black", linewidth=2)
    ax.axhline(1000 * data.get("goal_s", 0.4), color="grey", linestyle="--", linewidth=1, label="goal: 400 ms")
    ax.set_xticks(range(1, len(results) + 1), [f"{r['rate']:g} fps" for r in results])
    ax.set_ylabel("expression onset to cue start (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title("Latency, default smoothing (each dot one onset, bar the median)", fontsize=10)
    fig.text(0.5, 0.01, subtitle(data["meta"]), ha="center", fontsize=7)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")


def plot_tradeoff(data: dict[str, Any], out: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in data["settings"]:
        x, y = 1000 * s["latency_median_s"], s["steady_unwanted_per_min"]
        if x != x or y is None:  # NaN: nothing cued with this setting
            continue
        sm = s["smoothing"]
        ax.scatter(x, y, color="red" if s["default"] else "tab:blue", s=40 if s["default"] else 20)
        ax.annotate(f"{sm['half_life_s']:g}/{sm['min_dwell_s']:g}/{sm['enter_threshold']:g}", (x, y), fontsize=6)
    ax.axvline(400, color="grey", linestyle="--", linewidth=1)
    ax.axhline(0.2, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("median latency (ms)")
    ax.set_ylabel("false or repeated cues per minute (steady clips)")
    ax.set_title("Smoothing settings: half_life_s / min_dwell_s / enter_threshold (red: default)", fontsize=9)
    fig.text(0.5, 0.01, subtitle(data["meta"]), ha="center", fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path(os.environ.get("FER_AUDIO_BENCH_RESULTS") or HERE / "results"))
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    for name, fn, png in (("throughput", plot_fps, "fps_vs_faces.png"), ("latency", plot_latency, "latency.png"),
                          ("tradeoff", plot_tradeoff, "tradeoff.png")):
        data = load(args.results / f"{name}.json")
        if data is not None:
            fn(data, args.results / png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
