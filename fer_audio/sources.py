"""Frame sources: a camera, a video file, a stream URL or a folder of images, all through OpenCV.

Two ways of reading, chosen by what the source is:

- ``FileSource`` reads a file (or image folder) synchronously, one frame per ``read()``, at the
  file's own timestamps. A run on a file is therefore repeatable: same frames, same ``t``.
- ``LiveSource`` runs the capture in a daemon thread and keeps only the newest frame, so a slow
  consumer never works through a growing backlog of stale pictures. A camera that fails to open
  or stops delivering is reported as a ``lost`` event and reopened with exponential backoff.
  A file opened with ``realtime=True`` goes through the same class, paced at its frame rate.

Frames are handed over in memory only; nothing here ever writes an image anywhere.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit

import cv2
import numpy as np

from fer_audio.config import SourceConfig
from fer_audio.errors import FerAudioError
from fer_audio.retry import backoff_delays
from fer_audio.types import Frame, FrameSource, SourceEvent, SourceEventKind

log = logging.getLogger(__name__)

Clock = Callable[[], float]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
DEFAULT_FOLDER_FPS = 1.0
# Container without a usable frame rate: assume a common one rather than refusing the file.
FALLBACK_FPS = 25.0
# A camera is called lost after this many failed reads in a row (one hiccup is normal on USB).
LOST_AFTER_FAILED_READS = 5
# Corrupt frames tolerated in a row inside a file before the rest is treated as unreadable.
MAX_CORRUPT_IN_A_ROW = 25
# Events queued for a consumer that is not reading; beyond this the oldest are dropped.
MAX_PENDING_EVENTS = 64


class SourceError(FerAudioError):
    """A source that cannot be used at all, phrased as one line naming it and the problem."""


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` used here, so a fake camera can stand in for tests."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[[], Capture]


def as_bgr(image: object) -> np.ndarray | None:
    """The image as BGR uint8 (h, w, 3), or None when it is not a usable picture."""
    if not isinstance(image, np.ndarray) or image.size == 0 or image.dtype != np.uint8:
        return None
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    return None


def redact_uri(uri: str) -> str:
    """A stream URL without user:password, for logs and messages."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparsable url>"
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=f"***@{host}").geturl()


def keep_for_rate(t: float, last_kept: float | None, max_fps: float) -> bool:
    """Whether a frame at ``t`` may pass a ``max_fps`` limit, given the last frame kept.

    The 10 % tolerance keeps a frame that is due but whose timestamp was rounded
    (containers store milliseconds): without it a 30 fps file at max_fps 15 would
    sometimes keep one frame in three.
    """
    if last_kept is None:
        return True
    interval = 1.0 / max_fps
    return t >= last_kept + interval * 0.9


class ImageFolderCapture:
    """A folder of images read like a video: sorted by name, one frame per image at ``fps``.

    An unreadable image is reported by ``read()`` like a corrupt video frame, so the file
    sources skip it the same way.
    """

    def __init__(self, files: list[Path], fps: float) -> None:
        self._files = files
        self._fps = fps
        self._pos = 0  # index of the next image
        self._open = True

    def isOpened(self) -> bool:
        return self._open

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self._open or self._pos >= len(self._files):
            return False, None
        path = self._files[self._pos]
        self._pos += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("%s: not a readable image; skipped", path)
            return False, None
        return True, np.asarray(image)

    def get(self, prop_id: int) -> float:
        if prop_id == cv2.CAP_PROP_FPS:
            return self._fps
        if prop_id == cv2.CAP_PROP_FRAME_COUNT:
            return float(len(self._files))
        if prop_id == cv2.CAP_PROP_POS_FRAMES:
            return float(self._pos)
        if prop_id == cv2.CAP_PROP_POS_MSEC:
            return max(self._pos - 1, 0) * 1000.0 / self._fps
        return 0.0

    def release(self) -> None:
        self._open = False


