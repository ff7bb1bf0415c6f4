"""Privacy, proven on a real run: no picture is written anywhere, and no network socket is opened.

The daemon runs on the bundled clip of real faces (640x480) until it has
analysed frames and played a cue. Under ``strace -f`` every file the process
(and any thread or child) opened for writing and every socket it created or
connected is listed; each written file must be one of the outputs we asked
for, and each must hold what it should (a well-formed WAV, JSON lines, a pid,
plain log text), so a frame or crop has nowhere to hide. Without strace the
test still checks /proc while the daemon runs and the folders it could write to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import soundfile
from daemonkit import DaemonProc, config_text, start_daemon, wait_until

from fer_audio.resources import DEMO_CLIP

STRACE = shutil.which("strace")
# One gray 640x480 frame; a written file this big that is not the WAV is suspect.
FRAME_BYTES = 640 * 480
# Image signatures, raw and as they start in base64 (a picture smuggled into text).
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*",
                    b"WEBPVP8", b"/9j/", b"iVBORw0KGgo", b"R0lGOD", b"UklGR")
INET_TABLES = ("tcp", "tcp6", "udp", "udp6", "raw", "raw6", "udplite", "udplite6")


def inet_sockets(pid: int) -> list[str]:
    """This process's open sockets that are IP sockets (by inode, against its /proc/net tables)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    found = []
    for table in INET_TABLES:
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if len(cols) > 9 and cols[9] in inodes:
                found.append(f"{table}: {line.strip()}")
    return found


def files_under(*roots: Path) -> set[Path]:
    return {p for r in roots if r.exists() for p in r.rglob("*") if p.is_file() or p.is_socket()}


