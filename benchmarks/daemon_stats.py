"""How the service behaves over time: memory, reload time, shutdown time.

    .venv/bin/python benchmarks/daemon_stats.py                  # 600 s on the bundled clip
    .venv/bin/python benchmarks/daemon_stats.py --duration 180   # a shorter run

Starts `fer-audio run` on a looping clip paced in real time (a stand-in for a
camera), in a private runtime folder so it never meets a real daemon. Every
minute it prints the resident memory (VmRSS, from /proc) and what the status
command says. At the end it measures reloads (SIGHUP until the "reloaded" log
line appears; the config alternates between two mappings so each reload
changes something) and shutdowns (SIGTERM until the process is gone), the
last on the long run and on a few short extra runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_audio.control import send_command  # noqa: E402
from fer_audio.resources import DEMO_CLIP  # noqa: E402

CONFIGS = (
    '[audio]\nmin_interval_s = 1.5\n[cues.happy]\nmode = "earcon"\n',
    '[audio]\nmin_interval_s = 1.6\n[cues.happy]\nmode = "silent"\n',
)


def vm(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


class Daemon:
    def __init__(self, work: Path, clip: Path, audio: str, name: str) -> None:
        self.runtime = work / "run"
        self.runtime.mkdir(mode=0o700, exist_ok=True)
        self.config = work / f"{name}.toml"
        self.config.write_text(CONFIGS[0])
        self.log = work / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
        env.update(XDG_RUNTIME_DIR=str(self.runtime), XDG_CONFIG_HOME=str(work / "config"))
        args = [sys.executable, "-m", "fer_audio", "run", "--source", str(clip), "--realtime", "--loop",
                "--config", str(self.config)]
        if audio == "wav":
            args += ["--audio-out", str(work / f"{name}.wav")]
        elif audio == "silent":
            args += ["--no-audio"]
        self.t0 = time.monotonic()
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                         stdin=subprocess.DEVNULL)
        self._log_offset = 0

    @property
    def socket(self) -> Path:
        return self.runtime / "fer-audio" / "control.sock"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, count: int = 1, timeout: float = 60.0, poll: float = 0.002) -> float:
        """Seconds until ``needle`` occurs ``count`` times in the log."""
        t0 = time.monotonic()
        while self.text().count(needle) < count:
            if self.proc.poll() is not None:
                raise SystemExit(f"daemon_stats: fer-audio exited ({self.proc.returncode}):\n{self.text()}")
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"daemon_stats: no {needle!r} in the log after {timeout:g} s")
            time.sleep(poll)
        return time.monotonic() - t0

    def status(self) -> dict[str, Any]:
        reply = send_command(self.socket, "status")
        out: dict[str, Any] = json.loads(reply.removeprefix("ok: "))
        return out

    def reload(self, index: int) -> tuple[float, float]:
        """SIGHUP to the log line: wall seconds, and the daemon's own figure in ms."""
        self.config.write_text(CONFIGS[index % 2])
        done = self.text().count("reloaded ")
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGHUP)
        self.wait_log("reloaded ", count=done + 1)
        wall = time.monotonic() - t0
        own = [line for line in self.text().splitlines() if "reloaded " in line][-1]
        ms = float(own.split(" in ")[1].split(" ms")[0])
        return wall, ms

    def shutdown(self) -> float:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        seconds = time.monotonic() - t0
        if rc != 0:
            raise SystemExit(f"daemon_stats: exit status {rc} after SIGTERM:\n{self.text()}")
        return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of the long run (default 600)")
    ap.add_argument("--every", type=float, default=60.0, help="seconds between memory lines (default 60)")
    ap.add_argument("--clip", type=Path, default=DEMO_CLIP, help="looping source (default: the bundled demo clip)")
    ap.add_argument("--audio", choices=("wav", "silent"), default="wav",
                    help="wav: the full mixer into a temporary WAV (default); silent: no output")
    ap.add_argument("--reloads", type=int, default=10, help="SIGHUP reloads to time at the end (default 10)")
    ap.add_argument("--extra-shutdowns", type=int, default=3,
                    help="short extra runs whose SIGTERM is timed too (default 3)")
    ap.add_argument("--json-out", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)

    results: dict[str, Any] = {"clip": str(args.clip), "audio": args.audio, "duration_s": args.duration}
    print(f"daemon_stats: {args.clip.name} looping in real time, audio {args.audio}, {args.duration:g} s",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="fer-audio-bench-") as tmp:
        work = Path(tmp)
        d = Daemon(work, args.clip, args.audio, "long")
        try:
            startup = d.wait_log("ready:")
            print(f"start-up: ready after {startup:.2f} s", flush=True)
            pid = d.proc.pid
            samples = []
            t_start = time.monotonic()
            next_at = 0.0
            while True:
                elapsed = time.monotonic() - t_start
                if elapsed >= next_at:
                    mem, st = vm(pid), d.status()
                    samples.append({"t": round(elapsed), **mem, "fps": st["fps"], "frames": st["frames"],
                                    "cues": st["cues"]})
                    print(f"t={elapsed:4.0f} s: VmRSS {mem['VmRSS']:.1f} MiB (peak {mem['VmHWM']:.1f} MiB), "
                          f"{st['fps']:.1f} fps, {st['frames']} frames, {st['cues']} cues", flush=True)
                    next_at += args.every
                if elapsed >= args.duration:
                    break
                if d.proc.poll() is not None:
                    raise SystemExit(f"daemon_stats: fer-audio exited early:\n{d.text()}")
                time.sleep(min(1.0, max(0.0, next_at - elapsed), max(0.0, args.duration - elapsed)) or 0.05)
            final = vm(pid)
            results["memory"] = samples
            print(f"memory: {samples[0]['VmRSS']:.1f} MiB at the first sample, {final['VmRSS']:.1f} MiB after "
                  f"{args.duration:g} s (peak {final['VmHWM']:.1f} MiB)", flush=True)

            walls, own = [], []
            for i in range(args.reloads):
                w, ms = d.reload(i + 1)
                walls.append(w)
                own.append(ms)
                time.sleep(0.3)
            if walls:
                results["reload_s"] = walls
                print(f"reload (SIGHUP until the 'reloaded' log line): median {1000 * statistics.median(walls):.0f} ms,"
                      f" max {1000 * max(walls):.0f} ms over {len(walls)}; the daemon's own figure: median "
                      f"{statistics.median(own):.0f} ms", flush=True)
            assert d.status()["state"] == "running"
            shut = [d.shutdown()]
        finally:
            if d.proc.poll() is None:
                d.proc.kill()
        for i in range(args.extra_shutdowns):
            e = Daemon(work, args.clip, args.audio, f"short{i}")
            try:
                e.wait_log("ready:")
                time.sleep(2.0)
                shut.append(e.shutdown())
            finally:
                if e.proc.poll() is None:
                    e.proc.kill()
        results["shutdown_s"] = shut
        print("shutdown (SIGTERM until exit): " + ", ".join(f"{s:.2f}" for s in shut)
              + f" s (first after the long run); max {max(shut):.2f} s", flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