class _FileReader:
    """Frames of one file with their own timestamps, across loops; shared by both source kinds.

    ``t`` comes from the container (CAP_PROP_POS_MSEC) when it is sane, else index / fps, so
    the same file gives the same timestamps every run. Corrupt frames inside the file are
    skipped with a warning; the end of the file is a ``None`` from ``next()``.
    """

    def __init__(self, factory: CaptureFactory, name: str, loop: bool) -> None:
        self._factory = factory
        self._name = name
        self._loop = loop
        self._cap: Capture | None = None
        self._fps = FALLBACK_FPS
        self._count = 0  # frames the container claims; 0 when unknown
        self._pos = 0  # frame number in the current pass
        self._index = 0  # frame number across passes
        self._offset = 0.0  # clip durations added by looping
        self._last_t = -math.inf  # last timestamp in the current pass
        # Why a looping file stopped early (it vanished or broke between passes): the
        # source reports it as an error, so the run ends as a failure, not a normal end.
        self.failure: str | None = None
        self._open()

    def _open(self) -> None:
        cap = self._factory()
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self._name}: could not be opened")
        fps = cap.get(cv2.CAP_PROP_FPS)
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            log.warning("%s: no usable frame rate in the file; assuming %.0f fps", self._name, FALLBACK_FPS)
            fps = FALLBACK_FPS
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self._cap = cap
        self._fps = fps
        self._count = int(count) if math.isfinite(count) and count > 0 else 0
        self._pos = 0
        self._last_t = -math.inf

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def count(self) -> int:
        return self._count

    def _timestamp(self, cap: Capture) -> float:
        by_index = self._pos / self._fps
        msec = cap.get(cv2.CAP_PROP_POS_MSEC)
        if not math.isfinite(msec) or msec < 0:
            return by_index
        t = msec / 1000.0
        # Some backends report 0 (or go backwards) where they do not know; the index is then
        # the better guess, and it keeps timestamps strictly increasing.
        if t <= self._last_t or (t == 0.0 and self._pos > 0):
            return max(by_index, self._last_t + 1e-6)
        return t

    def next(self) -> Frame | None:
        """The next good frame, or None at the end (after all loops)."""
        corrupt = 0
        while self._cap is not None:
            cap = self._cap
            try:
                ok, raw = cap.read()
            except cv2.error as exc:  # a decoder failure is one bad frame, not a reason to crash
                log.warning("%s: decoder error at frame %d: %s", self._name, self._pos, exc)
                ok, raw = True, None
            image = as_bgr(raw) if ok else None
            if image is not None:
                if corrupt:
                    log.warning("%s: %d undecodable frame(s) before frame %d skipped", self._name, corrupt, self._pos)
                t = self._timestamp(cap)
                self._last_t = t
                frame = Frame(t=self._offset + t, index=self._index, image=image)
                self._pos += 1
                self._index += 1
                return frame
            # A failed read before the frame count is reached is a corrupt frame, not the end.
            more_expected = self._count > 0 and self._pos < self._count - 1
            if (ok or more_expected) and corrupt < MAX_CORRUPT_IN_A_ROW:
                corrupt += 1
                self._pos += 1
                self._index += 1
                continue
            if not self._end_of_pass():
                return None
            corrupt = 0
        return None

    def _end_of_pass(self) -> bool:
        """Close this pass; True when another pass (a loop) has started."""
        good = self._last_t > -math.inf
        duration = self._last_t + 1.0 / self._fps
        self.close()
        if not self._loop or not good:
            return False
        self._offset += duration
        try:
            self._open()
        except SourceError as exc:
            self.failure = f"{exc} again after a pass of the looping file"
            return False
        return True

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FileSource:
    """A file or image folder read synchronously at its own timestamps (deterministic runs)."""

    def __init__(self, factory: CaptureFactory, name: str, *, max_fps: float, loop: bool) -> None:
        self._name = name
        self._reader = _FileReader(factory, name, loop)
        self._max_fps = max_fps
        self._last_kept: float | None = None
        self._state: Literal["new", "running", "ended"] = "new"
        self._closed = threading.Event()

    @property
    def is_live(self) -> bool:
        return False

    def describe(self) -> str:
        count = f", {self._reader.count} frames" if self._reader.count else ""
        return f"{self._name} ({self._reader.fps:g} fps{count})"

    def read(self, timeout: float) -> Frame | SourceEvent | None:
        if self._state == "new":
            self._state = "running"
            return SourceEvent("opened", 0.0, f"opened {self.describe()}")
        if self._state == "ended":
            # Nothing more will come; waiting out the timeout keeps a careless caller's loop from spinning.
            self._closed.wait(max(timeout, 0.0))
            return None
        while True:
            frame = self._reader.next()
            if frame is None:
                t = self._last_kept if self._last_kept is not None else 0.0
                if self._reader.failure is not None:  # the error first, the end on the next read
                    failure, self._reader.failure = self._reader.failure, None
                    log.error("%s", failure)
                    return SourceEvent("error", t, failure)
                self._state = "ended"
                return SourceEvent("end", t, f"{self._name}: end of file")
            if keep_for_rate(frame.t, self._last_kept, self._max_fps):
                self._last_kept = frame.t
                return frame

    def close(self) -> None:
        self._reader.close()
        self._state = "ended"
        self._closed.set()


