"""What every benchmark shares: paths, configs for a clip, results files, plain-text tables.

Benchmarks print numbers; tests never do. Every result file records the
machine's load before and after the run, so a number taken while something
else was using the CPU (a training run, a build) says so itself.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
CLIPS = BENCH / "clips"
# FER_AUDIO_BENCH_RESULTS sends results elsewhere (run_all.sh's SMOKE mode, trying a change).
RESULTS = Path(os.environ.get("FER_AUDIO_BENCH_RESULTS") or BENCH / "results")
PEER_PYTHON = BENCH / ".venv-peer" / "bin" / "python"

if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(ROOT))

from fer_audio.config import Config  # noqa: E402  (needs the path above)


def clip(name: str) -> Path:
    path = CLIPS / f"{name}.mp4"
    if not path.is_file():
        raise SystemExit(f"{path}: benchmark clip missing; build it with "
                         "python benchmarks/make_clips.py --data ../shared/data/fer2013.npz bench")
    return path


def timeline(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CLIPS / f"{name}.json").read_text())
    return data


def bench_config(uri: Path | str, *, max_fps: float = 15.0, output: str = "silent",
                 wav_path: Path | None = None, base: Config | None = None,
                 smoothing: dict[str, float] | None = None, loop: bool = False) -> Config:
    """The default config (or ``base``) pointed at a clip, with the output and rate a benchmark needs.

    The start-up sound is off: it would sit at t=0 of a WAV and has nothing to do with any clip.
    """
    cfg = base or Config()
    audio = cfg.audio.model_copy(update={"output": output, "wav_path": wav_path, "startup_sound": False})
    src = cfg.source.model_copy(update={"uri": str(uri), "max_fps": max_fps, "realtime": False, "loop": loop})
    update: dict[str, Any] = {"source": src, "audio": audio}
    # BENCH_DETECT_EVERY=3 runs any benchmark with the following detector (detector.detect_every).
    every = os.environ.get("BENCH_DETECT_EVERY", "")
    if every:
        update["detector"] = cfg.detector.model_copy(update={"detect_every": int(every)})
    # BENCH_THREADS=2 runs it with two model and OpenCV threads (model.threads, detector.threads).
    threads = os.environ.get("BENCH_THREADS", "")
    if threads:
        det = update.get("detector", cfg.detector)
        update["detector"] = det.model_copy(update={"threads": int(threads)})
        update["model"] = cfg.model.model_copy(update={"threads": int(threads)})
    # BENCH_ENSEMBLE=0 runs the card's first network alone ([model] ensemble = false), to price the ensemble.
    ensemble = os.environ.get("BENCH_ENSEMBLE", "")
    if ensemble:
        update["model"] = update.get("model", cfg.model).model_copy(update={"ensemble": ensemble not in ("0", "false")})
    if smoothing:
        update["smoothing"] = cfg.smoothing.model_copy(update=smoothing)
    out = cfg.model_copy(update=update)
    Config.model_validate(out.model_dump())  # a sweep value out of bounds fails here, with its key
    return out


def bench_env() -> list[str]:
    """The BENCH_* settings in force ("BENCH_ENSEMBLE=0"), so a result's command says how it ran."""
    return [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_") and v]


# -- machine state ------------------------------------------------------------------------

def _cpu_ticks() -> dict[int, tuple[int, str]]:
    """utime + stime (clock ticks) and the command line of every process, from /proc."""
    ticks: dict[int, tuple[int, str]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            args = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue
        ticks[int(d.name)] = (int(fields[11]) + int(fields[12]), args or stat[stat.index("(") + 1:stat.rindex(")")])
    return ticks


def busy_processes(min_cpu: float = 20.0, window_s: float = 1.0) -> list[str]:
    """Other processes using the CPU right now (a training run distorts every timing).

    Sampled over ``window_s``: ps's %CPU is an average over a process's whole life, so a
    training run paused with SIGSTOP would still look busy there, and one just started idle.
    """
    before = _cpu_ticks()
    time.sleep(window_s)
    after = _cpu_ticks()
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    me = os.getpid()
    busy: list[tuple[float, str]] = []
    for pid, (t1, args) in after.items():
        cpu = 100.0 * (t1 - before.get(pid, (t1, ""))[0]) / hz / window_s
        if pid != me and cpu >= min_cpu:
            busy.append((cpu, f"{pid} {cpu:.0f}% {args[:80]}"))
    return [line for _, line in sorted(busy, reverse=True)]


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


@dataclass
class Run:
    """One benchmark run: its name, load before/after, and whether its timings can be trusted."""

    name: str
    started: float = field(default_factory=time.time)
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    busy_before: list[str] = field(default_factory=busy_processes)

    def meta(self) -> dict[str, Any]:
        load_after = os.getloadavg()
        cores = os.cpu_count() or 1
        # The 1-minute load includes this benchmark itself (up to ~2 on two cores); more than
        # one extra core's worth before the run means something else was competing.
        distorted = bool(self.busy_before) or self.load_before[0] > 0.75 * cores
        return {
            "benchmark": self.name,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "seconds": round(time.time() - self.started, 1),
            "machine": machine(),
            "load_before": [round(x, 2) for x in self.load_before],
            "load_after": [round(x, 2) for x in load_after],
            "busy_before": self.busy_before,
            "distorted": distorted,
            "command": " ".join([*bench_env(), Path(sys.executable).name, *sys.argv]),
        }

    def note(self) -> str:
        m = self.meta()
        if m["distorted"]:
            return ("NOTE: other processes were using the CPU when this started (load "
                    f"{m['load_before'][0]:.1f} on {m['machine']['cores']} cores): timings are DISTORTED")
        return f"machine: {m['machine']['cpu']}, {m['machine']['cores']} cores, load {m['load_before'][0]:.1f}"


def write_result(name: str, run: Run, data: dict[str, Any], out_dir: Path = RESULTS) -> Path:
    """results/<name>.json, written whole or not at all (a .tmp renamed into place)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": run.meta(), **data}, indent=2) + "\n")
    tmp.replace(path)
    print(f"results written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


# -- timing and tables ----------------------------------------------------------------------

def time_per_call(fn: Callable[[], object], *, min_s: float = 0.5, min_calls: int = 5,
                  max_calls: int = 100_000, warmup: int = 2) -> dict[str, float]:
    """Call ``fn`` until ``min_s`` seconds and ``min_calls`` calls have passed; ms per call.

    The median is the headline (robust to the odd scheduler hiccup on a shared
    machine); the mean and p90 are kept beside it.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    t_end = time.perf_counter() + min_s
    while (len(times) < min_calls or time.perf_counter() < t_end) and len(times) < max_calls:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {
        "median_ms": 1000 * statistics.median(times),
        "mean_ms": 1000 * statistics.fmean(times),
        "p90_ms": 1000 * times[min(len(times) - 1, int(0.9 * len(times)))],
        "calls": len(times),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: columns separated by two spaces, no box drawing (screen readers)."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if abs(v) >= 100:
                return f"{v:.0f}"
            return f"{v:.2f}" if abs(v) >= 1 or v == 0 else f"{v:.3f}"
        return str(v)

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


@contextmanager
def quiet_logs() -> Iterator[None]:
    """fer_audio logs its start-up at INFO; a benchmark prints its own table instead."""
    import logging

    logger = logging.getLogger("fer_audio")
    old = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB (VmRSS), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope and intercept (numpy-free: the soak test uses it too)."""
    n = len(xs)
    if n < 2:
        return 0.0, ys[0] if ys else 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, my
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx
