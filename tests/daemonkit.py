"""A `fer-audio run` child process for the tests: its clip, config, environment, and what it wrote.

Shared by test_daemon and test_privacy (a test module imports helpers from
here, never from another test module).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import soundfile
from media import load_photo, place, write_video
from pulse import onsets_by_correlation

from fer_audio.control import send_command
from fer_audio.resources import SOUNDS_DIR
from fer_audio.sound import load_sound

RATE = 48000
CLIP_FPS = 10.0
LOOP_S = 2.0  # the clip: an empty room, a face from 0.5 s to 1.5 s, the empty room again
MATCH = 0.9  # normalised correlation at which a stretch of the WAV "is" an earcon
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def face_clip(folder: Path) -> Path:
    """Two seconds at 10 fps: a real face (fixture photo) in the middle second, nobody around it.

    The face comes after the start-up sound has ended, so the two never overlap in the WAV.
    """
    photo = load_photo("obama-480p.jpg")
    scale = 180 / photo.shape[0]
    face = cv2.resize(photo, (round(photo.shape[1] * scale), 180))
    with_face = place(face, (320, 240), (320 - face.shape[1]) // 2, 30)
    empty = np.full((240, 320, 3), 128, np.uint8)
    n = int(LOOP_S * CLIP_FPS)
    frames = [with_face if n // 4 <= i < 3 * n // 4 else empty for i in range(n)]
    return write_video(folder / "face-loop.mp4", frames, CLIP_FPS)


def config_text(face_appeared: str = 'mode = "earcon"', extra: str = "", speech: bool = False) -> str:
    """Expressions silent, face_appeared as given, every event eligible, no rate limit.

    The face cue is 20 dB down: it may overlap a system sound (paused, warning), which must
    still be recognisable in the WAV; the correlation finds the quiet cue just as well.
    Speech is off unless asked for: a spoken warning lasts seconds and would cover cues.
    """
    silent = "".join(f'[cues.{k}]\nmode = "silent"\n' for k in EXPRESSIONS)
    return (
        "[source]\nmax_fps = 10\nretry_initial_s = 0.2\nretry_max_s = 0.4\n"
        "[smoothing]\nappear_after_s = 0.2\nlost_after_s = 0.5\n"
        '[audio]\nverbosity = "all"\nmin_interval_s = 0.0\nmax_delay_s = 2.0\n'
        f"[speech]\nenabled = {'true' if speech else 'false'}\n"
        f"{silent}[cues.face_appeared]\n{face_appeared}\ngain_db = -20\n"
        '[cues.face_lost]\nmode = "silent"\n' + extra
    )


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


@dataclass
class DaemonProc:
    """A `fer-audio run` child with its own runtime folder, config home and log file."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    runtime: Path
    log_path: Path
    out_path: Path
    wav: Path | None

    @property
    def socket(self) -> Path:
        return self.runtime / "fer-audio" / "control.sock"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 30.0, count: int = 1) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"fer-audio exited ({self.proc.returncode}) early:\n{self.log()}")
            return self.log().count(needle) >= count

        wait_until(seen, timeout, f"{needle!r} in the log:\n{self.log()}")

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fer_audio", "ctl", *args], env=self.env,
                              capture_output=True, text=True, timeout=30)

    def status(self) -> dict[str, Any]:
        """Straight over the socket (the `ctl` command costs a Python start-up; tests poll this)."""
        reply = send_command(self.socket, "status")
        assert reply.startswith("ok: "), reply
        out: dict[str, Any] = json.loads(reply[4:])
        return out

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, float]:
        """Send ``sig``; the exit status and the seconds until the process was gone."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def daemon_env(tmp: Path) -> dict[str, str]:
    runtime = tmp / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(XDG_RUNTIME_DIR=str(runtime), XDG_CONFIG_HOME=str(tmp / "config"), PYTHONUNBUFFERED="1")
    return env


def start_daemon(tmp: Path, source: str, config: str | None = None, *, audio: str = "wav",
                 extra_args: tuple[str, ...] = (), prefix: tuple[str, ...] = (),
                 global_args: tuple[str, ...] = (), name: str = "daemon",
                 env_extra: dict[str, str] | None = None) -> DaemonProc:
    """Start `fer-audio run` on ``source`` (a looping realtime file unless it is a camera index).

    ``audio``: "wav" records to <name>.wav, "silent" plays nothing, "device" uses the sound card.
    """
    env = {**daemon_env(tmp), **(env_extra or {})}
    args = [*prefix, sys.executable, "-m", "fer_audio", *global_args, "run", "--source", source, *extra_args]
    if not source.isdigit():
        args += ["--realtime", "--loop"]
    cfg_path = tmp / f"{name}.toml"
    cfg_path.write_text(config if config is not None else config_text())
    args += ["--config", str(cfg_path)]
    out_wav = tmp / f"{name}.wav" if audio == "wav" else None
    if out_wav is not None:
        args += ["--audio-out", str(out_wav)]
    elif audio == "silent":
        args += ["--no-audio"]  # else "device": the sound card, as configured
    log_path, out_path = tmp / f"{name}.log", tmp / f"{name}.out"
    with open(log_path, "wb") as err, open(out_path, "wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=tmp)
    return DaemonProc(proc, env, Path(env["XDG_RUNTIME_DIR"]), log_path, out_path, out_wav)


def read_mono(path: Path) -> np.ndarray:
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    assert rate == RATE
    return np.asarray(data.mean(axis=1))


def earcon(name: str) -> np.ndarray:
    return np.asarray(load_sound(SOUNDS_DIR / f"{name}.wav", RATE).data)


def onsets(wav: np.ndarray, name: str, start_s: float = 0.0, end_s: float | None = None,
           threshold: float = MATCH) -> list[float]:
    """Times (s) at which the earcon ``name`` starts in ``wav`` between start_s and end_s."""
    a = int(start_s * RATE)
    b = len(wav) if end_s is None else min(len(wav), int(end_s * RATE))
    found = onsets_by_correlation(wav[a:b], earcon(name), threshold=threshold)
    return [(a + i) / RATE for i, _ in found]