class LiveSource:
    """Capture in a daemon thread; the consumer always gets the newest frame.

    The pending items form one ordered queue in which a new frame replaces an unread frame
    at its tail: events are never lost or reordered, and frames never pile up. Frames so
    replaced are counted in ``dropped``.

    ``paced=True`` is for files (``realtime``): timestamps are the file's own, the thread
    sleeps until each is due on the clock, and the end of the file is an ``end`` event.
    Otherwise (cameras, streams) ``t`` is the clock since open, and a failure is one ``lost``
    event, then reopen attempts with exponential backoff until frames come (``restored``).
    """

    def __init__(
        self,
        factory: CaptureFactory,
        name: str,
        *,
        max_fps: float,
        retry_initial_s: float,
        retry_max_s: float,
        clock: Clock = time.monotonic,
        paced: bool = False,
        loop: bool = False,
        lost_after: int = LOST_AFTER_FAILED_READS,
    ) -> None:
        self._factory = factory
        self._name = name
        self._max_fps = max_fps
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._clock = clock
        self._paced = paced
        self._loop = loop
        self._lost_after = lost_after
        self._cond = threading.Condition()
        self._pending: deque[Frame | SourceEvent] = deque()
        self._stop = threading.Event()
        self._dropped = 0
        self._t0 = clock()
        self._thread = threading.Thread(target=self._run, name=f"capture {name}", daemon=True)
        self._thread.start()

    @property
    def is_live(self) -> bool:
        return not self._paced

    @property
    def dropped(self) -> int:
        """Frames replaced by a newer one before anybody read them."""
        with self._cond:
            return self._dropped

    def describe(self) -> str:
        return self._name

    def read(self, timeout: float) -> Frame | SourceEvent | None:
        with self._cond:
            if not self._pending:
                self._cond.wait(max(timeout, 0.0))
            if self._pending:
                return self._pending.popleft()
            return None

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=0.5)
            if self._thread.is_alive():
                # A stream read can block inside OpenCV; the daemon thread releases the
                # capture itself when that read returns.
                log.warning("%s: capture thread still busy after 0.5 s; it releases on its own", self._name)

    # -- capture thread ------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock() - self._t0

    def _push(self, item: Frame | SourceEvent) -> None:
        with self._cond:
            if isinstance(item, Frame) and self._pending and isinstance(self._pending[-1], Frame):
                self._pending[-1] = item
                self._dropped += 1
            else:
                self._pending.append(item)
                if len(self._pending) > MAX_PENDING_EVENTS:
                    self._pending.popleft()
            self._cond.notify_all()

    def _event(self, kind: SourceEventKind, t: float, message: str) -> None:
        level = logging.WARNING if kind in ("lost", "error") else logging.INFO
        log.log(level, "%s", message)
        self._push(SourceEvent(kind, t, message))

    def _run(self) -> None:
        try:
            if self._paced:
                self._run_file()
            else:
                self._run_live()
        except Exception as exc:  # the thread must report, never die silently
            self._event("error", self._now(), f"{self._name}: capture failed: {exc}")
            # Nothing more will come: say so, so that a consumer waiting for frames can stop.
            self._event("end", self._now(), f"{self._name}: capture stopped after an error")

    def _run_file(self) -> None:
        try:
            reader = _FileReader(self._factory, self._name, self._loop)
        except SourceError as exc:
            self._event("error", self._now(), str(exc))
            self._event("end", self._now(), f"{self._name}: capture stopped after an error")
            return
        try:
            self._event("opened", 0.0, f"opened {self._name} ({reader.fps:g} fps, realtime)")
            last_kept: float | None = None
            while not self._stop.is_set():
                frame = reader.next()
                if frame is None:
                    t_end = last_kept if last_kept is not None else 0.0
                    if reader.failure is not None:
                        self._event("error", t_end, reader.failure)
                    self._event("end", t_end, f"{self._name}: end of file")
                    return
                if not keep_for_rate(frame.t, last_kept, self._max_fps):
                    continue
                last_kept = frame.t
                delay = frame.t - self._now()
                if delay > 0 and self._stop.wait(delay):
                    return
                self._push(frame)
        finally:
            reader.close()

    def _try_open(self) -> Capture | None:
        try:
            cap = self._factory()
        except Exception as exc:  # a driver error is one more failed attempt, not the end
            log.warning("%s: opening raised %s", self._name, exc)
            return None
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _try_read(self, cap: Capture) -> np.ndarray | None:
        try:
            ok, raw = cap.read()
        except Exception as exc:
            log.warning("%s: reading raised %s", self._name, exc)
            return None
        return as_bgr(raw) if ok else None

    def _run_live(self) -> None:
        delays: Iterator[float] | None = None  # set while the source is lost
        index = 0
        last_kept: float | None = None
        while not self._stop.is_set():
            cap = self._try_open()
            if cap is None:
                if delays is None:
                    delays = backoff_delays(self._retry_initial_s, self._retry_max_s)
                    delay = next(delays)
                    self._event("lost", self._now(), f"{self._name}: cannot be opened; retrying in {delay:g} s")
                else:
                    # One 'lost' per outage: the user hears it once, the retries go to the log.
                    delay = next(delays)
                    log.info("%s: still unavailable; next try in %g s", self._name, delay)
                if self._stop.wait(delay):
                    return
                continue
            if delays is None and index == 0:
                self._event("opened", self._now(), f"opened {self._name}")
            failed = 0
            try:
                while not self._stop.is_set():
                    image = self._try_read(cap)
                    if image is None:
                        failed += 1
                        if failed >= self._lost_after:
                            break
                        self._stop.wait(0.01)  # do not spin on a device that fails instantly
                        continue
                    failed = 0
                    t = self._now()
                    if delays is not None:
                        delays = None
                        self._event("restored", t, f"{self._name}: frames are coming again")
                    if keep_for_rate(t, last_kept, self._max_fps):
                        last_kept = t
                        self._push(Frame(t=t, index=index, image=image))
                    index += 1
            finally:
                cap.release()
            if self._stop.is_set():
                return
            if delays is None:
                delays = backoff_delays(self._retry_initial_s, self._retry_max_s)
                delay = next(delays)
                self._event("lost", self._now(), f"{self._name}: no frames; reopening in {delay:g} s")
            else:
                delay = next(delays)
                log.info("%s: opened but still no frames; next try in %g s", self._name, delay)
            if self._stop.wait(delay):
                return


