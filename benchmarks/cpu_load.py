"""CPU the running pipeline takes, as % of one core, when it analyses 15 frames a second.

    python benchmarks/cpu_load.py [--seconds 20] [--fps 15] [--detect-every 1,3] [--threads 1,2]

What a user pays for leaving the service on: the clip is played at its own
frame rate (``source.realtime``, 30 fps, looped), the pipeline analyses at
``--fps`` (the service's ``max_fps``) and writes its cues into a WAV, as the
demo does. The process's CPU time (all threads: decoding, YuNet, LiteRT,
mixer) over the wall time of the run is the load; 100% is one whole core.
Model loading and start-up are outside the measured part. Each clip is run
once per ``detect_every`` value and thread count (``--threads`` sets both
``model.threads`` and ``detector.threads``), so the settings are compared in
the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Run, bench_config, clip, quiet_logs, table, write_result  # noqa: E402

CLIPS = {"faces1": 1, "faces3": 3, "faces6": 6}


def measure(name: str, seconds: float, fps: float, every: int, tmp: Path, threads: int) -> dict[str, Any]:
    from fer_audio.config import Config
    from fer_audio.runner import Run as PipelineRun

    base = Config()
    base = base.model_copy(update={"detector": base.detector.model_copy(update={"detect_every": every,
                                                                                "threads": threads}),
                                   "model": base.model.model_copy(update={"threads": threads})})
    cfg = bench_config(clip(name), max_fps=fps, output="wav", wav_path=tmp / f"{name}-{every}.wav",
                       base=base, loop=True)
    cfg = cfg.model_copy(update={"source": cfg.source.model_copy(update={"realtime": True})})
    stop = threading.Event()
    with quiet_logs(), PipelineRun(cfg) as run:
        timer = threading.Timer(seconds, stop.set)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        timer.start()
        stats = run.pipe.run(stop=stop)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        timer.cancel()
    return {"detect_every": every, "threads": threads, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "cpu_percent": round(100.0 * cpu / wall, 1), "analysed": stats.analysed,
            "analysed_fps": round(stats.analysed / wall, 2),
            "cpu_ms_per_frame": round(1000.0 * cpu / stats.analysed, 2) if stats.analysed else None,
            "faces_per_frame": round(stats.faces / stats.analysed, 2) if stats.analysed else 0.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="wall seconds per clip and setting")
    ap.add_argument("--fps", type=float, default=15.0, help="analysis rate (source.max_fps)")
    ap.add_argument("--detect-every", default="1,3", help="detector.detect_every values, comma separated")
    ap.add_argument("--threads", default="1,2",
                    help="thread counts to compare, comma separated: each sets model.threads and detector.threads")
    ap.add_argument("--name", default="cpu_load", help="results/<name>.json")
    args = ap.parse_args(argv)
    everys = [int(v) for v in args.detect_every.split(",") if v.strip()]
    threads = [int(v) for v in args.threads.split(",") if v.strip()]
    bench = Run("cpu_load")
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, faces in CLIPS.items():
            results[name] = {"faces": faces, "runs": []}
            for every, n in [(e, n) for e in everys for n in threads]:
                r = measure(name, args.seconds, args.fps, every, Path(tmp), n)
                results[name]["runs"].append(r)
                rows.append([name, faces, every, n, r["analysed_fps"], r["faces_per_frame"], r["cpu_ms_per_frame"],
                             f"{r['cpu_percent']:.1f}%"])
    print(bench.note())
    print(f"CPU of the whole process at {args.fps:g} analysed fps (clip played in real time, 30 fps, "
          f"{args.seconds:g} s each); 100% = one core")
    print(table(["clip", "faces", "detect_every", "threads", "analysed fps", "faces/frame", "CPU ms/frame", "CPU"], rows))
    write_result(args.name, bench, {"fps": args.fps, "seconds": args.seconds,
                                    "clips": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
