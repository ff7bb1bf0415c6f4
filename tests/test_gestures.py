"""Nod and shake detection: scripted landmark histories, clips made from the committed photos,
and (when ../shared is there) the four real head-gesture videos."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_audio.config import Config, GestureConfig
from fer_audio.cues import CuePlanner, CuePresenter
from fer_audio.gestures import GestureDetector, HeadSample, classify, count_legs
from fer_audio.pipeline import Pipeline, Stages
from fer_audio.smoothing import Smoother
from fer_audio.social import SocialSmoother
from fer_audio.tracking import Tracker
from fer_audio.types import Event
from tests.media import load_photo, place

HEADPOSE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "headpose"
FPS = 15.0


# -- the zigzag -----------------------------------------------------------------


def test_count_legs() -> None:
    assert count_legs([], 0.1) == 0
    assert count_legs([0.0, 0.05, 0.0, 0.05], 0.1) == 0  # jitter under the swing
    assert count_legs([0.0, 0.2], 0.1) == 1
    assert count_legs([0.0, 0.2, 0.0], 0.1) == 2  # a turn and back
    assert count_legs([0.0, 0.2, 0.0, 0.2, 0.0], 0.1) == 4
    assert count_legs([0.0, 0.1, 0.2, 0.3, 0.25, 0.3, 0.0], 0.1) == 2  # a dip under the swing is no leg
    assert count_legs([1.0, 0.0, 1.0], 0.5) == 2  # downwards first


# -- scripted histories -------------------------------------------------------------


def samples(seconds: float, yaw: Callable[[float], float] = lambda t: 0.0,
            nose_y: Callable[[float], float] = lambda t: 0.0, pitch: Callable[[float], float] | None = None,
            x: Callable[[float], float] = lambda t: 0.0, width: Callable[[float], float] = lambda t: 100.0,
            fps: float = FPS) -> list[HeadSample]:
    """Positions in face widths (times ``width``); the head pitches with the nose unless given."""
    out = []
    for i in range(round(seconds * fps)):
        t = i / fps
        w = width(t)
        ny = nose_y(t)
        p = 0.55 + 0.5 * ny if pitch is None else pitch(t)
        out.append(HeadSample(t, yaw(t), 300 + x(t) * w, 200 + ny * w, w, p))
    return out


def detect(history: Sequence[HeadSample], cfg: GestureConfig | None = None) -> list[tuple[float, str]]:
    d = GestureDetector(cfg or GestureConfig())
    return [(s.t, g) for s in history if (g := d.observe(1, s)) is not None]


def wave(amplitude: float, hz: float = 1.5, start: float = 0.5) -> Callable[[float], float]:
    return lambda t: amplitude * math.sin(2 * math.pi * hz * (t - start)) if t >= start else 0.0


@pytest.mark.parametrize("fps", [10.0, 15.0, 30.0])
def test_a_shake_is_found_at_any_frame_rate(fps: float) -> None:
    found = detect(samples(3.0, yaw=wave(0.2), fps=fps))
    assert found and {g for _, g in found} == {"shake"}


@pytest.mark.parametrize("fps", [10.0, 15.0, 30.0])
def test_a_nod_is_found_at_any_frame_rate(fps: float) -> None:
    found = detect(samples(3.0, nose_y=wave(0.12), fps=fps))
    assert found and {g for _, g in found} == {"nod"}


def test_one_turn_away_and_back_is_no_shake() -> None:
    def turn(t: float) -> float:
        return 0.5 * math.sin(math.pi * min(max(t - 0.5, 0.0), 1.0))  # out and back once

    assert detect(samples(3.0, yaw=turn)) == []


def test_small_movements_are_nothing() -> None:
    rng = random.Random(1)
    assert detect(samples(5.0, yaw=lambda t: rng.uniform(-0.05, 0.05),
                          nose_y=lambda t: rng.uniform(-0.02, 0.02))) == []


def test_a_face_moving_without_pitching_is_the_camera_not_a_nod() -> None:
    rng = random.Random(2)
    bob = wave(0.15, hz=2.0)
    assert detect(samples(4.0, nose_y=bob, pitch=lambda t: 0.55 + rng.uniform(-0.03, 0.03))) == []
    # The same motion with the pitch that goes with it is a nod.
    assert {g for _, g in detect(samples(4.0, nose_y=bob))} == {"nod"}


def test_walking_past_is_no_nod() -> None:
    # A walker's vertical bob plus travel across the frame.
    assert detect(samples(4.0, nose_y=wave(0.12, hz=2.0), x=lambda t: 1.5 * t)) == []


def test_a_face_that_grows_is_no_nod() -> None:
    assert detect(samples(4.0, nose_y=wave(0.12), width=lambda t: 100 * (1 + 0.3 * t))) == []


def test_one_event_per_gesture_and_cooldown() -> None:
    cfg = GestureConfig(cooldown_s=3.0)
    found = detect(samples(10.0, yaw=wave(0.25)), cfg)
    times = [t for t, _ in found]
    assert len(times) >= 2
    assert all(b - a >= cfg.cooldown_s - 1e-9 for a, b in zip(times, times[1:], strict=False))


def test_disabled_and_bad_samples() -> None:
    assert detect(samples(3.0, yaw=wave(0.2)), GestureConfig(enabled=False)) == []
    d = GestureDetector(GestureConfig())
    assert d.observe(1, HeadSample(0.0, math.nan, 0, 0, 100, 0.5)) is None
    assert d.observe(1, HeadSample(math.inf, 0.0, 0, 0, 100, 0.5)) is None
    # A duplicate time adds nothing, so a repeated frame cannot fake a swing.
    hist = samples(3.0, yaw=wave(0.2))
    doubled = [s for s in hist for _ in range(2)]
    assert detect(doubled) == detect(hist)


def test_forget_and_tracks_are_separate() -> None:
    d = GestureDetector(GestureConfig())
    hist = samples(3.0, yaw=wave(0.2))
    other = samples(3.0)
    got = []
    for a, b in zip(hist, other, strict=True):
        got.append((d.observe(1, a), d.observe(2, b)))
    assert any(g1 == "shake" for g1, _ in got) and all(g2 is None for _, g2 in got)
    assert classify(hist[:2], GestureConfig()) is None


# -- the whole pipeline on clips ---------------------------------------------------


@pytest.fixture(scope="module")
def real_stages() -> tuple[object, object]:
    from fer_audio.detection import make_detector
    from fer_audio.emotion import load_model

    cfg = Config()
    return make_detector(cfg.detector), load_model(cfg.model)


class _NoSource:
    is_live = False

    def describe(self) -> str:
        return "frames"

    def close(self) -> None:
        pass


def pipeline_events(frames: Iterator[np.ndarray] | Sequence[np.ndarray], fps: float,
                    stages: tuple[object, object]) -> list[Event]:
    """Frames through detector, tracker, model, smoother, attention and gestures; every event."""
    from fer_audio.audio import AudioOut
    from fer_audio.pipeline import ListEvents

    cfg = Config()
    cfg = cfg.model_copy(update={"audio": cfg.audio.model_copy(update={"output": "silent"})})
    detector, model = stages
    s = Stages(source=_NoSource(), detector=detector, tracker=Tracker(cfg.tracker), model=model,
               smoother=SocialSmoother(Smoother(cfg.smoothing, model.labels),  # type: ignore[attr-defined]
                                       cfg.attention, cfg.gestures),
               planner=CuePlanner(cfg.cues, cfg.audio), presenter=CuePresenter(cfg.audio),
               audio=AudioOut(cfg.audio, cfg.speech, cfg.cues))
    sink = ListEvents()
    pipe = Pipeline(cfg, s, sink)
    t = 0.0
    for i, frame in enumerate(frames):
        t = i / fps
        pipe.process(frame, t)
    for e in s.smoother.step(t + cfg.smoothing.lost_after_s + 0.01, []):
        sink.write(e)
    s.audio.close()
    return sink.events


def gestures_in(events: Sequence[Event]) -> list[str]:
    return [e.kind for e in events if e.kind in ("nod", "shake")]


def _face(size: int = 220) -> np.ndarray:
    """The committed photo with the largest face (about 80 px wide at this size)."""
    photo = load_photo("alex-lacamoire.png")
    scale = size / max(photo.shape[:2])
    return cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)))


def still_clip(n: int, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    face = _face()
    base = place(face, size, (size[0] - face.shape[1]) // 2, (size[1] - face.shape[0]) // 2)
    return [np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def moved(frames: Sequence[np.ndarray], dx: Callable[[int], float], dy: Callable[[int], float],
          scale: Callable[[int], float] = lambda i: 1.0) -> list[np.ndarray]:
    """Each frame shifted and scaled about its centre (gray fill), as a moving camera or person would."""
    out = []
    for i, f in enumerate(frames):
        h, w = f.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale(i))
        m[0, 2] += dx(i)
        m[1, 2] += dy(i)
        out.append(cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128)))
    return out


def _made_clips(base: Sequence[np.ndarray], face_w: float, fps: float) -> dict[str, list[np.ndarray]]:
    n = len(base)
    w = base[0].shape[1]
    rng = random.Random(3)
    jitter = [(rng.uniform(-0.1, 0.1) * face_w, rng.uniform(-0.1, 0.1) * face_w) for _ in range(n)]
    return {
        "still": list(base),
        "walking past": moved(base, lambda i: (i / (n - 1) - 0.5) * 0.6 * w,
                              lambda i: 0.1 * face_w * math.sin(2 * math.pi * 2.0 * i / fps)),
        "growing and shrinking": moved(base, lambda i: 0.0, lambda i: 0.0,
                                       lambda i: 1.0 + 0.5 * math.sin(math.pi * i / (n - 1))),
        "camera shake": moved(base, lambda i: jitter[i][0], lambda i: jitter[i][1]),
        "camera bob": moved(base, lambda i: 0.0, lambda i: 0.15 * face_w * math.sin(2 * math.pi * 2.0 * i / fps)),
    }


CLIP_NAMES = ("still", "walking past", "growing and shrinking", "camera shake", "camera bob")


@pytest.fixture(scope="module")
def photo_clips() -> dict[str, list[np.ndarray]]:
    return _made_clips(still_clip(round(4 * FPS)), face_w=80.0, fps=FPS)


@pytest.mark.parametrize("name", CLIP_NAMES)
def test_clips_made_from_a_photo_give_no_gesture(name: str, photo_clips: dict, real_stages: tuple) -> None:
    events = pipeline_events(photo_clips[name], FPS, real_stages)
    assert any(e.kind == "face_appeared" for e in events), f"{name}: the face was never followed"
    assert gestures_in(events) == [], f"{name}: {gestures_in(events)}"
    assert all(e.facing is True for e in events), f"{name}: a frontal photo is facing you"


# -- the real videos (../shared) -----------------------------------------------------


def _video(name: str) -> list[np.ndarray]:
    path = HEADPOSE / f"nodpigeon_head_{name}.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not present (evaluation data in ../shared)")
    cap = cv2.VideoCapture(str(path))
    frames = []
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % 2 == 0:  # 30 fps files at the default max_fps of 15
            frames.append(frame)
        i += 1
    cap.release()
    return frames


@pytest.mark.slow
@pytest.mark.parametrize(("name", "expected"), [
    ("nodding", {"nod"}), ("turning", {"shake"}), ("stationary", set()), ("turning_fake", set()),
])
def test_real_gesture_videos(name: str, expected: set[str], real_stages: tuple) -> None:
    events = pipeline_events(_video(name), FPS, real_stages)
    found = gestures_in(events)
    assert set(found) == expected, f"{name}: {found}"
    if expected:
        assert len(found) >= 2, f"{name}: repeated gestures should give more than one event ({found})"


@pytest.mark.slow
@pytest.mark.parametrize("name", CLIP_NAMES[1:])
def test_the_real_still_video_moved_or_scaled_gives_no_gesture(name: str, real_stages: tuple) -> None:
    base = _video("stationary")[: round(6 * FPS)]
    face_w = float(real_stages[0].detect(base[0])[0].w)  # type: ignore[attr-defined]
    clip = _made_clips(base, face_w, FPS)[name]
    events = pipeline_events(clip, FPS, real_stages)
    assert any(e.kind == "face_appeared" for e in events)
    assert gestures_in(events) == [], f"{name}: {gestures_in(events)}"
