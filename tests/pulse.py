"""A private PulseAudio server with a null sink, and a recorder of its monitor, for real-device tests.

What the audio tests hear is real: PortAudio (through ALSA's ``pulse`` plugin, package
libasound2-plugins) plays into the null sink ``fa_test`` of a PulseAudio server that
runs with its own HOME and XDG_RUNTIME_DIR, and ``parec`` records the sink's monitor.

Use the ``pulse_server`` fixture (session scope; import it into a test module with
``from pulse import pulse_server``). It reuses a server that already offers the
``fa_test`` sink (as CI may start one), else starts one and stops it at the end; it
skips with a reason when pulseaudio or parec is not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

SINK = "fa_test"
RATE = 48000


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """Terminate a server this test started (kill it after 5 s) and close its stderr pipe."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    if proc.stderr:
        proc.stderr.close()


@dataclass
class PulseServer:
    """A PulseAudio daemon this process started (or found), with the env to reach it."""

    runtime_dir: Path
    home: Path
    proc: subprocess.Popen[bytes] | None = None
    owned: bool = True
    saved_env: dict[str, str | None] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "pulse" / "native"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "XDG_RUNTIME_DIR": str(self.runtime_dir), "HOME": str(self.home),
                "PULSE_SERVER": f"unix:{self.socket}"}

    def pactl(self, *args: str, timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def is_up(self) -> bool:
        try:
            r = self.pactl("list", "short", "sinks", timeout=3.0)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return r.returncode == 0 and SINK in r.stdout

    def start(self) -> None:
        """Run ``pulseaudio`` in the foreground of a child process we own (no daemon fork to chase)."""
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        args = ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--system=no",
                "--disallow-exit=no", "--log-target=stderr", "--log-level=error",
                f"--load=module-null-sink sink_name={SINK} rate={RATE} channels=2",
                "--load=module-native-protocol-unix"]
        self.proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"pulseaudio exited with {self.proc.returncode}: {err.strip()[:300]}")
            if self.is_up():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("pulseaudio did not come up within 10 s (pactl info kept failing)")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)

    def discard(self) -> None:
        """Stop it and delete its temp folders (only for a server this process started)."""
        if not self.owned:
            return
        self.stop()
        shutil.rmtree(self.runtime_dir.parent, ignore_errors=True)

    def export_env(self) -> None:
        """Point this process's libpulse (inside PortAudio's ALSA plugin) at the private server."""
        for key in ("XDG_RUNTIME_DIR", "PULSE_SERVER"):
            self.saved_env.setdefault(key, os.environ.get(key))
        os.environ["XDG_RUNTIME_DIR"] = str(self.runtime_dir)
        os.environ["PULSE_SERVER"] = f"unix:{self.socket}"
        refresh_portaudio()

    def restore_env(self) -> None:
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.saved_env.clear()


def refresh_portaudio() -> None:
    """Make PortAudio list devices again if it was loaded before the server ran.

    PortAudio probes devices once, at initialisation; sounddevice exposes no public
    re-scan, so this uses its private terminate/initialise pair (test code only).
    """
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


def missing_tools() -> str | None:
    for tool in ("pulseaudio", "pactl", "parec"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)"
    return None


def existing_server() -> PulseServer | None:
    """A server that already offers the fa_test sink (e.g. started by CI), reached through the env."""
    rt = os.environ.get("XDG_RUNTIME_DIR")
    if not rt:
        return None
    server = PulseServer(Path(rt), Path(os.environ.get("HOME", "/tmp")), owned=False)
    return server if server.is_up() else None


_SESSION: PulseServer | None = None


def start_private_server(base: Path | None = None) -> PulseServer:
    """Start a new private server in a fresh temp folder (caller stops it)."""
    root = Path(tempfile.mkdtemp(prefix="fa-pulse-", dir=base))
    server = PulseServer(root / "run", root / "home")
    server.start()
    return server


def session_server() -> PulseServer:
    """Idempotent: the same server for every caller in this process."""
    global _SESSION
    if _SESSION is not None and (_SESSION.proc is None or _SESSION.proc.poll() is None) and _SESSION.is_up():
        return _SESSION
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    _SESSION = existing_server() or start_private_server()
    _SESSION.export_env()
    return _SESSION


