"""The control socket, the instance lock, reload planning and the systemd unit, without a daemon.

Real Unix sockets, real SO_PEERCRED, real flock: only the daemon behind the
socket is replaced by a small handler that records what it was asked.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from fer_audio.config import Config, parse_config
from fer_audio.control import (
    MAX_MESSAGE,
    ControlError,
    ControlServer,
    NotRunning,
    describe_status,
    ensure_private_dir,
    runtime_dir,
    send_command,
    socket_path,
)
from fer_audio.daemon import (
    SHIPPED_EXEC_START,
    AlreadyRunning,
    InstanceLock,
    default_exec_start,
    plan_reload,
    service_unit,
)

ROOT = Path(__file__).resolve().parent.parent


class Recorder:
    """The daemon's side: records commands; ``reload`` can be made slow."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.reload_delay = 0.0

    def __call__(self, command: str) -> str:
        self.commands.append(command)
        if command == "reload":
            time.sleep(self.reload_delay)
        if command == "status":
            return 'ok: {"state": "running"}'
        return f"ok: {command} done"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "fer-audio"


@pytest.fixture
def server(folder: Path) -> Iterator[tuple[ControlServer, Recorder]]:
    rec = Recorder()
    srv = ControlServer(folder / "control.sock", rec, read_timeout_s=0.5)
    srv.start()
    try:
        yield srv, rec
    finally:
        srv.close()


def raw(path: Path, payload: bytes, shut: bool = False) -> bytes:
    """Send bytes as they are; the reply line as bytes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(payload)
        if shut:
            s.shutdown(socket.SHUT_WR)
        return s.makefile("rb").readline()


# -- protocol ------------------------------------------------------------------------------

def test_each_command_gets_one_reply_line(server: tuple[ControlServer, Recorder]) -> None:
    srv, rec = server
    for cmd in ("pause", "resume", "reload", "stop"):
        assert send_command(srv.path, cmd) == f"ok: {cmd} done"
    assert send_command(srv.path, "status") == 'ok: {"state": "running"}'
    # Case and surrounding blanks do not matter; a missing newline with EOF is fine.
    assert raw(srv.path, b"  PAUSE \r\n") == b"ok: pause done\n"
    assert raw(srv.path, b"resume", shut=True) == b"ok: resume done\n"
    assert rec.commands == ["pause", "resume", "reload", "stop", "status", "pause", "resume"]


@pytest.mark.parametrize(("payload", "expected"), [
    (b"reboot\n", b"error: unknown command 'reboot'; expected one of pause, resume, status, describe, reload, "
     b"stop\n"),
    (b"\n", b"error: empty command; expected one of pause, resume, status, describe, reload, "
     b"stop\n"),
    (b"\xc3\xa9t\xc3\xa9\n", b"error: command is not plain ASCII text\n"),
    (b"pa\x07use\n", b"error: command contains control characters\n"),
    (b"status; rm -rf ~\n", b"error: unknown command 'status; rm -rf ~'; expected one of pause, resume, "
                            b"status, describe, reload, stop\n"),
])
def test_garbage_gets_an_error_line_and_reaches_nobody(server: tuple[ControlServer, Recorder],
                                                       payload: bytes, expected: bytes) -> None:
    srv, rec = server
    assert raw(srv.path, payload) == expected
    assert rec.commands == []


def test_an_oversized_message_is_refused_without_reading_it_all(server: tuple[ControlServer, Recorder]) -> None:
    srv, rec = server
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(srv.path))
        s.sendall(b"p" * (MAX_MESSAGE + 1))
        reply = s.makefile("rb").readline()
    assert reply == f"error: command longer than {MAX_MESSAGE} bytes\n".encode()
    assert rec.commands == []


def test_a_silent_client_is_timed_out(server: tuple[ControlServer, Recorder]) -> None:
    srv, rec = server
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(srv.path))
        s.sendall(b"sta")  # and then nothing
        reply = s.makefile("rb").readline()
    assert reply == b"error: no command received within 0.5 s\n"
    assert rec.commands == []


def test_idle_and_slow_clients_do_not_block_others(server: tuple[ControlServer, Recorder]) -> None:
    srv, rec = server
    rec.reload_delay = 4.0  # blocked behind it, status would wait ~4 s; a loaded machine still answers in < 2
    idle = []
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(srv.path))
        idle.append(s)
    slow = threading.Thread(target=send_command, args=(srv.path, "reload"))
    slow.start()
    try:
        time.sleep(0.1)  # the reload is now being handled
        t0 = time.monotonic()
        assert send_command(srv.path, "status").startswith("ok: ")
        elapsed = time.monotonic() - t0
        assert elapsed < 2.0, f"status waited {elapsed:.2f} s behind idle clients and a slow reload"
    finally:
        for s in idle:
            s.close()
        slow.join(8)
    assert "reload" in rec.commands


def _full_backlog(path: Path) -> tuple[socket.socket, list[socket.socket]]:
    """A listener at ``path`` that accepts nobody, and the connections that fill its backlog."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    queued = []
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(str(path))
        except BlockingIOError:
            s.close()
            return listener, queued
        queued.append(s)


