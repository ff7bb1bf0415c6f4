"""systemd notification: fer_audio.notify against a datagram socket the test listens on, then the real service.

The second part runs `fer-audio run` as a child with NOTIFY_SOCKET and WATCHDOG_USEC
set, as systemd would, and reads what it sends: READY=1 only after start-up, readable
STATUS= lines, WATCHDOG=1 at the asked-for rate from the frame loop, STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_daemon import face_clip, start_daemon

from fer_audio.daemon import service_unit
from fer_audio.notify import Notifier


class Listener:
    """What systemd's end of NOTIFY_SOCKET would receive, with arrival times."""

    def __init__(self, path: Path | str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path) if isinstance(path, Path) else path)
        self.sock.settimeout(0.1)
        self.got: list[tuple[float, dict[str, str]]] = []

    def drain(self, seconds: float = 0.0) -> list[tuple[float, dict[str, str]]]:
        end = time.monotonic() + seconds
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                if time.monotonic() >= end:
                    return self.got
                continue
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            self.got.append((time.monotonic(), fields))

    def with_key(self, key: str) -> list[tuple[float, dict[str, str]]]:
        return [(t, m) for t, m in self.got if key in m]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[Path, Listener]]:
    path = tmp_path / "notify.sock"
    lst = Listener(path)
    yield path, lst
    lst.close()


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_messages_are_datagrams_of_key_value_lines(listener: tuple[Path, Listener]) -> None:
    path, lst = listener
    clock = Clock()
    n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}, clock=clock)
    assert n.enabled and n.watchdog_s == 2.0
    n.ready("running, source camera 0")
    for step in range(10):  # a frame loop at 10 fps for 1 s, then 1.1 s more
        clock.t += 0.1 if step < 9 else 1.2
        n.watchdog()
    n.status("paused")
    n.status("paused")  # unchanged: not sent again
    n.stopping("stopping: stopped by SIGTERM")
    msgs = [m for _, m in lst.drain(0.2)]
    assert msgs[0] == {"READY": "1", "STATUS": "running, source camera 0", "MAINPID": str(os.getpid())}
    assert [m for m in msgs if "WATCHDOG" in m] == [{"WATCHDOG": "1"}] * 2  # at t=0 and after half the period
    assert {"STATUS": "paused"} in msgs and msgs.count({"STATUS": "paused"}) == 1
    assert msgs[-1] == {"STOPPING": "1", "STATUS": "stopping: stopped by SIGTERM"}


def test_abstract_socket_and_no_socket(tmp_path: Path) -> None:
    name = f"fa-notify-{os.getpid()}"
    lst = Listener("\0" + name)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready("up")
        assert lst.drain(0.2)[0][1]["READY"] == "1"
    finally:
        lst.close()
    outside = Notifier({})
    assert not outside.enabled and not outside.send("READY=1")
    other_pid = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_s is None  # the watchdog is meant for another process


def test_a_dead_notify_socket_is_one_warning_never_an_exception(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody"), "WATCHDOG_USEC": "1"})
    with caplog.at_level(logging.WARNING, logger="fer_audio.notify"):
        for _ in range(3):
            n.ready("up")
            n.watchdog()
    assert sum("cannot notify systemd" in r.getMessage() for r in caplog.records) == 1


def test_unit_is_type_notify_with_a_watchdog() -> None:
    unit = service_unit()
    assert "\nType=notify\n" in unit and "\nWatchdogSec=" in unit and "\nNotifyAccess=main\n" in unit


@pytest.mark.slow
def test_the_service_notifies_ready_status_watchdog_and_stopping(tmp_path: Path,
                                                                 listener: tuple[Path, Listener]) -> None:
    path, lst = listener
    clip = face_clip(tmp_path)
    d = start_daemon(tmp_path, str(clip), audio="silent",
                     env_extra={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
    try:
        d.wait_for_log("ready:")
        lst.drain(3.0)
        rc, _ = d.terminate()
        lst.drain(0.5)
    finally:
        d.kill()
    assert rc == 0
    ready = lst.with_key("READY")
    assert len(ready) == 1, d.log()
    assert ready[0][1]["STATUS"].startswith("running, source ")  # a line a person can read
    # The model, detector, source and audio were built before READY: the log says "ready:" then.
    pings = [t for t, m in lst.with_key("WATCHDOG") if t > ready[0][0]]
    assert len(pings) >= 4  # 3 s at a 1 s watchdog: every half second
    assert max(b - a for a, b in zip(pings, pings[1:], strict=False)) < 1.0
    statuses = [m["STATUS"] for _, m in lst.got if "STATUS" in m and "READY" not in m and "STOPPING" not in m]
    assert any(" fps, " in s for s in statuses)  # refreshed while running
    stopping = lst.with_key("STOPPING")
    assert len(stopping) == 1 and "SIGTERM" in stopping[0][1]["STATUS"]
    assert stopping[0][0] > pings[-1] - 0.01
