"""`fer-audio run` as a service, tested as a real process: socket, signals, reload, faults.

The daemon runs on a looping clip of a real face (the committed fixture
photos), paced in real time, with its audio written to a WAV on the source
timeline. What the user would hear is checked in that WAV by correlating it
with the earcon files, so "the cue changed after the reload" means the
sound changed, not a counter.

Expression cues are silent in these runs and ``face_appeared`` plays an
earcon instead: a face is found reliably in every loop, whatever the
expression model thinks of it, so the tests do not depend on its accuracy.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from daemonkit import (
    CLIP_FPS,
    LOOP_S,
    RATE,
    DaemonProc,
    config_text,
    daemon_env,
    face_clip,
    onsets,
    read_mono,
    start_daemon,
    wait_until,
)
from media import load_photo, place

from fer_audio.resources import SOUNDS_DIR

# -- one daemon for the read-mostly tests -----------------------------------------------------

@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> Iterator[DaemonProc]:
    d = start_daemon(tmp_path_factory.mktemp("daemon"), str(clip))
    try:
        d.wait_for_log("ready:")
        yield d
    finally:
        d.kill()


def test_ctl_status_is_one_plain_line(daemon: DaemonProc) -> None:
    wait_until(lambda: daemon.status()["cues"] >= 1, 20, "a first face_appeared cue")
    r = daemon.ctl("status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("running, source video file ") and "face-loop.mp4" in line
    assert " fps, " in line and "last cue face_appeared (person " in line
    assert "{" not in line  # plain words for a screen reader, not JSON
    raw = daemon.status()
    assert raw["state"] == "running" and raw["pid"] == daemon.proc.pid and raw["fps"] > 0


def test_pause_stops_inference_and_cues_and_resume_restarts_them(daemon: DaemonProc) -> None:
    r = daemon.ctl("pause")
    assert (r.returncode, r.stdout.strip()) == (0, "paused")
    assert daemon.ctl("pause").stdout.strip() == "already paused"
    before = daemon.status()
    assert before["state"] == "paused"
    # A full loop (a face coming into view and leaving) while paused.
    wait_until(lambda: daemon.status()["frames"] >= before["frames"] + LOOP_S * CLIP_FPS + 3, 15,
               "frames to keep arriving while paused")
    during = daemon.status()
    assert during["analysed"] == before["analysed"], "a paused daemon must not run the model"
    assert during["cues"] == before["cues"], "a paused daemon must stay silent"
    r = daemon.ctl("resume")
    assert (r.returncode, r.stdout.strip()) == (0, "resumed")
    assert daemon.status()["state"] == "running"
    wait_until(lambda: daemon.status()["cues"] > before["cues"], 15, "cues after resuming")
    assert daemon.status()["analysed"] > before["analysed"]


def test_socket_is_user_only(daemon: DaemonProc) -> None:
    folder = daemon.socket.parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    st = daemon.socket.lstat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()


def test_second_instance_is_refused_with_exit_2(daemon: DaemonProc, clip: Path, tmp_path: Path) -> None:
    env = dict(daemon.env)
    proc = subprocess.run([sys.executable, "-m", "fer_audio", "run", "--source", str(clip), "--no-audio"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "already running" in lines[0] and str(daemon.proc.pid) in lines[0], proc.stderr
    assert daemon.proc.poll() is None and daemon.ctl("status").returncode == 0


def test_garbage_on_the_socket_gets_an_error_and_harms_nothing(daemon: DaemonProc) -> None:
    import socket

    for payload in (b"reboot\n", b"\xff\xfe\n", b"x" * 5000, b"\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(daemon.socket))
            s.sendall(payload)
            reply = s.makefile("rb").readline()
        assert reply.startswith(b"error: "), (payload[:20], reply)
        assert reply.endswith(b"\n") and reply.count(b"\n") == 1
    assert daemon.status()["state"] == "running"


def test_sigterm_exits_zero_promptly_and_cleans_up(daemon: DaemonProc) -> None:
    # Last in this module: it stops the shared daemon.
    rc, seconds = daemon.terminate()
    assert rc == 0, daemon.log()
    assert seconds < 3.0, f"took {seconds:.2f} s to stop"
    assert "Traceback" not in daemon.log()
    assert "stopped by SIGTERM" in daemon.log()
    assert not daemon.socket.exists(), "the socket is removed on exit"
    assert "ended: stopped by SIGTERM" in daemon.stdout()
    # The start-up sound opens the recording, and the pause and resume earcons are in it.
    assert daemon.wav is not None
    wav = read_mono(daemon.wav)
    assert onsets(wav, "startup", 0.0, 0.5) == [0.0]
    # (The two are the same notes in opposite order; shifted by a note they score 0.7 on each other.)
    assert len(onsets(wav, "paused")) == 1 and len(onsets(wav, "resumed")) == 1
    assert len(onsets(wav, "face_appeared")) >= 2


# -- reload ---------------------------------------------------------------------------------

def test_sighup_keeps_old_config_on_error_and_applies_a_good_one(tmp_path: Path, clip: Path) -> None:
    d = start_daemon(tmp_path, str(clip), config_text('mode = "earcon"'))
    try:
        d.wait_for_log("ready:")
        wait_until(lambda: d.status()["cues"] >= 2, 20, "two face_appeared cues")
        cfg = tmp_path / "daemon.toml"

        # A broken file: reported in the log and by the warning sound; the old mapping goes on.
        good = cfg.read_text()
        cfg.write_text(good + "[smoothing]\nhalf_life = 3\n")  # TOML error: the table twice
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for_log("reload failed: ")
        assert "configuration not reloaded" in d.log()
        t_bad = d.status()["source_t"]
        cues = d.status()["cues"]
        wait_until(lambda: d.status()["cues"] >= cues + 1, 15, "cues to go on with the old mapping")
        # An unknown key is refused too, naming it; ctl reload reports the failure with exit 2.
        cfg.write_text(good.replace("[smoothing]\n", "[smoothing]\ncooldown = 3\n"))
        r = d.ctl("reload")
        assert r.returncode == 2 and "smoothing.cooldown: unknown key" in r.stderr, r.stderr

        # A good file: face_appeared now sounds like the happy earcon.
        happy = SOUNDS_DIR / "happy.wav"
        cfg.write_text(config_text(f'mode = "earcon"\nearcon = "{happy}"'))
        t_sent = d.status()["source_t"]
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for_log("reloaded ")
        t_reload = d.status()["source_t"]  # the reload took effect between t_sent and this
        cues = d.status()["cues"]
        wait_until(lambda: d.status()["cues"] >= cues + 2, 15, "cues after the reload")
        t_end = d.status()["source_t"]
        rc, _ = d.terminate()
        assert rc == 0 and "Traceback" not in d.log()
    finally:
        d.kill()
    assert d.wav is not None
    wav = read_mono(d.wav)
    # Before the good reload: the face_appeared earcon, never the happy one; after it, the reverse.
    face, happy_at = onsets(wav, "face_appeared"), onsets(wav, "happy")
    assert len([t for t in face if t < t_sent]) >= 2  # (a warning may cover one)
    assert [t for t in face if t > t_reload] == []
    assert len(happy_at) >= 2 and min(happy_at) > t_sent, (happy_at, t_sent)
    assert max(happy_at) <= t_end + 0.1
    # Each failed reload sounded the warning once (the second came through ctl).
    assert len(onsets(wav, "warning", max(t_bad - 2, 0), t_reload + 1)) == 2
    assert len(onsets(wav, "warning")) == 2


def test_reload_of_sections_that_need_the_camera_says_so(tmp_path: Path, clip: Path) -> None:
    d = start_daemon(tmp_path, str(clip), audio="silent")
    try:
        d.wait_for_log("ready:")
        cfg = tmp_path / "daemon.toml"
        cfg.write_text(cfg.read_text().replace("max_fps = 10", "max_fps = 5")
                       + "[detector]\nscore_threshold = 0.8\n")
        r = d.ctl("reload")
        assert r.returncode == 0, r.stderr
        assert "detector" in r.stdout and "source" in r.stdout
        d.wait_for_log("source settings changed; they take effect when fer-audio restarts")
        assert "detector settings changed" in d.log()
        assert d.ctl("status").returncode == 0
        assert d.terminate()[0] == 0
    finally:
        d.kill()


# -- faults -----------------------------------------------------------------------------------

def test_missing_camera_warns_once_retries_and_stops_cleanly(tmp_path: Path) -> None:
    # No /dev/video9 here: the camera is "not plugged in". Speech is on: the warning is spoken.
    # No start-up sound: the first warning comes at once and would overlap it in the WAV.
    d = start_daemon(tmp_path, "9", config_text(speech=True).replace("[audio]\n", "[audio]\nstartup_sound = false\n"))
    try:
        d.wait_for_log("ready:")
        d.wait_for_log("camera 9: still unavailable", count=3, timeout=20)
        status = d.status()
        assert status["state"] == "running" and status["source"] == "camera 9"
        rc, seconds = d.terminate(signal.SIGINT)
        assert rc == 0 and seconds < 3.0, (rc, seconds)
    finally:
        d.kill()
    log = d.log()
    warned = [ln for ln in log.splitlines() if ln.startswith("fer-audio: WARNING: camera lost: ")]
    assert len(warned) == 1, log  # sounded once per incident, not once per retry
    assert "Traceback" not in log
    assert d.wav is not None
    wav = read_mono(d.wav)
    warnings = onsets(wav, "warning")
    assert len(warnings) == 1
    # The words follow the earcon: sound well after the warning's 0.78 s, and nothing after them.
    after = wav[int((warnings[0] + 0.9) * RATE):]
    voiced = np.flatnonzero(np.abs(after) > 1e-3)
    assert voiced.size and (voiced[-1] - voiced[0]) / RATE > 0.5, "the warning is spoken"


def test_model_failing_its_checksum_refuses_to_start(tmp_path: Path, clip: Path) -> None:
    from fer_audio.resources import DEFAULT_CARD

    card = json.loads(DEFAULT_CARD.read_text())
    tflite = card["files"]["tflite"]
    tflite["path"] = str((DEFAULT_CARD.parent / tflite["path"]).resolve())
    tflite["sha256"] = "0" * 64
    (tmp_path / "card.json").write_text(json.dumps(card))
    d = start_daemon(tmp_path, str(clip), config_text(extra=f'[model]\ncard = "{tmp_path / "card.json"}"\n'),
                     audio="silent", global_args=("-q",))
    try:
        rc = d.proc.wait(60)
    finally:
        d.kill()
    lines = [ln for ln in d.log().splitlines() if ln.strip()]
    assert rc == 2
    assert len(lines) == 1 and lines[0].startswith("fer-audio: error: "), d.log()
    assert "sha256" in lines[0] and "does not match" in lines[0]
    assert not d.socket.exists()


def test_looping_source_file_deleted_mid_run_exits_as_a_failure(tmp_path: Path, clip: Path) -> None:
    # systemd restarts the service on failure; a vanished video must not look like a normal end.
    mine = tmp_path / "mine.mp4"
    mine.write_bytes(clip.read_bytes())
    d = start_daemon(tmp_path, str(mine), audio="silent")
    try:
        d.wait_for_log("ready:")
        mine.unlink()  # the open pass plays on; the next pass cannot start
        rc = d.proc.wait(LOOP_S * 3 + 10)
    finally:
        d.kill()
    assert rc == 1, d.log()
    errors = [ln for ln in d.log().splitlines() if ln.startswith("fer-audio: error: ")]
    assert errors == [f"fer-audio: error: video file {mine}: could not be opened again after a pass of the looping file"], \
        d.log()
    assert "Traceback" not in d.log()
    assert "ended: source failed" in d.stdout()


def test_ctl_without_a_daemon_says_so_in_one_line(tmp_path: Path) -> None:
    env = daemon_env(tmp_path)
    for action in ("status", "pause", "stop"):
        r = subprocess.run([sys.executable, "-m", "fer_audio", "ctl", action], env=env,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1
        sock = tmp_path / "run" / "fer-audio" / "control.sock"
        assert r.stderr.strip() == f"fer-audio is not running (no socket at {sock})"
        assert r.stdout == ""


def test_ctl_stop_ends_the_run(tmp_path: Path, clip: Path) -> None:
    d = start_daemon(tmp_path, str(clip), audio="silent")
    try:
        d.wait_for_log("ready:")
        r = d.ctl("stop")
        assert (r.returncode, r.stdout.strip()) == (0, "stopping")
        assert d.proc.wait(10) == 0
    finally:
        d.kill()
    assert "stopped by the control socket" in d.log()


def test_losing_the_sound_server_keeps_the_service_running(tmp_path: Path, clip: Path) -> None:
    from pulse import missing_tools, start_private_server

    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    server = start_private_server(tmp_path)
    env = {"XDG_RUNTIME_DIR": str(server.runtime_dir), "PULSE_SERVER": f"unix:{server.socket}",
           "HOME": str(server.home)}
    d = start_daemon(tmp_path, str(clip), audio="device", env_extra=env)
    try:
        d.wait_for_log("ready:")
        wait_until(lambda: d.status()["cues"] >= 1, 20, "a cue on the sound card")
        assert d.status()["audio"] == "device"
        assert isinstance(d.status()["underruns"], int)  # the device's own count, reported
        server.stop()  # the sound server dies under the open stream
        d.wait_for_log("audio device lost")
        frames = d.status()["frames"]
        wait_until(lambda: d.status()["frames"] > frames + CLIP_FPS, 10, "frames while the sound is gone")
        server.start()
        d.wait_for_log("audio device is back", timeout=30)
        assert d.status()["audio"] == "device"
        assert d.terminate()[0] == 0
    finally:
        d.kill()
        server.discard()
    assert d.log().count("audio device lost") == 1 and "Traceback" not in d.log()


# -- a camera unplugged and plugged back, in process ------------------------------------------

class FakeCamera:
    """Stands in for a USB webcam (none exists here): real face frames, and a cable to pull."""

    def __init__(self, plugged: threading.Event, frame: np.ndarray) -> None:
        self._plugged = plugged
        self._frame = frame
        self._open = plugged.is_set()

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return self._open

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(1 / 15)
        if not (self._open and self._plugged.is_set()):
            return False, None
        return True, self._frame.copy()

    def get(self, prop_id: int) -> float:
        return 15.0 if prop_id == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self._open = False


def test_camera_lost_mid_run_warns_once_per_incident_and_recovers(tmp_path: Path) -> None:
    from fer_audio.config import parse_config
    from fer_audio.daemon import Daemon
    from fer_audio.pipeline import build_stages
    from fer_audio.sources import LiveSource

    plugged = threading.Event()
    plugged.set()
    photo = load_photo("obama-480p.jpg")
    frame = place(cv2.resize(photo, (135, 180)), (320, 240), 92, 30)

    def build(cfg: Any) -> Any:
        source = LiveSource(lambda: FakeCamera(plugged, frame), "camera 0", max_fps=10,
                            retry_initial_s=0.1, retry_max_s=0.2)
        return build_stages(cfg, source=source)

    wav = tmp_path / "camera.wav"
    cfg = parse_config(config_text(), base=tmp_path)
    cfg = cfg.model_copy(update={"audio": cfg.audio.model_copy(update={"output": "wav", "wav_path": wav})})
    (tmp_path / "run").mkdir(mode=0o700)
    daemon = Daemon(cfg, lambda: cfg, runtime=tmp_path / "run" / "fer-audio", build=build,
                    handle_signals=False)
    runner = threading.Thread(target=daemon.run, name="daemon under test")
    runner.start()
    try:
        assert daemon.ready.wait(60), "daemon did not start"
        pipe = daemon.pipe
        assert pipe is not None

        def lost_warnings() -> int:
            return sum(1 for w in pipe.stats.warnings if w.startswith("camera lost"))

        for incident in (1, 2):
            wait_until(lambda: pipe.status()["faces"] == 1, 20, "the face on the camera")
            plugged.clear()
            wait_until(lambda n=incident: lost_warnings() == n, 10, "the camera-lost warning")
            time.sleep(1.0)  # several reopen attempts fail meanwhile ...
            assert lost_warnings() == incident  # ... and none of them warns again
            frames = pipe.stats.frames
            plugged.set()
            wait_until(lambda f=frames: pipe.stats.frames > f + 5, 20, "frames after plugging back")
    finally:
        daemon.stop()
        runner.join(15)
    assert not runner.is_alive()
    audio = read_mono(wav)
    assert len(onsets(audio, "warning")) == 2  # one per incident
    assert len(onsets(audio, "resumed")) == 2  # "camera back", each time
