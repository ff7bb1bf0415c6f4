"""A small client for speech-dispatcher's SSIP protocol, over its Unix socket.

Why not Debian's ``python3-speechd``: it is not on PyPI, so a virtual environment
(``make run``) or a wheel cannot depend on it; reaching it means
``--system-site-packages`` or a path hack, and its module is tied to the system
Python's version. What fer-audio needs from SSIP is a handful of line commands
(``SET SELF ...``, ``SPEAK``, ``CANCEL SELF``) and the 7xx event lines, which
is less code than the glue around the library would be, has no dependency, and
is tested against the real server (tests/test_speechd.py).

Protocol (speech-dispatcher ``doc/ssip.texi``): UTF-8 lines ending in CR LF;
every reply is ``NNN-...`` continuation lines and one final ``NNN text`` line;
2xx is success. SPEAK answers 230, then takes the text, ends it with a line
holding one dot (a line of the text that starts with a dot gets a second one),
and answers ``225-<msg_id>`` / ``225 OK MESSAGE QUEUED``. With notifications on,
the server also sends events at any time between replies:
``7NN-<msg_id>`` / ``7NN-<client_id>`` / ``7NN BEGIN|END|CANCELED|...``.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import queue
import re
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

# The component part of the client name: "<user>:fer-audio:cues". A per-client section
# in speechd.conf matches the whole name with fnmatch: BeginClient "*:fer-audio:*".
APPLICATION = "fer-audio"
COMPONENT = "cues"
REPLY_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0

EVENT_TYPES = {"700": "index_mark", "701": "begin", "702": "end", "703": "cancel", "704": "pause",
               "705": "resume"}


class SsipError(RuntimeError):
    """speech-dispatcher cannot be reached, refused a command, or went away; one line."""


@dataclass(frozen=True)
class SsipEvent:
    """A message event: ``kind`` is begin, end, cancel, pause, resume or index_mark."""

    kind: str
    msg_id: int
    client_id: int


def socket_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the user's speech-dispatcher listens, found the way its own clients find it.

    ``SPEECHD_ADDRESS`` (``unix_socket:/path``) wins; else
    ``$XDG_RUNTIME_DIR/speech-dispatcher/speechd.sock``, else ``~/.cache/speech-dispatcher/speechd.sock``.
    """
    env = os.environ if env is None else env
    address = env.get("SPEECHD_ADDRESS", "")
    if address.startswith("unix_socket:") and len(address) > len("unix_socket:"):
        return Path(address[len("unix_socket:"):]).expanduser()
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "speech-dispatcher" / "speechd.sock"
    return Path(env.get("HOME", str(Path.home()))) / ".cache" / "speech-dispatcher" / "speechd.sock"


def client_name(user: str | None = None) -> str:
    """``user:fer-audio:cues``; SSIP allows only letters, digits, '-' and '_' in each part."""
    if user is None:
        try:
            user = getpass.getuser()
        except Exception:
            user = str(os.getuid())
    user = re.sub(r"[^A-Za-z0-9_-]", "_", user) or "user"
    return f"{user}:{APPLICATION}:{COMPONENT}"