def test_a_client_waits_while_the_backlog_is_full(tmp_path: Path) -> None:
    """A daemon busy elsewhere has not accepted yet: `ctl` must wait, not fail with EAGAIN."""
    path = tmp_path / "busy.sock"
    listener, queued = _full_backlog(path)
    try:
        assert queued, "the backlog took no connection at all"
        replies: list[str] = []
        client = threading.Thread(target=lambda: replies.append(send_command(path, "status", timeout_s=5)))
        client.start()
        time.sleep(0.3)  # the client is now retrying against the full backlog
        assert client.is_alive() and not replies
        listener.settimeout(5)
        for _ in range(len(queued) + 1):  # the daemon catches up; the last one is our client
            conn, _ = listener.accept()
            conn.settimeout(1)
            with suppress(OSError):
                if conn.recv(MAX_MESSAGE) == b"status\n":
                    conn.sendall(b"ok: caught up\n")
            conn.close()
        client.join(5)
        assert replies == ["ok: caught up"]
    finally:
        for s in queued:
            s.close()
        listener.close()


def test_a_full_backlog_that_never_drains_times_out_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "stuck.sock"
    listener, queued = _full_backlog(path)
    try:
        with pytest.raises(ControlError, match="did not accept the connection within 0.3 s"):
            send_command(path, "status", timeout_s=0.3)
    finally:
        for s in queued:
            s.close()
        listener.close()


def test_another_uid_is_refused_by_peer_credentials(folder: Path) -> None:
    rec = Recorder()
    srv = ControlServer(folder / "control.sock", rec, allowed_uid=os.getuid() + 1)
    srv.start()
    try:
        assert send_command(srv.path, "stop") == "error: permission denied"
    finally:
        srv.close()
    assert rec.commands == [] and srv.refused == 1


@pytest.mark.skipif(os.getuid() != 0 or not Path("/usr/bin/python3").exists(),
                    reason="needs root (to run a client as another user) and /usr/bin/python3")
def test_another_user_is_stopped_by_folder_socket_and_peer_checks() -> None:
    import tempfile

    # A parent anyone may enter, as /run/user/<uid> is not but /tmp is: only our 0700 folder
    # and the 0600 socket stand in the way.
    with tempfile.TemporaryDirectory(dir="/tmp") as parent:
        os.chmod(parent, 0o755)
        rec = Recorder()
        srv = ControlServer(Path(parent) / "fer-audio" / "control.sock", rec)
        srv.start()
        try:
            code = ("import socket, sys; s = socket.socket(socket.AF_UNIX); "
                    "s.connect(sys.argv[1]); s.sendall(b'stop\\n'); print(s.recv(100))")
            r = subprocess.run(["/usr/bin/python3", "-c", code, str(srv.path)], user=65534, group=65534,
                               capture_output=True, text=True, timeout=30, cwd="/")
            os.chmod(srv.path.parent, 0o755)  # with the folder opened up, the socket's 0600 stops it
            r2 = subprocess.run(["/usr/bin/python3", "-c", code, str(srv.path)], user=65534, group=65534,
                                capture_output=True, text=True, timeout=30, cwd="/")
            os.chmod(srv.path, 0o666)  # and with both opened up, SO_PEERCRED still does
            r3 = subprocess.run(["/usr/bin/python3", "-c", code, str(srv.path)], user=65534, group=65534,
                                capture_output=True, text=True, timeout=30, cwd="/")
        finally:
            srv.close()
    assert r.returncode != 0 and "PermissionError" in r.stderr, r.stderr
    assert r2.returncode != 0 and "PermissionError" in r2.stderr, r2.stderr
    assert r3.returncode == 0 and r3.stdout.strip() == "b'error: permission denied\\n'", (r3.stdout, r3.stderr)
    assert rec.commands == [] and srv.refused == 1