def _folder_images(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: p.name,
    )


def _check_video(path: Path) -> None:
    """Refuse, before any thread starts, a file that OpenCV cannot decode at all."""
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: empty file (0 bytes), not a video")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise SourceError(f"{path}: not a readable video (OpenCV could not open it)")
        ok, image = cap.read()
        if not ok or as_bgr(image) is None:
            raise SourceError(f"{path}: no frame could be decoded")
    finally:
        cap.release()


def _camera_factory(index: int, width: int, height: int) -> CaptureFactory:
    def make() -> Capture:
        cap = cv2.VideoCapture(index)
        if cap.isOpened():
            if width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        return cap

    return make


def open_source(cfg: SourceConfig, *, clock: Clock = time.monotonic, folder_fps: float = DEFAULT_FOLDER_FPS) -> FrameSource:
    """Open what ``cfg.uri`` names; raise SourceError (one line) when it cannot work at all.

    A camera or stream that is merely absent right now is not an error: it comes up as a
    ``lost`` event and is retried. ``folder_fps`` is the nominal rate of an image folder.
    """
    if not (math.isfinite(folder_fps) and folder_fps > 0):
        raise SourceError(f"folder_fps must be a positive number of frames per second, not {folder_fps!r}")
    uri = cfg.uri.strip()
    if not uri:
        raise SourceError("source uri is empty; expected a camera index, video file, image folder or URL")

    def live(factory: CaptureFactory, name: str, paced: bool = False) -> LiveSource:
        return LiveSource(
            factory,
            name,
            max_fps=cfg.max_fps,
            retry_initial_s=cfg.retry_initial_s,
            retry_max_s=cfg.retry_max_s,
            clock=clock,
            paced=paced,
            loop=cfg.loop,
        )

    if uri.isdigit():
        return live(_camera_factory(int(uri), cfg.width, cfg.height), f"camera {uri}")
    if uri.lower().startswith(STREAM_PREFIXES):
        return live(lambda: cv2.VideoCapture(uri), f"stream {redact_uri(uri)}")

    path = Path(uri).expanduser()
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    factory: CaptureFactory
    if path.is_dir():
        files = _folder_images(path)
        if not files:
            suffixes = " ".join(sorted(IMAGE_SUFFIXES))
            raise SourceError(f"{path}: folder has no images (looked for {suffixes})")
        name = f"image folder {path} ({len(files)} images)"

        def factory() -> Capture:
            return ImageFolderCapture(files, folder_fps)
    else:
        _check_video(path)
        name = f"{'image' if path.suffix.lower() in IMAGE_SUFFIXES else 'video'} file {path}"

        def factory() -> Capture:
            return cv2.VideoCapture(str(path))

    if cfg.realtime:
        return live(factory, name, paced=True)
    return FileSource(factory, name, max_fps=cfg.max_fps, loop=cfg.loop)
