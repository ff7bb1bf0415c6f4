"""Start-up time (process start to ready, and to the first event) and resident memory over N minutes.

    python benchmarks/startup_memory.py [--starts 5] [--minutes 10]

Start-up: ``python -m fer_audio run --source <demo clip> --audio-out <tmp.wav>
--events-out <tmp.jsonl>``, timed from just before the process is created to
(a) the daemon's ``ready:`` log line (stages built: model loaded, detector
built, audio opened, control socket listening) and (b) the first line in the
events file (the first face announced, which needs appear_after_s of video,
about five frames at 15 fps, so the first frames have been analysed by then).
The page cache is warm after the first start; the first start is reported
on its own, and no cache is dropped (that would disturb everything else on
the machine).

Memory: the same service on the looping demo clip, paced in real time as a
camera would be, for N minutes; VmRSS every 10 s, and the growth per hour
from a straight-line fit after the first minute.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Run, table, write_result  # noqa: E402
from soak import DEMO, soak  # noqa: E402

GOAL_START_S = 3.0
GOAL_RSS_MB = 400.0


def one_start(clip: Path, tmp: Path, timeout_s: float = 60.0) -> dict[str, Any]:
    runtime = tmp / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    events = tmp / "events.jsonl"
    events.unlink(missing_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "fer_audio", "run", "--source", str(clip), "--audio-out", str(tmp / "out.wav"),
            "--events-out", str(events), "--max-seconds", "3"]
    marks: dict[str, float] = {}
    t0 = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "ready:" in line and "ready" not in marks:
                marks["ready"] = time.monotonic() - t0

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    while proc.poll() is None and time.monotonic() - t0 < timeout_s:
        if "first_event" not in marks and events.exists() and events.stat().st_size > 0:
            marks["first_event"] = time.monotonic() - t0
        time.sleep(0.005)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    reader.join(2)
    total = time.monotonic() - t0
    return {"ready_s": marks.get("ready"), "first_event_s": marks.get("first_event"), "exit_s": total,
            "exit_code": proc.returncode}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--minutes", type=float, default=10.0, help="memory run length (0: skip)")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between memory samples")
    ap.add_argument("--name", default="startup_memory")
    args = ap.parse_args(argv)
    run = Run(args.name)
    print(run.note())
    starts = []
    with tempfile.TemporaryDirectory(prefix="fer-audio-start-") as tmp:
        for i in range(args.starts):
            s = one_start(DEMO, Path(tmp))
            starts.append(s)
            print(f"start {i + 1}: ready {s['ready_s']:.2f} s, first event {s['first_event_s'] or float('nan'):.2f} s, "
                  f"exit status {s['exit_code']}")
    ready = [s["ready_s"] for s in starts if s["ready_s"] is not None]
    first_ev = [s["first_event_s"] for s in starts if s["first_event_s"] is not None]
    rows = [["to ready log line", ready[0] if ready else "-", statistics.median(ready) if ready else "-",
             max(ready) if ready else "-"],
            ["to first event", first_ev[0] if first_ev else "-", statistics.median(first_ev) if first_ev else "-",
             max(first_ev) if first_ev else "-"]]
    print()
    print(f"start-up, seconds from process start ({len(starts)} starts)")
    print(table(["", "first start", "median", "max"], rows))
    if ready:
        med = statistics.median(first_ev or ready)
        print(f"goal: {med:.2f} s to the first analysed frames ({'meets' if med <= GOAL_START_S else 'misses'} "
              f"the {GOAL_START_S:g} s goal)")

    memory: dict[str, Any] | None = None
    if args.minutes > 0:
        print()
        print(f"memory: {args.minutes:g} min of the service on the looping demo clip in real time")
        memory = soak(args.minutes * 60, args.interval, DEMO, realtime=True)
        memory.pop("log_tail", None)
        ok = (memory["rss_last_mb"] or 0) <= GOAL_RSS_MB
        print(f"resident memory {memory['rss_last_mb']:.0f} MB after {args.minutes:g} min (peak "
              f"{memory['rss_peak_mb']:.0f} MB; {'meets' if ok else 'misses'} the {GOAL_RSS_MB:g} MB goal); "
              f"growth {memory['growth_mb_per_hour']:+.1f} MB per hour")
        if args.minutes < 5:
            print("(a fit over less than a few minutes mostly measures start-up allocations, not a leak)")
    print(run.note())
    write_result(args.name, run, {"starts": starts, "goal_start_s": GOAL_START_S, "goal_rss_mb": GOAL_RSS_MB,
                                  "memory": memory})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
