"""The whole pipeline on the bundled demo clip: real video, real YuNet, the shipped model, real smoother.

The question here is whether the pipeline loses or invents information, not
how accurate the model is (that is measured by training.evaluate). So what is
expected of each face segment comes from the shipped model's own predictions on
that face, cropped the way the runtime crops it, on frames sampled through the
segment: a label the model holds clearly on nearly every frame must be cued, and
a cue may only be of a label the model itself puts on top, near its threshold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_audio.config import Config
from fer_audio.detection import make_detector
from fer_audio.resources import DEMO_CLIP, DEMO_TIMELINE
from fer_audio.runner import Run

# Tolerances, and why:
# - position: the clip drifts a face by at most 4 px (0.0125 of the width) and
#   YuNet's box centre sits within ~10 px of the pasted square's centre; 0.1 of
#   the half-width is generous and still far from the other person (0.5 away).
X_TOL = 0.1
# - onset: an expression needs the smoothed probability to cross the enter
#   threshold (a few half-lives, 0.25 s each) and then hold for min_dwell_s
#   (0.1 s by default); when the face in a slot changes, the old expression must first
#   decay below the exit threshold. 1.6 s covers that with frame quantisation.
ONSET_MAX_S = 1.6
# - confidence band: a face whose own probability is within 0.05 of the enter
#   threshold may or may not be cued depending on a frame of video noise.
BAND = 0.05
# - sampling: the model's view of a segment's face, every 0.25 s inside it; a label is
#   held clearly when it is on top, at least BAND above its enter threshold, on 80% of them
#   (the smoother's average tolerates a stray frame, not a face that flickers between labels).
SAMPLE_S = 0.25
CLEAR_SHARE = 0.8


def _segments() -> list[dict]:
    return json.loads(DEMO_TIMELINE.read_text())["segments"]


def _frames(seg: dict) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    # Inside the segment: its first and last frames may still show the change of face.
    for t in np.arange(seg["start"] + SAMPLE_S, seg["end"] - SAMPLE_S + 1e-6, SAMPLE_S):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(round(t * fps)))
        ok, frame = cap.read()
        assert ok, f"cannot read the demo clip at {t} s"
        frames.append(frame)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def demo_run() -> tuple[Config, list, object]:
    cfg = Config()
    cfg = cfg.model_copy(update={
        "source": cfg.source.model_copy(update={"uri": str(DEMO_CLIP)}),
        "audio": cfg.audio.model_copy(update={"output": "silent", "startup_sound": False}),
    })
    with Run(cfg, keep_events=True) as run:
        stats = run.pipe.run()
    assert stats.end_reason == "end of source" and run.kept is not None
    return cfg, run.kept.events, run.pipe.s


def _views(stages: object, cfg: Config, seg: dict) -> list[tuple[str, float]]:
    """The model's own top label and probability for this segment's face on each sampled frame."""
    # Full passes of their own: the run's detector may follow faces and holds the run's last boxes.
    detector = make_detector(cfg.detector)
    views = []
    for frame in _frames(seg):
        h, w = frame.shape[:2]
        near = [b for b in detector.detect(frame) if abs((2 * b.cx / w - 1) - seg["x"]) < X_TOL]
        assert len(near) == 1, f"detector should see exactly one face at x={seg['x']} ({seg}, frame {len(views)})"
        probs = stages.model.predict(frame, near)[0]  # type: ignore[attr-defined]
        k = int(np.argmax(probs))
        views.append((stages.model.labels[k], float(probs[k])))  # type: ignore[attr-defined]
    return views


def test_every_face_segment_gives_one_correct_cue_and_nothing_is_invented(demo_run: tuple) -> None:
    cfg, events, stages = demo_run
    thresholds = stages.smoother.enter_thresholds()  # per expression: the card's, unless the config says
    expressions = [e for e in events if e.kind == "expression"]
    claimed: set[int] = set()
    cued = 0
    for seg in _segments():
        views = _views(stages, cfg, seg)
        mine = [i for i, e in enumerate(expressions)
                if seg["start"] <= e.t <= seg["end"] and abs(e.x - seg["x"]) < X_TOL]
        claimed.update(mine)
        assert len(mine) <= 1, f"segment at {seg['start']} s: one face, several cues {mine}"
        clear = {lb for lb, _ in views
                 if sum(v == lb and p >= thresholds[lb] + BAND for v, p in views) >= CLEAR_SHARE * len(views)}
        if clear:
            (label,) = clear
            assert len(mine) == 1, f"{seg['photo']} at {seg['start']} s: model holds {label}, no cue ({views})"
            e = expressions[mine[0]]
            assert e.label == label, f"segment at {seg['start']} s cued {e.label}, model holds {label}"
            assert e.t - seg["start"] <= ONSET_MAX_S
            cued += 1
        elif mine:
            e = expressions[mine[0]]
            backing = [p for v, p in views if v == e.label and p >= thresholds[e.label] - BAND]
            assert backing, f"segment at {seg['start']} s cued {e.label}, which the model never put on top near " \
                            f"its threshold {thresholds[e.label]:.2f} ({views})"
    # Nothing outside the face segments: every expression event belongs to one.
    assert claimed == set(range(len(expressions))), "expression events outside any face segment"
    # The clip is built from clear faces: most segments must produce a cue.
    assert cued >= len(_segments()) // 2, f"only {cued} segments held clearly and cued"


def test_faces_appear_and_are_lost_where_the_clip_says(demo_run: tuple) -> None:
    _, events, _ = demo_run
    segs = _segments()
    for e in events:
        if e.kind == "face_appeared":
            # Someone must be on screen at that place then.
            assert any(s["start"] <= e.t <= s["end"] and abs(e.x - s["x"]) < X_TOL for s in segs), e
    appeared = {e.track for e in events if e.kind == "face_appeared"}
    lost = {e.track for e in events if e.kind == "face_lost"}
    assert appeared and appeared == lost, "every announced face is reported lost by the end"


def _own_runtime_dir(tmp_path: Path) -> dict[str, str]:
    """A private XDG_RUNTIME_DIR, so a real service running for this user cannot interfere."""
    run_dir = tmp_path / "xdg-run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    return {**os.environ, "XDG_RUNTIME_DIR": str(run_dir)}


def test_cli_run_writes_jsonl_and_exits_zero(tmp_path: Path) -> None:
    out = tmp_path / "e.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "fer_audio", "-q", "run", "--source", str(DEMO_CLIP),
         "--events-out", str(out), "--no-audio", "--max-seconds", "8"],
        capture_output=True, text=True, timeout=120, env=_own_runtime_dir(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows, "no events written"
    for r in rows:
        assert {"t", "track", "kind", "label", "confidence", "x"} <= set(r)
        assert r["kind"] in {"expression", "face_appeared", "face_lost"}
        assert -1 <= r["x"] <= 1
    assert any(r["kind"] == "expression" for r in rows)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--source", "/no/such/video.mp4", "--no-audio"], "/no/such/video.mp4"),
        (["run", "--config", "/no/such/config.toml"], "/no/such/config.toml: no such file"),
        (["check-config", "/no/such/config.toml"], "no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "fer_audio", *args], capture_output=True, text=True,
                          timeout=60, env=_own_runtime_dir(tmp_path))
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_config_key_is_reported_with_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[smoothing]\ncooldown = 3\n")
    proc = subprocess.run([sys.executable, "-m", "fer_audio", "check-config", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"fer-audio: error: {cfg}: smoothing.cooldown: unknown key"
