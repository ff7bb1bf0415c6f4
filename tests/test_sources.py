"""Frame sources on real video files made of real faces, plus a fake camera where a webcam is needed."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import corrupt_mjpeg_frame, face_video, load_photo, panning_frames, write_video

from fer_audio.config import SourceConfig
from fer_audio.retry import backoff_delays
from fer_audio.sources import (
    Frame,
    FrameSource,
    LiveSource,
    SourceError,
    SourceEvent,
    as_bgr,
    keep_for_rate,
    open_source,
    redact_uri,
)

FPS = 30.0


def drain(src: FrameSource, limit: int = 1000, timeout: float = 2.0) -> list[Frame | SourceEvent]:
    """Everything a source gives up to and including its end event (or ``limit`` items)."""
    items: list[Frame | SourceEvent] = []
    for _ in range(limit):
        item = src.read(timeout)
        if item is None:
            break
        items.append(item)
        if isinstance(item, SourceEvent) and item.kind == "end":
            break
    return items


def frames_of(items: list[Frame | SourceEvent]) -> list[Frame]:
    return [i for i in items if isinstance(i, Frame)]


def kinds_of(items: list[Frame | SourceEvent]) -> list[str]:
    return [i.kind if isinstance(i, SourceEvent) else "frame" for i in items]


def digest(image: np.ndarray) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def capture_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("capture ")]


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    """One second of a real face panning across the frame at 30 fps (mp4v)."""
    return face_video(tmp_path, n=30, fps=FPS)


# -- files: deterministic, synchronous -----------------------------------------------------


def test_file_frames_and_timestamps_are_the_same_every_run(clip: Path) -> None:
    runs = []
    for _ in range(2):
        src = open_source(SourceConfig(uri=str(clip), max_fps=120))
        items = drain(src)
        src.close()
        runs.append(items)
    first, second = runs
    assert kinds_of(first) == ["opened"] + ["frame"] * 30 + ["end"]
    frames_a, frames_b = frames_of(first), frames_of(second)
    assert [f.index for f in frames_a] == list(range(30))
    assert [f.t for f in frames_a] == pytest.approx([i / FPS for i in range(30)], abs=1e-3)
    assert [f.t for f in frames_a] == [f.t for f in frames_b]
    assert [digest(f.image) for f in frames_a] == [digest(f.image) for f in frames_b]
    assert all(f.image.dtype == np.uint8 and f.image.shape == (240, 320, 3) for f in frames_a)
    # The face moves, so consecutive frames differ: the source is not repeating one picture.
    assert len({digest(f.image) for f in frames_a}) == 30


def test_file_source_is_not_live_and_describes_itself(clip: Path) -> None:
    src = open_source(SourceConfig(uri=str(clip)))
    try:
        assert src.is_live is False
        assert str(clip) in src.describe()
        opened = src.read(0.1)
        assert isinstance(opened, SourceEvent) and opened.kind == "opened" and opened.t == 0.0
    finally:
        src.close()


@pytest.mark.parametrize(("max_fps", "expected_indices"), [(15.0, range(0, 30, 2)), (10.0, range(0, 30, 3))])
def test_max_fps_keeps_an_even_subset_of_file_frames(clip: Path, max_fps: float, expected_indices: range) -> None:
    src = open_source(SourceConfig(uri=str(clip), max_fps=max_fps))
    frames = frames_of(drain(src))
    src.close()
    assert [f.index for f in frames] == list(expected_indices)
    gaps = np.diff([f.t for f in frames])
    assert np.all(gaps >= 1 / max_fps - 1e-3)


def test_end_of_file_is_an_event_and_then_nothing(clip: Path) -> None:
    src = open_source(SourceConfig(uri=str(clip), max_fps=120))
    items = drain(src)
    end = items[-1]
    assert isinstance(end, SourceEvent) and end.kind == "end"
    assert end.t == pytest.approx(29 / FPS, abs=1e-3)
    assert src.read(0.01) is None
    assert src.read(0.0) is None
    src.close()


def test_loop_restarts_with_time_still_increasing(tmp_path: Path) -> None:
    path = face_video(tmp_path, n=10, fps=10.0)
    src = open_source(SourceConfig(uri=str(path), loop=True, max_fps=120))
    items = drain(src, limit=26)
    src.close()
    assert kinds_of(items) == ["opened"] + ["frame"] * 25  # no end event while looping
    frames = frames_of(items)
    assert [f.index for f in frames] == list(range(25))
    assert [f.t for f in frames] == pytest.approx([i / 10.0 for i in range(25)], abs=1e-3)
    # The second and third passes show the same pictures as the first.
    assert [digest(f.image) for f in frames[10:20]] == [digest(f.image) for f in frames[:10]]
    assert digest(frames[20].image) == digest(frames[0].image)


@pytest.mark.parametrize("realtime", [False, True], ids=["synchronous", "realtime"])
def test_looping_file_that_vanishes_is_an_error_not_a_normal_end(tmp_path: Path, realtime: bool) -> None:
    path = face_video(tmp_path, n=10, fps=30.0)
    src = open_source(SourceConfig(uri=str(path), loop=True, realtime=realtime, max_fps=120))
    first = drain(src, limit=4)  # opened + 3 frames: the first pass is open and reading
    path.unlink()  # the open pass goes on; the next one cannot start
    rest = drain(src, limit=40)
    src.close()
    kinds = kinds_of(first + rest)
    assert kinds == ["opened"] + ["frame"] * 10 + ["error", "end"]
    error = rest[-2]
    assert isinstance(error, SourceEvent)
    assert str(path) in error.message and "\n" not in error.message


def test_corrupt_frame_in_the_middle_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_video(tmp_path / "c.avi", panning_frames(10), FPS, fourcc="MJPG")
    corrupt_mjpeg_frame(path, 4)
    src = open_source(SourceConfig(uri=str(path), max_fps=120))
    with caplog.at_level(logging.WARNING, logger="fer_audio.sources"):
        items = drain(src)
    src.close()
    frames = frames_of(items)
    assert kinds_of(items)[-1] == "end"
    assert [f.index for f in frames] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert frames[4].t == pytest.approx(5 / FPS, abs=1e-3)
    assert any("undecodable" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


def test_file_source_writes_nothing(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    src = open_source(SourceConfig(uri=str(clip)))
    drain(src)
    src.close()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


# -- image folders -------------------------------------------------------------------------


def test_image_folder_yields_images_by_name_at_a_nominal_rate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    photos = {
        "b_obama.jpg": "obama-480p.jpg",
        "a_alex.png": "alex-lacamoire.png",
        "d_kit.jpg": "kit_with_rose.jpg",
    }
    for name, photo in photos.items():
        cv2.imwrite(str(folder / name), load_photo(photo))
    (folder / "c_broken.jpg").write_text("not a picture")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    src = open_source(SourceConfig(uri=str(folder), max_fps=120), folder_fps=2.0)
    with caplog.at_level(logging.WARNING, logger="fer_audio.sources"):
        items = drain(src)
    src.close()
    assert kinds_of(items) == ["opened", "frame", "frame", "frame", "end"]
    frames = frames_of(items)
    # Sorted by name; the broken image keeps its slot in time, so d_kit is at 3 / 2 s.
    assert [f.t for f in frames] == pytest.approx([0.0, 0.5, 1.5])
    expected = [np.asarray(cv2.imread(str(folder / n))) for n in ("a_alex.png", "b_obama.jpg", "d_kit.jpg")]
    assert [f.image.shape for f in frames] == [e.shape for e in expected]
    assert all(np.array_equal(f.image, e) for f, e in zip(frames, expected, strict=True))
    assert any("c_broken.jpg" in r.getMessage() for r in caplog.records)


def test_image_folder_respects_max_fps(tmp_path: Path) -> None:
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), load_photo("alex-lacamoire.png"))
    src = open_source(SourceConfig(uri=str(tmp_path), max_fps=1.0), folder_fps=4.0)
    frames = frames_of(drain(src))
    src.close()
    assert [f.t for f in frames] == pytest.approx([0.0, 1.0])
    assert [f.index for f in frames] == [0, 4]


def test_a_single_photo_is_a_one_frame_source() -> None:
    path = Path(__file__).resolve().parent / "fixtures" / "faces" / "alex-lacamoire.png"
    src = open_source(SourceConfig(uri=str(path)))
    items = drain(src)
    src.close()
    assert kinds_of(items) == ["opened", "frame", "end"]
    assert np.array_equal(frames_of(items)[0].image, load_photo("alex-lacamoire.png"))
    assert "image file" in src.describe()


# -- bad input -----------------------------------------------------------------------------


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp / "notes.mp4"
    text.write_text("this is a shopping list, not a video\n" * 20)
    no_images = tmp / "no_images"
    no_images.mkdir()
    (no_images / "readme.txt").write_text("nothing to see")
    return {
        "missing": (tmp / "does-not-exist.mp4", "no such file"),
        "missing folder": (tmp / "nope" / "frames", "no such file or folder"),
        "zero bytes": (empty, "empty file"),
        "text named .mp4": (text, "not a readable video"),
        "folder without images": (no_images, "no images"),
    }


@pytest.mark.parametrize("case", ["missing", "missing folder", "zero bytes", "text named .mp4", "folder without images"])
def test_bad_input_raises_one_line_naming_the_path(tmp_path: Path, case: str) -> None:
    path, problem = _bad_inputs(tmp_path)[case]
    before = len(capture_threads())
    for realtime in (False, True):
        with pytest.raises(SourceError) as info:
            open_source(SourceConfig(uri=str(path), realtime=realtime))
        message = str(info.value)
        assert str(path) in message and problem in message
        assert "\n" not in message
    assert len(capture_threads()) == before  # refused before any thread started


def test_empty_uri_and_bad_folder_rate_are_refused(clip: Path) -> None:
    with pytest.raises(SourceError, match="empty"):
        open_source(SourceConfig(uri="  "))
    with pytest.raises(SourceError, match="folder_fps"):
        open_source(SourceConfig(uri=str(clip)), folder_fps=0.0)


# -- pure helpers --------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_maximum() -> None:
    gen = backoff_delays(1.0, 30.0)
    assert [next(gen) for _ in range(8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    gen = backoff_delays(5.0, 2.0)
    assert [next(gen) for _ in range(2)] == [2.0, 2.0]


def test_rate_limit_tolerates_millisecond_rounding() -> None:
    assert keep_for_rate(0.0, None, 15.0)
    assert keep_for_rate(0.066, 0.0, 15.0)  # due at 0.0667, stored as 66 ms
    assert not keep_for_rate(0.033, 0.0, 15.0)


def test_as_bgr_normalises_or_refuses() -> None:
    gray = np.full((4, 5), 7, np.uint8)
    assert as_bgr(gray).shape == (4, 5, 3)  # type: ignore[union-attr]
    assert as_bgr(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)  # type: ignore[union-attr]
    assert as_bgr(np.zeros((0, 5, 3), np.uint8)) is None
    assert as_bgr(np.zeros((4, 5, 3), np.float32)) is None
    assert as_bgr(None) is None


def test_stream_credentials_never_reach_messages() -> None:
    assert redact_uri("rtsp://user:secret@cam.local:554/live") == "rtsp://***@cam.local:554/live"
    assert redact_uri("http://cam.local/mjpg") == "http://cam.local/mjpg"


# -- live sources: a fake camera (no webcam can exist here) and real files -------------------


class FakeCamera:
    """Stands in for a webcam: a real face photo stamped with a frame counter.

    ``frames`` is how many reads succeed before the camera 'unplugs' (None: never);
    ``period`` is how long a read blocks, like a camera waiting for its next frame;
    ``raises``: after unplugging, reads raise (a driver error) instead of returning False.
    """

    def __init__(self, opens: bool = True, frames: int | None = None, period: float = 0.005, raises: bool = False) -> None:
        self.opens = opens
        self.frames = frames
        self.period = period
        self.raises = raises
        self.produced = 0
        self.released = False
        self._face = cv2.resize(load_photo("obama-480p.jpg"), (160, 90))

    def isOpened(self) -> bool:
        return self.opens and not self.released

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.period)
        if not self.isOpened() or (self.frames is not None and self.produced >= self.frames):
            if self.raises:
                raise cv2.error("fake driver error: device disconnected")
            return False, None
        image = self._face.copy()
        image[0, 0] = (self.produced & 255, (self.produced >> 8) & 255, 0)
        self.produced += 1
        return True, image

    def get(self, prop_id: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


def stamp(frame: Frame) -> int:
    return int(frame.image[0, 0, 0]) + 256 * int(frame.image[0, 0, 1])


class Script:
    """A capture factory that hands out prepared fake cameras in order and records when."""

    def __init__(self, *cameras: FakeCamera | Exception) -> None:
        self.cameras = list(cameras)
        self.made: list[FakeCamera] = []
        self.times: list[float] = []

    def __call__(self) -> FakeCamera:
        self.times.append(time.monotonic())
        cam = self.cameras.pop(0) if len(self.cameras) > 1 else self.cameras[0]
        if isinstance(cam, Exception):
            raise cam
        self.made.append(cam)
        return cam


def read_until(
    src: FrameSource, done: Callable[[list[Frame | SourceEvent]], bool], deadline_s: float = 10.0
) -> list[Frame | SourceEvent]:
    items: list[Frame | SourceEvent] = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and not done(items):
        item = src.read(0.2)
        if item is not None:
            items.append(item)
    assert done(items), f"gave up waiting; got {kinds_of(items)}"
    return items


def test_live_source_hands_over_the_newest_frame_and_keeps_no_backlog() -> None:
    cam = FakeCamera(period=0.005)
    src = LiveSource(lambda: cam, "fake camera", max_fps=120, retry_initial_s=0.05, retry_max_s=0.1)
    try:
        assert src.is_live
        first = src.read(2.0)
        assert isinstance(first, SourceEvent) and first.kind == "opened"
        previous = -1
        for _ in range(5):
            time.sleep(0.08)  # a slow consumer: the camera makes many frames meanwhile
            produced_before = cam.produced
            frame = src.read(1.0)
            assert isinstance(frame, Frame)
            assert stamp(frame) == frame.index  # the image belongs to that index
            # Newest: not older than what the camera had produced when we asked (one frame
            # may have been in flight between the camera and the slot).
            assert frame.index >= produced_before - 2
            assert frame.index > previous + 1  # frames in between were dropped, not queued
            previous = frame.index
            # No backlog: the next item is newer still (or nothing has arrived yet).
            nxt = src.read(0.0)
            assert nxt is None or (isinstance(nxt, Frame) and nxt.index > frame.index)
            if isinstance(nxt, Frame):
                previous = nxt.index
        assert src.dropped > 10
    finally:
        src.close()
    assert cam.released
    assert not capture_threads()


def test_lost_camera_is_retried_with_backoff_and_restored() -> None:
    script = Script(
        FakeCamera(frames=3),  # delivers three frames, then stops (unplugged)
        FakeCamera(opens=False),  # first reopen fails
        FakeCamera(opens=False),  # second reopen fails
        FakeCamera(),  # plugged back in
    )
    src = LiveSource(script, "fake camera", max_fps=120, retry_initial_s=0.02, retry_max_s=0.05)
    try:
        items = read_until(src, lambda got: "restored" in kinds_of(got) and kinds_of(got)[-1] == "frame")
    finally:
        src.close()
    events = [k for k in kinds_of(items) if k != "frame"]
    assert events == ["opened", "lost", "restored"]  # one 'lost' per outage, however many retries
    kinds = kinds_of(items)
    assert kinds.index("opened") < kinds.index("frame") < kinds.index("lost")
    assert len(script.made) == 4 and all(c.released for c in script.made)
    # Each reopen waited at least its backoff delay: 0.02, then 0.04, then capped at 0.05.
    gaps = np.diff(script.times[1:])
    assert gaps[0] >= 0.04 - 0.005 and gaps[1] >= 0.05 - 0.005
    times = [i.t for i in items]
    assert times == sorted(times)  # events and frames arrive in order
    assert not capture_threads()


def test_driver_exceptions_are_failures_to_retry_not_crashes() -> None:
    script = Script(
        OSError("fake: /dev/video0 busy"),  # opening raises
        FakeCamera(frames=2, raises=True),  # two frames, then reads raise
        FakeCamera(),
    )
    src = LiveSource(script, "fake camera", max_fps=120, retry_initial_s=0.02, retry_max_s=0.05)
    try:
        items = read_until(src, lambda got: kinds_of(got).count("restored") == 2 and kinds_of(got)[-1] == "frame")
    finally:
        src.close()
    events = [k for k in kinds_of(items) if k != "frame"]
    assert events == ["lost", "restored", "lost", "restored"]
    assert all(c.released for c in script.made)
    assert not capture_threads()


def test_camera_missing_at_start_is_an_event_not_a_crash() -> None:
    # A real OpenCV camera open: there is no camera 7 on this machine.
    src = open_source(SourceConfig(uri="7", retry_initial_s=0.05, retry_max_s=0.1))
    try:
        assert src.is_live and src.describe() == "camera 7"
        item = src.read(5.0)
        assert isinstance(item, SourceEvent) and item.kind == "lost"
        assert "camera 7" in item.message
    finally:
        started = time.monotonic()
        src.close()
        assert time.monotonic() - started < 1.0
    assert not capture_threads()


def test_stream_that_cannot_connect_is_lost_and_its_password_is_hidden() -> None:
    # Port 9 on the loopback refuses at once: an unreachable stream without any network.
    src = open_source(SourceConfig(uri="rtsp://viewer:hunter2@127.0.0.1:9/live", retry_initial_s=0.05))
    try:
        assert "hunter2" not in src.describe()
        item = src.read(10.0)
        assert isinstance(item, SourceEvent) and item.kind == "lost"
        assert "hunter2" not in item.message and "127.0.0.1" in item.message
    finally:
        src.close()


def test_realtime_file_goes_through_the_live_path_at_its_own_pace(clip: Path) -> None:
    started = time.monotonic()
    src = open_source(SourceConfig(uri=str(clip), realtime=True, max_fps=120))
    try:
        assert src.is_live is False  # paced, but still a file
        items = read_until(src, lambda got: bool(got) and kinds_of(got)[-1] == "end", deadline_s=10.0)
    finally:
        src.close()
    elapsed = time.monotonic() - started
    assert kinds_of(items)[0] == "opened"
    frames = frames_of(items)
    assert frames, "no frames came through"
    # File timestamps, not the wall clock: each t is one of the file's own frame times.
    assert all(abs(f.t - f.index / FPS) < 1e-3 for f in frames)
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    # Paced: the last frame was not handed over before it was due.
    assert elapsed >= frames[-1].t
    assert not capture_threads()


def test_realtime_file_drops_frames_for_a_slow_reader(clip: Path) -> None:
    src = open_source(SourceConfig(uri=str(clip), realtime=True, max_fps=120))
    assert isinstance(src, LiveSource)
    try:
        got = []
        while True:
            item = src.read(2.0)
            if item is None or (isinstance(item, SourceEvent) and item.kind == "end"):
                break
            if isinstance(item, Frame):
                got.append(item.index)
            time.sleep(0.15)
    finally:
        src.close()
    assert got == sorted(got) and len(got) < 30
    assert src.dropped == 30 - len(got)


def test_real_video_capture_through_the_camera_code_path(clip: Path) -> None:
    """The unpaced live path with a real cv2.VideoCapture: the file ending looks like an unplugged camera."""
    made: list[cv2.VideoCapture] = []

    def factory() -> cv2.VideoCapture:
        made.append(cv2.VideoCapture(str(clip)))
        return made[-1]

    src = LiveSource(factory, "file as camera", max_fps=120, retry_initial_s=0.02, retry_max_s=0.05)
    try:
        items = read_until(src, lambda got: "restored" in kinds_of(got) and kinds_of(got)[-1] == "frame")
    finally:
        src.close()
    kinds = kinds_of(items)
    assert kinds[0] == "opened" and "lost" in kinds
    frames = frames_of(items)
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    assert [f.t for f in frames] == sorted(f.t for f in frames)  # clock time since open
    assert len(made) >= 2  # reopened after the 'loss'
    assert not capture_threads()