def test_socket_and_folder_modes(server: tuple[ControlServer, Recorder]) -> None:
    srv, _ = server
    assert stat.S_IMODE(srv.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(srv.path.lstat().st_mode) == 0o600


def test_close_removes_the_socket(folder: Path) -> None:
    srv = ControlServer(folder / "control.sock", Recorder())
    srv.start()
    srv.close()
    assert not srv.path.exists()
    with pytest.raises(NotRunning, match="no socket at"):
        send_command(srv.path, "status")


# -- the client without a server ------------------------------------------------------------

def test_client_reports_missing_and_stale_sockets(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sock"
    with pytest.raises(NotRunning) as e:
        send_command(missing, "status")
    assert str(e.value) == f"fer-audio is not running (no socket at {missing})"
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # a daemon killed with SIGKILL leaves this behind
    with pytest.raises(NotRunning, match="stale socket"):
        send_command(stale, "status")


def test_client_times_out_on_a_server_that_never_answers(tmp_path: Path) -> None:
    path = tmp_path / "mute.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(1)
    try:
        with pytest.raises(ControlError, match="no reply from fer-audio within 0.3 s"):
            send_command(path, "status", timeout_s=0.3)
    finally:
        s.close()


# -- where the socket lives -------------------------------------------------------------------

def test_runtime_dir_prefers_xdg_and_falls_back_to_tmp(tmp_path: Path) -> None:
    assert runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)}) == tmp_path / "fer-audio"
    fallback = Path(f"/tmp/fer-audio-{os.getuid()}")
    assert runtime_dir({}) == fallback
    assert runtime_dir({"XDG_RUNTIME_DIR": "relative/dir"}) == fallback
    assert runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path / "missing")}) == fallback
    assert socket_path({"XDG_RUNTIME_DIR": str(tmp_path)}) == tmp_path / "fer-audio" / "control.sock"


def test_private_dir_is_created_0700_and_tightened(tmp_path: Path) -> None:
    d = ensure_private_dir(tmp_path / "a")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    loose = tmp_path / "b"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o777)
    ensure_private_dir(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700


def test_private_dir_refuses_a_symlink_or_a_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ControlError, match="is not a folder"):
        ensure_private_dir(link)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ControlError, match="exists and is not a folder|is not a folder"):
        ensure_private_dir(tmp_path / "file")


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to make a folder owned by someone else")
def test_private_dir_refuses_a_folder_someone_else_made(tmp_path: Path) -> None:
    planted = tmp_path / "fer-audio"
    planted.mkdir(mode=0o777)
    os.chown(planted, 65534, 65534)
    with pytest.raises(ControlError, match="belongs to uid 65534"):
        ensure_private_dir(planted)


# -- the instance lock -----------------------------------------------------------------------

def test_instance_lock_admits_one_holder_at_a_time(tmp_path: Path) -> None:
    first, second = InstanceLock(tmp_path / "lock"), InstanceLock(tmp_path / "lock")
    first.acquire()
    with pytest.raises(AlreadyRunning, match=f"already running \\(pid {os.getpid()}"):
        second.acquire()
    first.release()
    second.acquire()  # free again once released (or once the holder dies)
    second.release()


