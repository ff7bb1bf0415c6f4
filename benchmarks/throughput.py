"""Frames per second of the whole pipeline, against the `fer` package on the same clips, in one run.

    python benchmarks/throughput.py [--rounds 3] [--seconds 10]

fer-audio: decode -> YuNet -> tracker -> model (one batch per frame) ->
smoother -> cue planner/presenter -> mixer into a WAV (the WavSink), every
frame of a 30 fps 640x480 clip (max_fps raised to 120 so none is skipped),
with 1, 3 and 6 real PrivateTest faces. `fer`: decode -> ``FER.detect_emotions``
on the same frames, in its own venv (benchmarks/.venv-peer, see
setup_peer.sh), driven from here as a subprocess. The measurements are
interleaved (ours, then each fer variant, clip by clip, round by round) so
that a change in machine load hits both sides alike; the median of the
rounds is reported. Model loading is outside the timed part on both sides.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PEER_PYTHON, Run, bench_config, clip, quiet_logs, table, write_result  # noqa: E402

CLIPS = {"faces1": 1, "faces3": 3, "faces6": 6}
VARIANTS = ("default", "keras", "mtcnn")
GOAL_FPS = 30.0
GOAL_RATIO = 5.0


def ours(name: str, seconds: float, tmp: Path) -> dict[str, Any]:
    from fer_audio.runner import Run as PipelineRun

    cfg = bench_config(clip(name), max_fps=120.0, output="wav", wav_path=tmp / f"{name}.wav")
    with quiet_logs(), PipelineRun(cfg) as run:
        stats = run.pipe.run(max_seconds=seconds if seconds > 0 else None)
    return {"frames": stats.analysed, "seconds": stats.seconds, "fps": stats.fps,
            "faces_per_frame": stats.faces / stats.analysed if stats.analysed else 0.0,
            "cues": stats.cues_played}


class Peer:
    """One long-lived `fer` process per variant, so TensorFlow's import is paid once."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.info: dict[str, Any] = {}
        self.proc: subprocess.Popen[str] | None = None
        if not PEER_PYTHON.exists():
            self.info = {"ready": False, "error": f"{PEER_PYTHON} missing: run benchmarks/setup_peer.sh"}
            return
        self.proc = subprocess.Popen(
            [str(PEER_PYTHON), str(Path(__file__).with_name("peer_fer.py")), "--variant", variant],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.info = json.loads(line) if line else {"ready": False, "error": "peer exited during start-up"}
        if not self.info.get("ready"):
            self.close()

    @property
    def ready(self) -> bool:
        return bool(self.info.get("ready")) and self.proc is not None

    def measure(self, path: Path, seconds: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"clip": str(path), "seconds": seconds}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"error": "peer died"}

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the median is reported")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of each clip (0: all of it)")
    ap.add_argument("--variants", default="default,keras,mtcnn", help="fer variants to run, comma separated")
    ap.add_argument("--no-peer", action="store_true", help="measure fer-audio only")
    ap.add_argument("--name", default="throughput", help="results/<name>.json")
    args = ap.parse_args(argv)
    run = Run(args.name)
    print(run.note())

    peers: dict[str, Peer] = {}
    if not args.no_peer:
        for v in [v.strip() for v in args.variants.split(",") if v.strip()]:
            if v not in VARIANTS:
                raise SystemExit(f"--variants: unknown variant {v!r}; expected {', '.join(VARIANTS)}")
            t0 = time.perf_counter()
            peers[v] = Peer(v)
            state = "ready" if peers[v].ready else f"unavailable: {peers[v].info.get('error')}"
            print(f"fer variant {v}: {state} ({time.perf_counter() - t0:.1f} s to start)")

    samples: dict[str, dict[str, list[dict[str, Any]]]] = {n: {"fer-audio": []} for n in CLIPS}
    with tempfile.TemporaryDirectory(prefix="fer-audio-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for r in range(args.rounds):
            for name in CLIPS:
                samples[name]["fer-audio"].append(ours(name, args.seconds, tmp))
                for v, peer in peers.items():
                    if peer.ready:
                        samples[name].setdefault(f"fer {v}", []).append(peer.measure(clip(name), args.seconds))
            print(f"round {r + 1} of {args.rounds} done")
    for peer in peers.values():
        peer.close()

    results: dict[str, Any] = {}
    rows = []
    for name, faces in CLIPS.items():
        res: dict[str, Any] = {"faces": faces}
        for who, runs in samples[name].items():
            good = [x for x in runs if "fps" in x]
            if not good:
                res[who] = {"error": runs[0].get("error", "no result") if runs else "no result"}
                continue
            res[who] = {"fps_median": statistics.median(x["fps"] for x in good),
                        "fps_all": [round(x["fps"], 2) for x in good],
                        "frames": good[0]["frames"],
                        "faces_per_frame": round(statistics.fmean(x["faces_per_frame"] for x in good), 2)}
        mine = res["fer-audio"].get("fps_median", 0.0)
        for who in list(res):
            if who.startswith("fer ") and "fps_median" in res[who]:
                res[who]["ratio"] = mine / res[who]["fps_median"] if res[who]["fps_median"] else None
        results[name] = res
        for who, r in res.items():
            if who == "faces":
                continue
            if "fps_median" not in r:
                rows.append([faces, who, "-", "-", "-", r.get("error", "")[:60]])
                continue
            ratio = "" if who == "fer-audio" else f"{r['ratio']:.1f}x"
            rows.append([faces, who, r["fps_median"], r["faces_per_frame"], r["frames"], ratio])

    print()
    print("frames per second, 640x480, median of", args.rounds, "round(s)")
    print(table(["faces", "pipeline", "fps", "faces/frame", "frames", "fer-audio / this"], rows))
    goals = []
    for name in ("faces1", "faces3"):
        fps = results[name]["fer-audio"].get("fps_median", 0.0)
        goals.append(f"{CLIPS[name]} face(s): {fps:.1f} fps ({'meets' if fps >= GOAL_FPS else 'misses'} "
                     f"the {GOAL_FPS:g} fps goal)")
        ref = results[name].get("fer default", {})
        if "ratio" in ref and ref["ratio"]:
            goals.append(f"{CLIPS[name]} face(s): {ref['ratio']:.1f}x fer's default "
                         f"({'meets' if ref['ratio'] >= GOAL_RATIO else 'misses'} the {GOAL_RATIO:g}x goal)")
    print("\n".join(goals))
    print(run.note())
    peers_info = {v: p.info for v, p in peers.items()}
    write_result(args.name, run, {"rounds": args.rounds, "seconds": args.seconds, "clips": results,
                                  "peers": peers_info, "goals": goals})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
