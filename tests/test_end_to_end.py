"""The whole pipeline on the bundled demo clip: real video, real YuNet, the shipped model, real smoother.

The question here is whether the pipeline loses or invents information, not
how accurate the model is (that is measured by training.evaluate). So the
expected label of each face segment is the shipped model's own prediction on
that face, cropped the way the runtime crops it, from a frame in the middle of
the segment.
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


def _segments() -> list[dict]:
    return json.loads(DEMO_TIMELINE.read_text())["segments"]


def _frame_at(t: float) -> np.ndarray:
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, int(round(t * cap.get(cv2.CAP_PROP_FPS))))
    ok, frame = cap.read()
    cap.release()
    assert ok, f"cannot read the demo clip at {t} s"
    return frame


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


def _expected(stages: object, cfg: Config, seg: dict) -> tuple[str, float]:
    """The model's own top label and probability for this segment's face."""
    frame = _frame_at((seg["start"] + seg["end"]) / 2)
    # A full pass of its own: the run's detector may follow faces and holds the run's last boxes.
    boxes = make_detector(cfg.detector).detect(frame)
    h, w = frame.shape[:2]
    near = [b for b in boxes if abs((2 * b.cx / w - 1) - seg["x"]) < X_TOL]
    assert len(near) == 1, f"detector should see exactly one face at x={seg['x']} ({seg})"
    probs = stages.model.predict(frame, near)[0]  # type: ignore[attr-defined]
    k = int(np.argmax(probs))
    return stages.model.labels[k], float(probs[k])  # type: ignore[attr-defined]


def test_every_face_segment_gives_one_correct_cue_and_nothing_is_invented(demo_run: tuple) -> None:
    cfg, events, stages = demo_run
    thresholds = stages.smoother.enter_thresholds()  # per expression: the card's, unless the config says
    expressions = [e for e in events if e.kind == "expression"]
    claimed: set[int] = set()
    cued = 0
    for seg in _segments():
        label, p = _expected(stages, cfg, seg)
        enter = thresholds[label]
        mine = [i for i, e in enumerate(expressions)
                if seg["start"] <= e.t <= seg["end"] and abs(e.x - seg["x"]) < X_TOL]
        claimed.update(mine)
        if p >= enter + BAND:
            assert len(mine) == 1, f"{seg['label']} face at {seg['start']} s: expected one cue, got {mine}"
            e = expressions[mine[0]]
            assert e.label == label, f"segment at {seg['start']} s cued {e.label}, model says {label}"
            assert e.t - seg["start"] <= ONSET_MAX_S
            cued += 1
        elif p <= enter - BAND:
            assert not mine, f"segment at {seg['start']} s: model is unsure ({p:.2f}) but a cue was made"
        else:
            assert len(mine) <= 1
    # Nothing outside the face segments: every expression event belongs to one.
    assert claimed == set(range(len(expressions))), "expression events outside any face segment"
    # The clip is built from clear faces: most segments must produce a cue.
    assert cued >= len(_segments()) // 2


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
