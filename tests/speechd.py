"""A private speech-dispatcher that speaks into the PulseAudio null sink of tests/pulse.py.

``speech-dispatcher -s -t 0`` (single process, never exits for lack of clients) runs
with its own XDG_RUNTIME_DIR and HOME, so it neither finds nor disturbs a user's
server, and with PULSE_SERVER pointing at the private PulseAudio, so what it says
lands in the ``fa_test`` sink that :class:`pulse.Recorder` records. Its output module
is Debian's espeak-ng (package speech-dispatcher-espeak-ng).

Tests reach it through ``SPEECHD_ADDRESS=unix_socket:<path>``, which is how
speech-dispatcher's own clients (spd-say, libspeechd) are pointed at a server too.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from pulse import PulseServer, stop_process


def missing() -> str | None:
    if shutil.which("speech-dispatcher") is None:
        return "speech-dispatcher is not installed (apt-get install speech-dispatcher speech-dispatcher-espeak-ng)"
    if not Path("/usr/lib/speech-dispatcher-modules/sd_espeak-ng").exists():
        return "speech-dispatcher's espeak-ng module is not installed (apt-get install speech-dispatcher-espeak-ng)"
    return None


class SpeechDispatcher:
    """One private server; :meth:`start` again after :meth:`kill` brings it back on the same socket."""

    def __init__(self, pulse: PulseServer, base: Path | None = None) -> None:
        self.pulse = pulse
        self.root = Path(tempfile.mkdtemp(prefix="fa-speechd-", dir=base))
        self.runtime = self.root / "run"
        self.home = self.root / "home"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.runtime / "speech-dispatcher" / "speechd.sock"

    @property
    def address(self) -> str:
        return f"unix_socket:{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        return {**self.pulse.env, "XDG_RUNTIME_DIR": str(self.runtime), "HOME": str(self.home),
                "SPEECHD_ADDRESS": self.address}

    def start(self, timeout: float = 10.0) -> None:
        self.runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.proc = subprocess.Popen(["speech-dispatcher", "-s", "-t", "0", "-l", "2"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"speech-dispatcher exited with {self.proc.returncode}: {err.strip()[:300]}")
            if self.socket.exists():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"speech-dispatcher made no socket at {self.socket} within {timeout:g} s")

    def kill(self) -> None:
        """SIGKILL: the way a crash looks to its clients (no goodbye, the socket file stays)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)
        # Its espeak-ng module is a child of its own; without the parent it exits on EOF.
        self.proc = None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)

    def discard(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_speechd(pulse: PulseServer, base: Path | None = None) -> SpeechDispatcher:
    reason = missing()
    if reason:
        pytest.skip(reason)
    server = SpeechDispatcher(pulse, base)
    server.start()
    return server