def escape_text(text: str) -> bytes:
    """The body of a SPEAK: CR LF line ends, a leading dot doubled, closed by the dot line."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    body = "\r\n".join("." + ln if ln.startswith(".") else ln for ln in lines)
    return (body + "\r\n.\r\n").encode("utf-8")


class SsipClient:
    """One SSIP connection. Commands are synchronous (one at a time, under a lock);
    a reader thread splits the socket's lines into replies and events, and hands
    events to ``on_event`` on that thread. ``on_lost`` runs once when the
    connection ends without :meth:`close` (the server died or was restarted).
    """

    def __init__(self, path: Path | None = None, *, name: str | None = None,
                 on_event: Callable[[SsipEvent], None] | None = None,
                 on_lost: Callable[[str], None] | None = None,
                 timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self.path = path if path is not None else socket_path()
        self.name = name or client_name()
        self._on_event = on_event
        self._on_lost = on_lost
        self._timeout = timeout_s
        self._sock: socket.socket | None = None
        self._replies: queue.Queue[tuple[str, list[str]] | None] = queue.Queue()
        self._cmd_lock = threading.Lock()
        self._closing = False
        self._lost: str | None = None
        self._reader: threading.Thread | None = None

    # -- connection

    def connect(self) -> None:
        """Connect, name the client and ask for message events; raises SsipError with one line."""
        if not self.path.exists():
            raise SsipError(f"speech-dispatcher is not running (no socket at {self.path})")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            raise SsipError(f"speech-dispatcher does not answer at {self.path}: {exc.strerror or exc}") from None
        sock.settimeout(None)
        self._sock = sock
        self._reader = threading.Thread(target=self._read, name="fer-audio ssip", daemon=True)
        self._reader.start()
        try:
            self.command(f"SET SELF CLIENT_NAME {self.name}")
            self.command("SET SELF NOTIFICATION ALL on")
        except SsipError:
            self.close()
            raise

    @property
    def alive(self) -> bool:
        return self._sock is not None and self._lost is None

    def close(self) -> None:
        """QUIT politely, then close; never raises."""
        self._closing = True
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.sendall(b"QUIT\r\n")
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=1.0)

    # -- commands

    def command(self, line: str, data: bytes | None = None) -> tuple[str, list[str]]:
        """Send one command (and, after a 230 reply, ``data``); return (code, lines) of the final reply.

        Raises SsipError when the server refuses (4xx/5xx), does not answer, or is gone.
        """
        with self._cmd_lock:
            sock = self._sock
            if sock is None or self._lost is not None:
                raise SsipError(f"speech-dispatcher connection is closed ({self._lost or 'not connected'})")
            try:
                sock.sendall(line.encode("utf-8") + b"\r\n")
                code, lines = self._reply(line)
                if data is not None:
                    if code != "230":
                        raise SsipError(f"speech-dispatcher refused {line!r}: {code} {' '.join(lines)}")
                    sock.sendall(data)
                    code, lines = self._reply(line)
            except OSError as exc:
                raise SsipError(f"speech-dispatcher connection failed: {exc.strerror or exc}") from None
            if not code.startswith("2"):
                raise SsipError(f"speech-dispatcher refused {line!r}: {code} {lines[-1] if lines else ''}")
            return code, lines

    def _reply(self, what: str) -> tuple[str, list[str]]:
        try:
            item = self._replies.get(timeout=self._timeout)
        except queue.Empty:
            # A late reply would be taken for the next command's: this connection is done.
            self._lost = f"it did not answer {what!r} within {self._timeout:g} s"
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
            raise SsipError(f"speech-dispatcher did not answer {what!r} within {self._timeout:g} s") from None
        if item is None:
            raise SsipError(f"speech-dispatcher went away ({self._lost or 'connection closed'})")
        return item

    def speak(self, text: str) -> int:
        """Queue ``text`` at the connection's current priority; returns the server's message id."""
        _code, lines = self.command("SPEAK", escape_text(text))
        try:
            return int(lines[0])
        except (IndexError, ValueError):
            raise SsipError(f"speech-dispatcher sent no message id for SPEAK ({lines})") from None

    def set_priority(self, priority: str) -> None:
        self.command(f"SET SELF PRIORITY {priority}")

    def cancel_self(self) -> None:
        """Stop this connection's message and drop its queued ones; other clients are not touched."""
        self.command("CANCEL SELF")

    # -- the reader thread

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        buf = b""
        block: list[str] = []
        reason = "the server closed the connection"
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buf += chunk
                while b"\r\n" in buf:
                    raw, buf = buf.split(b"\r\n", 1)
                    line = raw.decode("utf-8", "replace")
                    if len(line) < 4 or not line[:3].isdigit():
                        continue  # not SSIP; ignore rather than lose sync
                    block.append(line)
                    if line[3] == "-":
                        continue
                    self._dispatch(block)
                    block = []
        except OSError as exc:
            reason = f"the connection failed: {exc.strerror or exc}"
        finally:
            if not self._closing:
                self._lost = reason
            self._replies.put(None)
            if not self._closing and self._on_lost is not None:
                self._on_lost(reason)

    def _dispatch(self, block: list[str]) -> None:
        code = block[-1][:3]
        body = [ln[4:] for ln in block]
        if code.startswith("7"):
            if self._on_event is None or len(body) < 3:
                return
            try:
                event = SsipEvent(EVENT_TYPES.get(code, code), int(body[0]), int(body[1]))
            except ValueError:
                return
            self._on_event(event)
            return
        self._replies.put((code, body))
