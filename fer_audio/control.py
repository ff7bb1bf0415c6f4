"""The control socket: a running daemon takes pause/resume/status/reload/stop from `fer-audio ctl`.

One short text command per connection, one line back, so a hotkey daemon, a
screen-reader script or ``socat`` can drive it without a client library:

    $ echo status | socat - UNIX-CONNECT:$XDG_RUNTIME_DIR/fer-audio/control.sock
    ok: {"state": "running", ...}

Every reply starts with ``ok: `` or ``error: ``. The socket is user-only:
it lives in a 0700 folder, is itself 0600, and the server still checks the
peer's uid (SO_PEERCRED) because a folder's mode can be changed behind our
back. The server runs in its own thread and never waits on one client: a
selector reads every connection with a deadline, and commands run on a
small worker pool, so a stuck or flooding client cannot stall the others,
let alone the frame loop.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_audio.errors import FerAudioError

log = logging.getLogger(__name__)

COMMANDS: tuple[str, ...] = ("pause", "resume", "status", "describe", "reload", "stop")
SOCKET_NAME = "control.sock"
LOCK_NAME = "fer-audio.lock"
# A command is a word; anything longer is garbage or an attack, not a command.
MAX_MESSAGE = 256
# Replies are one line; status is the longest (a JSON object of a few fields).
MAX_REPLY = 4096
# A client has this long to send its line; a silent one is answered and dropped.
READ_TIMEOUT_S = 2.0
# Connections being read at once; beyond this a newcomer is told "busy".
MAX_CLIENTS = 32
# Linux sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107

Handler = Callable[[str], str]


class ControlError(FerAudioError):
    """A control-socket problem, as one line naming the path."""


class NotRunning(ControlError):
    """No daemon answers at the socket path (`ctl` exits 1)."""


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the socket and lock live: $XDG_RUNTIME_DIR/fer-audio, else /tmp/fer-audio-$UID."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
        return Path(xdg) / "fer-audio"
    return Path(f"/tmp/fer-audio-{os.getuid()}")


def socket_path(env: Mapping[str, str] | None = None) -> Path:
    return runtime_dir(env) / SOCKET_NAME


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` as a 0700 folder we own, or refuse one that another user could touch.

    /tmp is shared: someone else may have made /tmp/fer-audio-<our uid> first,
    or left a symlink there, to catch our socket. So an existing entry must be
    a real folder owned by us; a too-open mode on our own folder is tightened.
    """
    try:
        path.mkdir(mode=0o700, parents=False, exist_ok=True)
    except FileNotFoundError:
        raise ControlError(f"{path.parent}: folder does not exist; cannot create {path.name}") from None
    except PermissionError:
        raise ControlError(f"{path}: permission denied creating the control folder") from None
    except FileExistsError:
        raise ControlError(f"{path}: exists and is not a folder") from None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ControlError(f"{path}: is not a folder (a symlink or file); refusing to use it")
    if st.st_uid != os.getuid():
        raise ControlError(f"{path}: belongs to uid {st.st_uid}, not {os.getuid()}; refusing to use it")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (Linux SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def parse_request(data: bytes) -> str | None:
    """The command word in a request, or None when it is not one (caller replies with the error)."""
    line = data.split(b"\n", 1)[0]
    try:
        text = line.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return None
    return text if text in COMMANDS else None


def request_error(data: bytes) -> str:
    """The one-line error for a request :func:`parse_request` refused."""
    line = data.split(b"\n", 1)[0]
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        return "error: command is not plain ASCII text"
    if not text:
        return "error: empty command; expected one of " + ", ".join(COMMANDS)
    if not text.isprintable():
        return "error: command contains control characters"
    shown = text if len(text) <= 40 else text[:40] + "…"
    return f"error: unknown command {shown!r}; expected one of " + ", ".join(COMMANDS)


def one_line(reply: str) -> bytes:
    """A handler's reply made safe to send: one line, bounded, newline-terminated."""
    text = " ".join(reply.splitlines()).strip() or "error: empty reply"
    data = text.encode("utf-8", "replace")
    if len(data) > MAX_REPLY - 1:
        data = data[: MAX_REPLY - 4] + "…".encode()
    return data + b"\n"


@dataclass
class _Client:
    conn: socket.socket
    deadline: float
    buf: bytearray = field(default_factory=bytearray)
    refused: bool = False  # another uid: answered "permission denied" once its line is in


class ControlServer:
    """Listens on ``path``; hands each valid command word to ``handle`` and sends its reply.

    ``handle`` runs on a worker thread and may block (a reload waits for the
    main thread); it must return one line starting with ``ok:`` or ``error:``.
    ``allowed_uid`` is who may talk to us; it defaults to our own uid.
    """

    def __init__(self, path: Path, handle: Handler, *, allowed_uid: int | None = None,
                 read_timeout_s: float = READ_TIMEOUT_S, max_clients: int = MAX_CLIENTS,
                 workers: int = 4, clock: Callable[[], float] = time.monotonic) -> None:
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ControlError(f"{path}: socket path longer than {MAX_SOCKET_PATH} bytes")
        self.path = path
        self._handle = handle
        self._uid = os.getuid() if allowed_uid is None else allowed_uid
        self._timeout = read_timeout_s
        self._max_clients = max_clients
        self._clock = clock
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fer-audio control")
        self.refused = 0  # connections from another uid, for tests and logs

    def start(self) -> None:
        """Bind and start serving. The caller holds the instance lock, so an old socket is stale."""
        ensure_private_dir(self.path.parent)
        with suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)
            # Room for every client we would serve at once: a full backlog makes a
            # client's connect fail (EAGAIN) before we ever see it.
            sock.listen(max(self._max_clients, socket.SOMAXCONN))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ControlError(f"{self.path}: cannot listen: {exc.strerror or exc}") from None
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="fer-audio control", daemon=True)
        self._thread.start()
        log.debug("control socket %s", self.path)

    def close(self) -> None:
        """Stop serving and remove the socket; replies still being computed are abandoned."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with suppress(FileNotFoundError):
                self.path.unlink()

    # -- server thread -----------------------------------------------------------------

    def _serve(self) -> None:
        assert self._sock is not None
        sel = selectors.DefaultSelector()
        sel.register(self._sock, selectors.EVENT_READ, None)
        clients: dict[int, _Client] = {}
        try:
            while not self._stop.is_set():
                for key, _mask in sel.select(timeout=0.2):
                    if key.data is None:
                        self._accept(sel, clients)
                    else:
                        self._read(sel, clients, key.data)
                now = self._clock()
                for c in [c for c in clients.values() if now >= c.deadline]:
                    self._finish(sel, clients, c, b"error: no command received within "
                                 + f"{self._timeout:g} s\n".encode())
        except Exception:  # the control socket dying must not go unnoticed
            log.exception("control socket server failed; `fer-audio ctl` will not work")
        finally:
            for c in list(clients.values()):
                self._finish(sel, clients, c, b"error: fer-audio is stopping\n")
            sel.close()

    def _accept(self, sel: selectors.BaseSelector, clients: dict[int, _Client]) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: drop this one, keep serving
                log.warning("control socket: accept failed: %s", exc)
                return
            conn.setblocking(False)
            try:
                uid = peer_uid(conn)
            except OSError:
                uid = -1
            refused = uid != self._uid
            if refused:
                self.refused += 1
                log.warning("control socket: refused a connection from uid %d", uid)
            if len(clients) >= self._max_clients:
                _send_and_close(conn, b"error: busy, try again\n")
                continue
            # A refused client still sends its line first, like everyone: answering before it
            # has written would break its pipe instead of telling it why.
            c = _Client(conn, self._clock() + self._timeout, refused=refused)
            clients[conn.fileno()] = c
            sel.register(conn, selectors.EVENT_READ, c)

    def _read(self, sel: selectors.BaseSelector, clients: dict[int, _Client], c: _Client) -> None:
        try:
            data = c.conn.recv(MAX_MESSAGE + 1 - len(c.buf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(sel, clients, c)
            return
        c.buf += data
        if b"\n" in c.buf or not data:
            if not c.buf.strip() and not c.refused:
                self._finish(sel, clients, c, one_line(request_error(bytes(c.buf))))
                return
            self._dispatch(sel, clients, c)
        elif len(c.buf) > MAX_MESSAGE:
            self._finish(sel, clients, c, f"error: command longer than {MAX_MESSAGE} bytes\n".encode())

    def _dispatch(self, sel: selectors.BaseSelector, clients: dict[int, _Client], c: _Client) -> None:
        self._unregister(sel, clients, c)
        if c.refused:
            _send_and_close(c.conn, b"error: permission denied\n")
            return
        command = parse_request(bytes(c.buf))
        if command is None:
            _send_and_close(c.conn, one_line(request_error(bytes(c.buf))))
            return
        try:
            self._pool.submit(self._answer, c.conn, command)
        except RuntimeError:  # pool shut down: we are stopping
            _send_and_close(c.conn, b"error: fer-audio is stopping\n")

    def _answer(self, conn: socket.socket, command: str) -> None:
        try:
            reply = self._handle(command)
        except Exception as exc:
            log.exception("control command %r failed", command)
            reply = f"error: {command} failed: {exc}"
        _send_and_close(conn, one_line(reply))

    def _unregister(self, sel: selectors.BaseSelector, clients: dict[int, _Client], c: _Client) -> None:
        clients.pop(c.conn.fileno(), None)
        with suppress(KeyError, ValueError):
            sel.unregister(c.conn)

    def _finish(self, sel: selectors.BaseSelector, clients: dict[int, _Client], c: _Client,
                reply: bytes) -> None:
        self._unregister(sel, clients, c)
        _send_and_close(c.conn, reply)

    def _drop(self, sel: selectors.BaseSelector, clients: dict[int, _Client], c: _Client) -> None:
        self._unregister(sel, clients, c)
        c.conn.close()


def _send_and_close(conn: socket.socket, data: bytes) -> None:
    """Best effort: a client that went away or does not read is not our problem.

    What the client sent and we did not read is drained first: closing a Unix
    socket with unread data resets the connection, and the client would get
    ECONNRESET instead of our error line.
    """
    try:
        conn.settimeout(0.5)
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        conn.setblocking(False)
        for _ in range(16):
            if not conn.recv(MAX_REPLY):
                break
    except OSError:
        pass
    finally:
        conn.close()


def describe_status(status: dict[str, Any]) -> str:
    """The one plain line `fer-audio ctl status` prints (a screen reader reads it well)."""
    faces = int(status.get("faces", 0))
    line = (f"{status.get('state', 'unknown')}, source {status.get('source', 'unknown')}, "
            f"{float(status.get('fps', 0.0)):.1f} fps, {faces} face{'' if faces == 1 else 's'}, "
            f"last cue {status.get('last_cue') or 'none'}")
    underruns = int(status.get("underruns", 0))
    if underruns:  # why a cue may have sounded broken: said only when it happened
        line += f", sound output underran {underruns} time{'' if underruns == 1 else 's'}"
    return line


def _connect(sock: socket.socket, path: Path, deadline: float) -> None:
    """Connect, waiting while the daemon's backlog is full.

    A Unix socket with a timeout is non-blocking underneath, and Linux answers
    EAGAIN at once when the listener's backlog is full (a busy daemon that has
    not accepted yet), where a blocking socket would simply wait; so wait here.
    """
    pause = 0.005
    while True:
        try:
            sock.connect(str(path))
            return
        except BlockingIOError:
            if time.monotonic() + pause > deadline:
                raise TimeoutError from None
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


def send_command(path: Path, command: str, timeout_s: float = 10.0) -> str:
    """Send one command to the daemon at ``path``; its reply line, without the newline.

    Raises NotRunning when nobody listens there and ControlError for anything
    else that keeps the command from arriving or the reply from coming back.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        try:
            _connect(sock, path, time.monotonic() + timeout_s)
        except TimeoutError:
            raise ControlError(f"fer-audio did not accept the connection within {timeout_s:g} s ({path})") from None
        except FileNotFoundError:
            raise NotRunning(f"fer-audio is not running (no socket at {path})") from None
        except ConnectionRefusedError:
            raise NotRunning(f"fer-audio is not running (stale socket at {path})") from None
        except PermissionError:
            raise ControlError(f"{path}: permission denied (the socket belongs to another user)") from None
        except OSError as exc:
            if exc.errno == errno.ENOTSOCK or exc.errno == errno.ECONNREFUSED:
                raise NotRunning(f"fer-audio is not running (nothing listens at {path})") from None
            raise ControlError(f"{path}: cannot connect: {exc.strerror or exc}") from None
        try:
            with suppress(BrokenPipeError):  # the server may answer (and close) first; read why
                sock.sendall(command.encode("ascii", "replace") + b"\n")
            buf = bytearray()
            while b"\n" not in buf and len(buf) < MAX_REPLY:
                chunk = sock.recv(MAX_REPLY)
                if not chunk:
                    break
                buf += chunk
        except TimeoutError:
            raise ControlError(f"no reply from fer-audio within {timeout_s:g} s ({path})") from None
        except OSError as exc:
            raise ControlError(f"{path}: connection failed: {exc.strerror or exc}") from None
    finally:
        sock.close()
    if not buf:
        raise ControlError(f"fer-audio closed the connection without a reply ({path})")
    return buf.split(b"\n", 1)[0].decode("utf-8", "replace")
