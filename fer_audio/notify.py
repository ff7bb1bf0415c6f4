"""systemd's service notification (sd_notify), done here: one datagram per message, no dependency.

With ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace) and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``.
The service sends newline-separated ``KEY=value`` assignments in one datagram:
``READY=1`` when it is really up, ``STATUS=...`` for ``systemctl status``,
``WATCHDOG=1`` at least every WATCHDOG_USEC (systemd restarts it otherwise) and
``STOPPING=1`` when it begins to stop. Outside systemd every call is a no-op.
Sending never raises: a missing or full socket must not take the service down.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

# Refresh STATUS= at most this often, so a frame loop can offer it every frame.
STATUS_EVERY_S = 2.0


def _address(raw: str) -> str | bytes:
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()  # Linux abstract socket
    return raw


class Notifier:
    """Talks to systemd when started by it; ``enabled`` is False (and every call free) otherwise."""

    def __init__(self, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        env = os.environ if env is None else env
        self._clock = clock
        raw = env.get("NOTIFY_SOCKET", "")
        self._addr: str | bytes | None = _address(raw) if raw else None
        self._sock: socket.socket | None = None
        self.watchdog_s: float | None = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6
        self._last_ping = -1e18
        self._last_status = ""
        self._last_status_at = -1e18
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def send(self, *assignments: str) -> bool:
        """One datagram with ``KEY=value`` lines; True when it was sent."""
        if self._addr is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(assignments).encode("utf-8"), self._addr)
        except OSError as exc:
            if not self._failed:  # once: the journal needs no line per frame
                self._failed = True
                log.warning("cannot notify systemd at %s: %s", os.environ.get("NOTIFY_SOCKET", "?"), exc)
            return False
        return True

    def ready(self, status: str) -> None:
        self._last_status, self._last_status_at = status, self._clock()
        self.send("READY=1", f"STATUS={_one_line(status)}", f"MAINPID={os.getpid()}")

    def status_due(self) -> bool:
        """Whether :meth:`status` would send now: lets a caller skip building the line."""
        return self.enabled and self._clock() - self._last_status_at >= STATUS_EVERY_S

    def status(self, text: str, force: bool = False) -> None:
        """``STATUS=`` when the text changed, at most every STATUS_EVERY_S unless forced."""
        now = self._clock()
        if text == self._last_status or (not force and now - self._last_status_at < STATUS_EVERY_S):
            return
        self._last_status, self._last_status_at = text, now
        self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> None:
        """``WATCHDOG=1`` at twice the rate systemd asks for (its own advice); cheap to call every frame."""
        if self.watchdog_s is None:
            return
        now = self._clock()
        if now - self._last_ping >= self.watchdog_s / 2:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> None:
        self.send("STOPPING=1", f"STATUS={_one_line(status)}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())
