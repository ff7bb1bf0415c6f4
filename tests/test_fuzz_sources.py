"""Hostile video input through the real pipeline stages: one clear line or a logged warning, never a crash.

Cases: truncated and byte-corrupted videos (mp4v and MJPG, cut from the
bundled demo clip of real photographs), zero-byte and non-video files,
image folders full of odd images (sizes from 1x1, gray, BGRA, 16-bit,
corrupt files), arbitrary arrays from a camera, frames with no face, and a
frame with 20 real faces. Each goes through the real source (open_source),
YuNet, tracker, the shipped model, smoother, planner, presenter and the
silent audio output. A case passes when open_source refuses it with one
SourceError line, or Pipeline.run returns (each warning one line). A watchdog
stops any run after 60 s and fails the case, so a hang cannot hide.

Case counts are printed at the end of the module (run with -s) and written to
$FER_AUDIO_FUZZ_COUNTS/test_fuzz_sources.json when that variable names a folder.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fuzzkit import EXAMPLES, case_report
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fer_audio.config import Config
from fer_audio.cues import CuePlanner, CuePresenter
from fer_audio.pipeline import ListEvents, Pipeline, Stages
from fer_audio.resources import DEMO_CLIP
from fer_audio.smoothing import Smoother
from fer_audio.sources import SourceError, as_bgr, open_source
from fer_audio.tracking import Tracker

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASES: Counter[str] = Counter()
WATCHDOG_S = 60.0

# Videos cost a pipeline run each: fewer examples than the pure-parsing fuzzers.
VIDEO = settings(max_examples=max(5, EXAMPLES // 6), deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                        HealthCheck.data_too_large])
FRAMES = settings(max_examples=max(10, EXAMPLES // 2), deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                         HealthCheck.data_too_large])


report_counts = case_report(CASES, __file__)


def one_line(text: str) -> str:
    assert text.strip(), "empty message"
    assert "\n" not in text and "\r" not in text, f"message spans several lines: {text!r}"
    return text


@dataclass
class Shared:
    """The expensive stages, built once: YuNet and the model hold no per-run state."""

    cfg: Config
    detector: Any
    model: Any
    audio: Any


@pytest.fixture(scope="module")
def shared() -> Iterator[Shared]:
    from fer_audio.audio import AudioOut
    from fer_audio.detection import make_detector
    from fer_audio.emotion import load_model

    base = Config()
    cfg = base.model_copy(update={
        "audio": base.audio.model_copy(update={"output": "silent", "startup_sound": False}),
        "speech": base.speech.model_copy(update={"enabled": False}),
    })
    audio = AudioOut(cfg.audio, cfg.speech, cfg.cues)
    yield Shared(cfg, make_detector(cfg.detector), load_model(cfg.model), audio)
    audio.close()


def pipeline(sh: Shared, source: Any, cfg: Config | None = None, detector: Any = None) -> Pipeline:
    cfg = cfg or sh.cfg
    stages = Stages(source=source, detector=detector or sh.detector, tracker=Tracker(cfg.tracker), model=sh.model,
                    smoother=Smoother(cfg.smoothing, sh.model.labels), planner=CuePlanner(cfg.cues, cfg.audio),
                    presenter=CuePresenter(cfg.audio), audio=sh.audio)
    return Pipeline(cfg, stages, ListEvents())


def run_uri(sh: Shared, uri: str, max_seconds: float = 2.0) -> str:
    """Open and run ``uri``; the outcome's name. Fails on a crash, a hang, or a multi-line message."""
    cfg = sh.cfg.model_copy(update={"source": sh.cfg.source.model_copy(update={"uri": uri})})
    try:
        source = open_source(cfg.source)
    except SourceError as exc:
        one_line(str(exc))
        return "refused (SourceError)"
    stop = threading.Event()
    timer = threading.Timer(WATCHDOG_S, stop.set)
    timer.start()
    try:
        stats = pipeline(sh, source, cfg).run(stop, max_seconds=max_seconds)
    finally:
        timer.cancel()
        source.close()
    assert not stop.is_set(), f"{uri}: still running after {WATCHDOG_S:g} s"
    assert stats.end_reason in ("end of source", "source failed", "time limit"), stats.end_reason
    for w in stats.warnings:
        one_line(w)
    if stats.warnings:
        return "ran with a warning"
    return "ran" if stats.analysed else "ran, no frame"


# -- source material -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Two short real-face clips (mp4v and MJPG AVI), 1.6 s of the demo where a face is shown."""
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    cap.set(cv2.CAP_PROP_POS_MSEC, 2000)
    frames = []
    for _ in range(24):
        ok, frame = cap.read()
        assert ok
        frames.append(cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA))
    cap.release()
    out: dict[str, bytes] = {}
    folder = tmp_path_factory.mktemp("clips")
    for ext, fourcc in (("mp4", "mp4v"), ("avi", "MJPG")):
        path = folder / f"clip.{ext}"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 15.0, (320, 240))
        assert writer.isOpened(), f"cannot write {fourcc}"
        for f in frames:
            writer.write(f)
        writer.release()
        out[ext] = path.read_bytes()
    return out


