"""Soak: the real service for an hour on a looping clip; memory, fps and cue counts every minute.

    python benchmarks/soak.py [--minutes 60] [--interval 60] [--clip fer_audio/data/demo.mp4]

It starts ``python -m fer_audio run --source <clip> --loop --realtime --no-audio``
as its own process, with a private XDG_RUNTIME_DIR so it never meets another
running instance, and asks it for ``status`` over its control socket (the
protocol ``fer-audio ctl status`` speaks) every interval. Resident memory
comes from /proc/<pid>/status. At the end it sends ``stop``, checks the exit
status, and fits a line to memory after the first minute (start-up
allocations settle then) to give the growth per hour.

``--realtime`` paces the clip at its own frame rate, as a camera would, so an
hour of soak is an hour of frames; ``--fast`` analyses frames as fast as the
CPU allows instead (more frames per hour, more stress, not what a user runs).
Cues go to the silent output: an hour of WAV would be 700 MB, and the
mixer's own cost is in stages.py.

tests/test_soak.py runs the same code for FER_AUDIO_SOAK_S seconds (default 300).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Run, linear_fit, rss_mb, write_result  # noqa: E402

DEMO = ROOT / "fer_audio" / "data" / "demo.mp4"
WARMUP_S = 60.0


@dataclass
class Sample:
    t_s: float  # since the daemon said it was ready
    rss_mb: float
    fps: float
    frames: int
    cues: int
    faces: int
    state: str
    error: str = ""

    def line(self) -> str:
        if self.error:
            return f"{self.t_s / 60:6.1f} min  {self.rss_mb:6.1f} MB  status failed: {self.error}"
        return (f"{self.t_s / 60:6.1f} min  {self.rss_mb:6.1f} MB  {self.fps:5.1f} fps  {self.frames:7d} frames  "
                f"{self.cues:4d} cues  {self.faces} face(s)  {self.state}")


class Daemon:
    """A `fer-audio run` child process and its control socket."""

    def __init__(self, clip: Path, workdir: Path, realtime: bool = True, extra: tuple[str, ...] = ()) -> None:
        self.runtime = workdir / "runtime"
        self.runtime.mkdir(mode=0o700, exist_ok=True)
        self.log_path = workdir / "daemon.log"
        env = {**os.environ, "XDG_RUNTIME_DIR": str(self.runtime), "PYTHONUNBUFFERED": "1"}
        args = [sys.executable, "-m", "fer_audio", "run", "--source", str(clip), "--loop", "--no-audio", *extra]
        if realtime:
            args.append("--realtime")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.socket = self.runtime / "fer-audio" / "control.sock"

    def command(self, what: str, timeout_s: float = 5.0) -> str:
        from fer_audio.control import send_command

        return send_command(self.socket, what, timeout_s=timeout_s)

    def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Seconds from process start until the control socket answers ``status``."""
        from fer_audio.control import ControlError

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fer-audio exited with {self.proc.returncode} during start-up:\n{self.log_tail()}")
            try:
                if self.command("status", 2.0).startswith("ok: "):
                    return time.monotonic() - self.started
            except ControlError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"fer-audio not ready within {timeout_s:g} s:\n{self.log_tail()}")

    def sample(self, since: float) -> Sample:
        from fer_audio.control import ControlError

        rss = rss_mb(self.proc.pid)
        t = time.monotonic() - since
        try:
            reply = self.command("status")
            st: dict[str, Any] = json.loads(reply[len("ok: "):]) if reply.startswith("ok: ") else {}
            if not st:
                return Sample(t, rss, 0.0, 0, 0, 0, "?", error=reply)
        except (ControlError, ValueError) as exc:
            return Sample(t, rss, 0.0, 0, 0, 0, "?", error=str(exc))
        return Sample(t, rss, float(st.get("fps", 0.0)), int(st.get("frames", 0)), int(st.get("cues", 0)),
                      int(st.get("faces", 0)), str(st.get("state", "?")))

    def stop(self, timeout_s: float = 15.0) -> int:
        """Ask it to stop over the socket (SIGTERM if that fails); its exit status."""
        from fer_audio.control import ControlError

        try:
            if self.proc.poll() is None:
                self.command("stop")
        except ControlError:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code

    def log_tail(self, n: int = 15) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def soak(duration_s: float, interval_s: float, clip: Path = DEMO, realtime: bool = True,
         on_sample: Callable[[Sample], None] = lambda s: print(s.line(), flush=True),
         workdir: Path | None = None) -> dict[str, Any]:
    """Run the service for ``duration_s`` seconds, sampling every ``interval_s``; a summary dict."""
    with tempfile.TemporaryDirectory(prefix="fer-audio-soak-") as tmp:
        d = Daemon(clip, Path(workdir or tmp), realtime=realtime)
        samples: list[Sample] = []
        try:
            ready_s = d.wait_ready()
            t0 = time.monotonic()
            first = d.sample(t0)
            samples.append(first)
            on_sample(first)
            next_at = t0 + interval_s
            while time.monotonic() - t0 < duration_s:
                time.sleep(max(0.0, min(next_at, t0 + duration_s) - time.monotonic()))
                if d.proc.poll() is not None:
                    break
                s = d.sample(t0)
                samples.append(s)
                on_sample(s)
                next_at += interval_s
            alive = d.proc.poll() is None
        finally:
            code = d.stop()
            tail = d.log_tail()
    warm = [s for s in samples if s.t_s >= min(WARMUP_S, duration_s / 5)] or samples
    slope_mb_per_s, _ = linear_fit([s.t_s for s in warm], [s.rss_mb for s in warm])
    rss = [s.rss_mb for s in samples]
    return {
        "duration_s": duration_s, "interval_s": interval_s, "clip": str(clip), "realtime": realtime,
        "ready_s": ready_s, "alive_at_end": alive, "exit_code": code,
        "rss_first_mb": rss[0] if rss else None, "rss_last_mb": rss[-1] if rss else None,
        "rss_peak_mb": max(rss) if rss else None,
        "rss_after_warmup_mb": warm[0].rss_mb if warm else None,
        "growth_mb_per_hour": slope_mb_per_s * 3600,
        "status_failures": sum(1 for s in samples if s.error),
        "samples": [asdict(s) for s in samples], "log_tail": tail,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    ap.add_argument("--clip", type=Path, default=DEMO)
    ap.add_argument("--fast", action="store_true", help="analyse as fast as possible instead of real time")
    ap.add_argument("--name", default="soak")
    args = ap.parse_args(argv)
    run = Run(args.name)
    print(run.note())
    print(f"soak: {args.minutes:g} min on {args.clip.name} (looping, {'fast' if args.fast else 'real time'}), "
          f"a line every {args.interval:g} s")
    res = soak(args.minutes * 60, args.interval, args.clip, realtime=not args.fast)
    print(f"ready after {res['ready_s']:.1f} s; memory {res['rss_first_mb']:.0f} MB at start, "
          f"{res['rss_last_mb']:.0f} MB at the end, peak {res['rss_peak_mb']:.0f} MB; "
          f"growth {res['growth_mb_per_hour']:+.1f} MB per hour (fit after warm-up); "
          f"{res['status_failures']} status failures; exit status {res['exit_code']}")
    print(run.note())
    write_result(args.name, run, res)
    return 0 if res["exit_code"] == 0 and res["status_failures"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
