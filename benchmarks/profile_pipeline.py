"""Where a frame's time goes: cProfile over the whole pipeline on a clip, grouped by stage.

    python benchmarks/profile_pipeline.py [--clip fer_audio/data/demo.mp4] [--fps 120]

The demo clip runs through the real stages into the WAV sink, every frame
analysed (max_fps 120), under cProfile. The table groups the profile by
stage (cumulative time of each stage's entry point) and lists the functions
with the most time of their own; the full listing goes to
results/profile.txt. cProfile sees Python frames only: time inside OpenCV's
and LiteRT's C++ (YuNet, the interpreter) is charged to the Python call that
entered it, which is exactly the per-stage split wanted here.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, Run, bench_config, quiet_logs, table, write_result  # noqa: E402

# (stage, module file suffix, function name): entry points whose cumulative time is the stage's.
STAGES = (
    ("decode (source.read)", "sources.py", "read"),
    ("detect (YuNet)", "detection.py", "detect"),
    ("track", "tracking.py", "update"),
    ("crop + 48x48", "preprocess.py", "faces_to_batch"),
    ("model (LiteRT)", "emotion.py", "logits"),
    ("softmax", "emotion.py", "softmax"),
    ("smoother", "smoothing.py", "step"),
    ("cue planner", "cues.py", "plan"),
    ("cue presenter", "cues.py", "present"),
    ("audio play (WAV sink)", "audio.py", "play"),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=ROOT / "fer_audio" / "data" / "demo.mp4")
    ap.add_argument("--fps", type=float, default=120.0, help="max_fps (120: every frame of the clip)")
    ap.add_argument("--seconds", type=float, default=0.0, help="only the first seconds (0: all)")
    ap.add_argument("--name", default="profile")
    args = ap.parse_args(argv)
    run = Run(args.name)
    print(run.note())
    from fer_audio.runner import Run as PipelineRun

    with tempfile.TemporaryDirectory(prefix="fer-audio-profile-") as tmp:
        cfg = bench_config(args.clip, max_fps=args.fps, output="wav", wav_path=Path(tmp) / "profile.wav")
        with quiet_logs(), PipelineRun(cfg) as prun:
            prof = cProfile.Profile()
            prof.enable()
            stats = prun.pipe.run(max_seconds=args.seconds or None)
            prof.disable()

    st = pstats.Stats(prof)
    raw: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())  # all own time = wall time of the profiled run, roughly
    frames = max(stats.analysed, 1)
    rows = []
    stage_ms: dict[str, float] = {}
    for label, suffix, func in STAGES:
        cum = max((v[3] for (file, _line, fn), v in raw.items() if file.endswith(suffix) and fn == func),
                  default=0.0)
        stage_ms[label] = 1000 * cum / frames
        rows.append([label, 1000 * cum / frames, 100 * cum / total if total else 0.0])
    print()
    print(f"{stats.analysed} frames of {args.clip.name}, {stats.faces / frames:.2f} faces per frame, "
          f"{stats.fps:.1f} fps under the profiler ({stats.seconds:.1f} s)")
    print(table(["stage", "ms per frame", "% of run"], rows))

    own = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    top = []
    for (file, line, fn), v in own:
        where = f"{Path(file).name}:{line}" if line else file
        top.append([f"{fn} ({where})"[:70], v[1], 1000 * v[2] / frames, 100 * v[2] / total if total else 0.0])
    print()
    print("functions with the most time of their own")
    print(table(["function", "calls", "ms per frame", "% of run"], top))

    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(40)
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(40)
    RESULTS.mkdir(parents=True, exist_ok=True)
    txt = RESULTS / f"{args.name}.txt"
    txt.write_text(buf.getvalue())
    print(f"full profile written to {txt.relative_to(ROOT) if txt.is_relative_to(ROOT) else txt}")
    print(run.note())
    write_result(args.name, run, {
        "clip": str(args.clip.relative_to(ROOT)) if args.clip.is_relative_to(ROOT) else str(args.clip),
        "frames": stats.analysed, "faces_per_frame": stats.faces / frames, "fps_under_profiler": stats.fps,
        "stage_ms_per_frame": stage_ms,
        "top_own_time": [{"function": r[0], "calls": r[1], "ms_per_frame": r[2], "percent": r[3]} for r in top]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