def test_intact_clips_run_and_find_the_face(shared: Shared, clips: dict[str, bytes], tmp_path: Path) -> None:
    """The control case: the material the fuzzers damage is good to start with."""
    for ext, data in clips.items():
        path = tmp_path / f"ok.{ext}"
        path.write_bytes(data)
        assert run_uri(shared, str(path)) == "ran"
    CASES["intact clip"] += 2


@VIDEO
@given(ext=st.sampled_from(["mp4", "avi"]), keep=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_videos(shared: Shared, clips: dict[str, bytes], tmp_path: Path, ext: str, keep: float) -> None:
    data = clips[ext]
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: int(len(data) * keep)])
    CASES[f"truncated {ext}: {run_uri(shared, str(path))}"] += 1


@VIDEO
@given(ext=st.sampled_from(["mp4", "avi"]),
       damage=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.binary(min_size=1, max_size=64)),
                       min_size=1, max_size=30))
def test_corrupted_videos(shared: Shared, clips: dict[str, bytes], tmp_path: Path, ext: str,
                          damage: list[tuple[float, bytes]]) -> None:
    data = bytearray(clips[ext])
    for where, junk in damage:
        at = int(where * len(data))
        data[at:at + len(junk)] = junk
    path = tmp_path / f"bad.{ext}"
    path.write_bytes(bytes(data))
    CASES[f"corrupted {ext}: {run_uri(shared, str(path))}"] += 1


@pytest.mark.parametrize("what", ["zero bytes", "text", "png named mp4", "random bytes", "empty folder",
                                  "folder named mp4", "missing", "blank uri", "not a camera index"])