def stop_session_server() -> None:
    global _SESSION
    server, _SESSION = _SESSION, None
    if server is None:
        return
    server.restore_env()
    server.discard()


@pytest.fixture(scope="session")
def pulse_server() -> Iterator[PulseServer]:
    """A running PulseAudio with the fa_test null sink; this process's env points at it."""
    server = session_server()
    try:
        yield server
    finally:
        stop_session_server()


class Recorder:
    """Records the null sink's monitor with parec; maps recorded samples to time.monotonic().

    Each chunk read from parec is stamped on arrival. Arrival can only be later
    than capture, so the least-delayed chunk gives the clock offset:
    ``t(sample n) = min_i(arrival_i - end_i / RATE) + n / RATE``. Capture delay left
    in that estimate makes measured latencies longer. One effect goes the other way:
    a null sink renders a whole block when its timer fires, ahead of the block's
    nominal time, so an onset can appear up to one block (~10-20 ms) early.
    """

    def __init__(self, server: PulseServer, latency_ms: int = 5) -> None:
        self._server = server
        self._latency_ms = latency_ms
        self._chunks: list[bytes] = []
        self._stamps: list[tuple[int, float]] = []  # (frames received so far, monotonic arrival)
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._frames = 0

    def __enter__(self) -> Recorder:
        self._proc = subprocess.Popen(
            ["parec", "-d", f"{SINK}.monitor", "--format=float32le", f"--rate={RATE}", "--channels=2",
             f"--latency-msec={self._latency_ms}", "--raw"],
            env=self._server.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5.0
        while self._frames < RATE // 5:  # 200 ms flowing: the monitor is live and at low latency
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError("parec delivered no audio within 5 s")
            time.sleep(0.02)
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        pending = b""
        while True:
            try:
                data = os.read(fd, 8 * 1024)
            except OSError:
                break
            now = time.monotonic()
            if not data:
                break
            data = pending + data
            whole = len(data) - len(data) % 8
            pending = data[whole:]
            self._chunks.append(data[:whole])
            self._frames += whole // 8
            self._stamps.append((self._frames, now))

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    @property
    def frames(self) -> int:
        return self._frames

    def audio(self) -> np.ndarray:
        """Everything recorded so far, shape (n, 2) float32."""
        return np.frombuffer(b"".join(self._chunks), dtype="<f4").reshape(-1, 2).copy()

    def time_of(self, frame: int) -> float:
        """time.monotonic() at which recorded frame ``frame`` was captured (see class docstring)."""
        offset = min(arrival - end / RATE for end, arrival in self._stamps)
        return offset + frame / RATE

    def wait_for(self, seconds: float) -> None:
        time.sleep(seconds)


def normalised_correlation(recording: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Correlation of ``template`` at every lag of ``recording`` (mono), in [-1, 1].

    Normalised by the template's energy and the recording's energy under it, so
    level (master gain, pan) does not matter, only shape. Near-silent stretches
    score 0 rather than dividing by nothing.
    """
    x = np.asarray(recording, np.float64)
    h = np.asarray(template, np.float64)
    if len(x) < len(h):
        return np.zeros(0)
    size = 1 << (len(x) + len(h) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(h, size)), size)[: len(x) - len(h) + 1]
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    local = csum[len(h):] - csum[: len(x) - len(h) + 1]
    quiet = local < 1e-8 * len(h)  # below -80 dBFS RMS
    norm = corr / (np.sqrt(np.maximum(local, 1e-30)) * np.sqrt(np.sum(h * h)))
    norm[quiet] = 0.0
    return np.asarray(norm)


def onsets_by_correlation(recording: np.ndarray, template: np.ndarray, threshold: float = 0.6,
                          min_gap: int = RATE // 4) -> list[tuple[int, float]]:
    """Sample positions where ``template`` starts in ``recording``, with their correlation, in time order."""
    norm = normalised_correlation(recording, template).copy()
    found: list[tuple[int, float]] = []
    while norm.size:
        i = int(np.argmax(norm))
        if norm[i] < threshold:
            break
        found.append((i, float(norm[i])))
        norm[max(0, i - min_gap) : i + min_gap] = -np.inf
    return sorted(found)