def test_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    code = ("import sys, time; from pathlib import Path; from fer_audio.daemon import InstanceLock; "
            "InstanceLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning, match=f"pid {p.pid}"):
            InstanceLock(tmp_path / "lock").acquire()
    finally:
        p.kill()
        p.wait(10)
    lock = InstanceLock(tmp_path / "lock")
    lock.acquire()  # a SIGKILLed daemon leaves no stale lock behind
    lock.release()


# -- reload planning ---------------------------------------------------------------------------

def cfg(text: str = "") -> Config:
    return parse_config(text)


def test_a_mapping_change_applies_live_without_rebuilding_audio() -> None:
    old = cfg()
    new = cfg('[cues.happy]\nmode = "speech"\n[smoothing]\nmin_dwell_s = 0.8\n[audio]\nverbosity = "all"\n')
    plan = plan_reload(old, new)
    assert set(plan.changed) == {"cues", "smoothing", "audio"}
    assert plan.needs_restart == () and not plan.rebuild_audio
    assert plan.effective == new


def test_camera_and_model_sections_wait_for_a_restart() -> None:
    old = cfg()
    new = cfg('[source]\nuri = "1"\n[detector]\nbackend = "haar"\n[model]\nthreads = 4\n'
              '[tracker]\nmax_missed = 9\n[cues.sad]\nmode = "silent"\n')
    plan = plan_reload(old, new)
    assert set(plan.needs_restart) == {"source", "detector", "model", "tracker"}
    e = plan.effective
    assert (e.source, e.detector, e.model, e.tracker) == (old.source, old.detector, old.model, old.tracker)
    assert e.cues == new.cues
    # Reloading the same file again still reports them: the running ones still differ.
    assert set(plan_reload(e, new).needs_restart) == {"source", "detector", "model", "tracker"}


def test_output_or_voice_changes_rebuild_a_device_output() -> None:
    old = cfg()
    assert plan_reload(old, cfg("[audio]\nmaster_db = -20\n")).rebuild_audio
    assert plan_reload(old, cfg("[speech]\nrate_wpm = 150\n")).rebuild_audio
    assert not plan_reload(old, cfg("[audio]\nmin_interval_s = 3\n")).rebuild_audio


def test_a_wav_recording_is_never_rebuilt_mid_file(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    old = cfg(f'[audio]\noutput = "wav"\nwav_path = "{wav}"\n')
    new = cfg(f'[audio]\noutput = "wav"\nwav_path = "{wav}"\nmaster_db = -3\nverbosity = "all"\n'
              "[speech]\nrate_wpm = 150\n")
    plan = plan_reload(old, new)
    assert not plan.rebuild_audio
    assert plan.effective.audio.master_db == old.audio.master_db  # kept until restart
    assert plan.effective.audio.verbosity == "all"  # the live part applies
    assert plan.effective.speech == old.speech
    assert len(plan.needs_restart) == 2


def test_status_line_reads_as_words() -> None:
    line = describe_status({"state": "paused", "source": "camera 0", "fps": 14.96, "faces": 1,
                            "last_cue": "happy (person 2) at 12.0 s"})
    assert line == "paused, source camera 0, 15.0 fps, 1 face, last cue happy (person 2) at 12.0 s"
    assert describe_status({"state": "running", "source": "camera 0", "fps": 0, "faces": 0,
                            "last_cue": ""}).endswith("0 faces, last cue none")
    assert describe_status({"state": "running", "source": "camera 0", "fps": 15, "faces": 1, "last_cue": "",
                            "underruns": 0}).endswith("1 face, last cue none")
    assert describe_status({"state": "running", "source": "camera 0", "fps": 15, "faces": 1, "last_cue": "",
                            "underruns": 2}).endswith("last cue none, sound output underran 2 times")


# -- systemd ----------------------------------------------------------------------------------

def test_shipped_unit_is_the_generated_one() -> None:
    shipped = (ROOT / "packaging" / "fer-audio.service").read_text()
    assert shipped == service_unit()
    for line in ("Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID", f"ExecStart={SHIPPED_EXEC_START}",
                 "RestrictAddressFamilies=AF_UNIX", "WantedBy=default.target"):
        assert line in shipped.splitlines()


def test_install_service_writes_a_unit_for_this_python(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    conf = tmp_path / "my config.toml"
    conf.write_text("")
    dry = subprocess.run([sys.executable, "-m", "fer_audio", "install-service", "--dry-run", "--config", str(conf)],
                         env=env, capture_output=True, text=True, timeout=60)
    unit = tmp_path / "systemd" / "user" / "fer-audio.service"
    assert dry.returncode == 0 and not unit.exists()
    exec_line = f'ExecStart={sys.executable} -m fer_audio run --config "{conf}"'
    assert exec_line in dry.stdout.splitlines()
    real = subprocess.run([sys.executable, "-m", "fer_audio", "install-service", "--config", str(conf)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert real.returncode == 0, real.stderr
    assert exec_line in unit.read_text().splitlines()
    assert "systemctl --user enable --now fer-audio.service" in real.stdout
    assert default_exec_start(conf) == exec_line.removeprefix("ExecStart=")


def test_install_service_refuses_a_broken_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[audio]\nvolume = 3\n")
    r = subprocess.run([sys.executable, "-m", "fer_audio", "install-service", "--dry-run", "--config", str(bad)],
                       env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == f"fer-audio: error: {bad}: audio.volume: unknown key"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_generated_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "fer-audio.service"
    unit.write_text(service_unit(default_exec_start()))
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    r = subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], capture_output=True, text=True,
                       env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)}, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "" and r.stdout.strip() == "", r.stderr