def test_files_that_are_not_videos(shared: Shared, tmp_path: Path, what: str) -> None:
    path = tmp_path / "input.mp4"
    uri = str(path)
    if what == "zero bytes":
        path.write_bytes(b"")
    elif what == "text":
        path.write_text("not a video\n" * 100)
    elif what == "png named mp4":
        ok, enc = cv2.imencode(".png", np.full((48, 48), 128, np.uint8))
        path.write_bytes(enc.tobytes())
    elif what == "random bytes":
        path.write_bytes(np.random.default_rng(7).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    elif what == "empty folder":
        uri = str(tmp_path)
    elif what == "folder named mp4":
        path.mkdir()
    elif what == "blank uri":
        uri = "   "
    elif what == "not a camera index":
        uri = "-1"
    outcome = run_uri(shared, uri)
    if what in ("zero bytes", "text", "random bytes", "empty folder", "folder named mp4", "missing", "blank uri",
                "not a camera index"):
        assert outcome == "refused (SourceError)", f"{what}: {outcome}"
    CASES[f"not a video ({what}): {outcome}"] += 1


# -- image folders --------------------------------------------------------------------------------

image_specs = st.tuples(
    st.integers(1, 900), st.integers(1, 900),      # height, width
    st.sampled_from([1, 3, 4]),                    # channels
    st.sampled_from([np.uint8, np.uint16]),
    st.sampled_from([".png", ".jpg", ".bmp", ".tiff", ".webp", ".pgm"]),
    st.sampled_from(["noise", "flat", "face", "corrupt", "empty"]),
)


@VIDEO
@given(specs=st.lists(image_specs, min_size=1, max_size=6), seed=st.integers(0, 2**32 - 1))
def test_image_folders_of_odd_images(shared: Shared, tmp_path_factory: pytest.TempPathFactory,
                                     specs: list[tuple[Any, ...]], seed: int) -> None:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(seed)
    faces = np.load(FIXTURES / "fer2013_sample.npz")["images"]
    for i, (h, w, ch, dtype, ext, kind) in enumerate(specs):
        path = folder / f"{i:03d}{ext}"
        top = np.iinfo(dtype).max
        if kind == "empty":
            path.write_bytes(b"")
            continue
        if kind == "corrupt":
            path.write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
            continue
        if kind == "face":
            img = cv2.resize(faces[i % len(faces)], (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float64)
            img = (img / 255.0 * top).astype(dtype)
        elif kind == "flat":
            img = np.full((h, w), int(rng.integers(0, top)), dtype)
        else:
            img = rng.integers(0, top, (h, w), dtype=dtype, endpoint=True)
        if ch > 1:
            img = np.dstack([img] * ch)
        if not cv2.imwrite(str(path), img):  # the format cannot hold it: the file is garbage then
            path.write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    CASES[f"image folder: {run_uri(shared, str(folder), max_seconds=10.0)}"] += 1


# -- camera frames -------------------------------------------------------------------------------

@st.composite
def camera_arrays(draw: st.DrawFn) -> np.ndarray:
    """Whatever a broken driver could hand over: any size, channel count, dtype and content."""
    h = draw(st.integers(0, 720))
    w = draw(st.integers(0, 960))
    shape: tuple[int, ...] = (h, w)
    ch = draw(st.sampled_from([None, 1, 2, 3, 4, 5]))
    if ch is not None:
        shape = (h, w, ch)
    if draw(st.integers(0, 9)) == 0:
        shape = draw(st.sampled_from([(h,), (h, w, 3, 1), ()]))
    dtype = draw(st.sampled_from([np.uint8, np.uint8, np.uint8, np.uint16, np.int8, np.float32, np.float64,
                                  np.bool_]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["noise", "zeros", "max", "nan"]))
    if kind == "noise":
        arr = rng.random(shape) * (255 if dtype != np.bool_ else 1)
    elif kind == "max":
        arr = np.full(shape, 255.0)
    elif kind == "nan":
        arr = np.full(shape, np.nan)
    else:
        arr = np.zeros(shape)
    with np.errstate(invalid="ignore"):
        out: np.ndarray = arr.astype(dtype)
    if draw(st.booleans()) and out.ndim >= 2:
        out = out[::2, ::-1]  # a non-contiguous view, as a driver's strided buffer would be
    return out


@FRAMES
@given(arr=camera_arrays())
def test_any_camera_frame_is_refused_or_analysed(shared: Shared, arr: np.ndarray) -> None:
    """Sources pass every frame through as_bgr; whatever it lets through, the stages must take."""
    bgr = as_bgr(arr)
    if bgr is None:
        CASES["camera frame: refused by as_bgr"] += 1
        return
    assert bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] == 3
    pipe = pipeline(shared, source=None)
    for k in range(3):
        pipe.process(bgr, k / 15.0)
    CASES["camera frame: analysed"] += 1


@FRAMES
@given(h=st.integers(1, 600), w=st.integers(1, 800), kind=st.sampled_from(["black", "white", "noise", "gradient"]),
       seed=st.integers(0, 2**32 - 1))
def test_frames_without_a_face_say_nothing(shared: Shared, h: int, w: int, kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    if kind == "black":
        img = np.zeros((h, w, 3), np.uint8)
    elif kind == "white":
        img = np.full((h, w, 3), 255, np.uint8)
    elif kind == "noise":
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:
        img = np.dstack([np.tile(np.linspace(0, 255, w, dtype=np.uint8), (h, 1))] * 3)
    pipe = pipeline(shared, source=None)
    events = [e for k in range(12) for e in pipe.process(img, k / 15.0)]
    # YuNet may, rarely, see a face in noise; a face it holds for 12 frames may be announced,
    # but a blank or gradient frame holds nothing at all.
    if kind != "noise":
        assert events == [], events
    CASES[f"no face ({kind})"] += 1


def twenty_faces(size: tuple[int, int] = (640, 480), face: int = 110) -> np.ndarray:
    faces = np.load(FIXTURES / "fer2013_sample.npz")["images"]
    w, h = size
    frame = np.full((h, w), 110, np.uint8)
    cw, ch = w // 5, h // 4
    for i in range(20):
        r, c = divmod(i, 5)
        y0, x0 = r * ch + (ch - face) // 2, c * cw + (cw - face) // 2
        frame[y0:y0 + face, x0:x0 + face] = cv2.resize(faces[i * 3], (face, face), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def test_twenty_faces_are_capped_at_max_faces(shared: Shared) -> None:
    frame = twenty_faces()
    pipe = pipeline(shared, source=None)
    for k in range(10):
        pipe.process(frame, k / 15.0)
    held = pipe.s.smoother.tracks()  # every person whose expressions are being followed
    assert 1 <= len(held) <= shared.cfg.detector.max_faces, held
    CASES["twenty faces, default max_faces"] += 1


def test_twenty_faces_all_analysed_when_allowed(shared: Shared) -> None:
    from fer_audio.detection import make_detector

    cfg = shared.cfg.model_copy(update={"detector": shared.cfg.detector.model_copy(
        update={"max_faces": 64, "detect_width": 640})})
    pipe = pipeline(shared, source=None, cfg=cfg, detector=make_detector(cfg.detector))
    frame = twenty_faces()
    events = [e for k in range(12) for e in pipe.process(frame, k / 15.0)]
    held = pipe.s.smoother.tracks()
    assert len(held) > 8, f"only {len(held)} of 20 faces followed"  # beyond the default cap: batches of 15+
    appeared = [e.track for e in events if e.kind == "face_appeared"]
    assert sorted(appeared) == held, "every face held for 0.8 s is announced, once"
    CASES["twenty faces, max_faces 64"] += 1