def written_paths(trace: str) -> set[str]:
    """Paths opened for writing (or created) by any traced thread, successfully."""
    out = set()
    for line in trace.splitlines():
        m = re.search(r'(?:openat\(AT_FDCWD|open\(|creat\()[, ]*"([^"]+)", ([A-Z_|]+)', line)
        if not m or re.search(r"= -1 ", line):
            continue
        flags = m.group(2)
        if any(f in flags for f in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")) \
                or line.lstrip("0123456789 ").startswith("creat("):
            out.add(m.group(1))
    return out


def socket_families(trace: str) -> list[str]:
    fams = re.findall(r"\bsocket\((AF_[A-Z0-9]+|\d+),", trace)
    fams += re.findall(r"\bconnect\(\d+, \{sa_family=(AF_[A-Z0-9]+)", trace)
    return fams


def check_written_file(path: Path, wav: Path, events: Path, lock: Path) -> None:
    """Fail unless ``path`` is an expected output holding what it should, and no picture."""
    if path.suffix == ".pyc" and path.parent.name == "__pycache__":
        return  # Python's own byte-code cache
    data = path.read_bytes()
    if path.name == "cookie" and path.parent.name == "pulse":
        # libpulse (under PortAudio's ALSA pulse device) creates its 256-byte auth
        # cookie on first connect when none exists: random bytes, not a picture.
        assert len(data) == 256, f"{path}: {len(data)} bytes, expected PulseAudio's 256-byte cookie"
        return
    if path == wav:
        info = soundfile.info(str(path))
        pcm = info.frames * info.channels * 2
        assert info.format == "WAV" and info.subtype == "PCM_16", info
        assert 0 <= len(data) - pcm < 1024, f"{path}: {len(data) - pcm} bytes besides the audio"
        return
    assert len(data) < FRAME_BYTES, f"{path}: {len(data)} bytes, the size of a picture"
    for sig in IMAGE_SIGNATURES:
        assert sig not in data, f"{path}: contains an image signature {sig!r}"
    text = data.decode("utf-8")  # raises on binary content
    if path == events:
        for line in text.splitlines():
            row = json.loads(line)
            assert set(row) <= {"t", "track", "kind", "label", "confidence", "x", "size", "yaw", "facing"}, row
    elif path == lock:
        assert re.fullmatch(r"\d*\n?", text), text
    else:
        raise AssertionError(f"{path}: written by the daemon but not one of its outputs")


def test_a_run_writes_no_picture_and_opens_no_network_socket(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    events = work / "events.jsonl"
    prefix: tuple[str, ...] = ()
    trace_file = tmp_path / "trace.txt"
    if STRACE:
        prefix = (STRACE, "-f", "-qq", "-s", "256", "-e", "signal=none", "-o", str(trace_file), "-e",
                  "trace=socket,connect,bind,open,openat,creat,rename,renameat,renameat2,link,linkat")
    temp = tmp_path / "temp"
    temp.mkdir()
    before = files_under(home)
    # Expressions cued with earcon and word (so crops go through the model and speech is
    # rendered: espeak-ng writes each phrase to a temporary WAV, read back and deleted).
    text = config_text(speech=True).replace('mode = "silent"', 'mode = "both"')
    d: DaemonProc = start_daemon(work, str(DEMO_CLIP), text, prefix=prefix,
                                 extra_args=("--events-out", str(events)),
                                 env_extra={"HOME": str(home), "TMPDIR": str(temp)})
    pid = -1
    try:
        d.wait_for_log("ready:", timeout=60)
        pid = int(re.search(r"pid (\d+)", d.log()).group(1))  # type: ignore[union-attr]
        wait_until(lambda: d.status()["analysed"] >= 30 and d.status()["cues"] >= 1, 30, "a cue")
        assert inet_sockets(pid) == [], "an IP socket is open"
        assert d.ctl("status").returncode == 0  # the control socket in use, too
        os.kill(pid, signal.SIGTERM)
        assert d.proc.wait(20) == 0, d.log()
    finally:
        d.kill()
    time.sleep(0.1)
    assert d.wav is not None
    lock = d.runtime / "fer-audio" / "fer-audio.lock"
    # Whatever appeared where a careless program would write: home and the runtime folder.
    new = files_under(home, d.runtime) - before
    for p in sorted(new):
        if p.is_file():
            check_written_file(p, d.wav, events, lock)
    # Every file in the work folder (the run's cwd and output folder), logs included.
    for p in (d.wav, events, lock, d.log_path, d.out_path):
        data = p.read_bytes()
        if p in (d.log_path, d.out_path):
            assert not any(sig in data for sig in IMAGE_SIGNATURES), p
            assert max((len(line) for line in data.splitlines()), default=0) < 2000, p
        else:
            check_written_file(p, d.wav, events, lock)
    if not STRACE:
        pytest.skip("strace not installed: checked /proc and the output folders only (apt install strace)")
    trace = trace_file.read_text()
    families = socket_families(trace)
    assert families, "strace saw no socket calls at all; the trace is not what it seems"
    assert set(families) == {"AF_UNIX"}, sorted(set(families))
    written = written_paths(trace)
    assert str(d.wav) in written and str(events) in written  # the trace does see the outputs
    speech = [p for p in written if Path(p).parent == temp]
    assert speech, "speech was rendered, so its temporary files must show in the trace"
    for path in sorted(written):
        p = Path(path)
        if path.startswith("/dev/") and not path.startswith("/dev/shm/"):
            continue  # /dev/null and the like
        if p.parent == temp and re.fullmatch(r"fer-audio-speech-\w+\.wav", p.name):
            assert not p.exists(), f"{path}: a speech render left behind"
            continue
        if p.parent == temp and re.fullmatch(r"[a-z0-9_]{8}", p.name) and not p.exists():
            continue  # Python's tempfile probing that the folder is writable (it writes b"blat")
        if p.exists() and p.is_file():
            check_written_file(p, d.wav, events, lock)
        else:
            assert p.suffix == ".pyc" or ".pyc." in p.name, f"{path}: written, then removed"
    assert list(temp.iterdir()) == []
