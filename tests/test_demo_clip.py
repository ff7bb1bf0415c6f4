"""The bundled demo clip is built from the committed real photographs only (no FER-2013 image ships).

Rebuilding it with benchmarks/make_clips.py from tests/fixtures/faces must give the
committed timeline and, frame for frame, the committed video (within what a different
OpenCV build's mp4v encoder could change), so nobody can swap other faces in unseen.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from benchkit import load_benchmark

from fer_audio.resources import DEMO_CLIP, DEMO_TIMELINE

# Mean absolute difference per pixel between the committed frame and the rebuilt one. The same
# encoder gives 0; another OpenCV's mp4v at the same settings stays within a few levels, while
# a different face in a 200 px square moves a 640x480 frame's mean by far more than this.
MAX_MEAN_DIFF = 2.0



def _frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    assert ok, f"{path}: no frame {index}"
    return frame.astype(np.int16)


def test_the_bundled_demo_is_made_of_the_committed_photographs(tmp_path: Path) -> None:
    make_clips = load_benchmark("make_clips")
    committed = json.loads(DEMO_TIMELINE.read_text())
    photos = {s["photo"] for s in committed["segments"]}
    assert photos <= {p.name for p in make_clips.PHOTOS_DIR.iterdir()}, photos
    rebuilt_clip = make_clips.make_demo(out_dir=tmp_path)
    rebuilt = json.loads((tmp_path / "demo.json").read_text())
    assert rebuilt == committed
    fps = committed["fps"]
    for seg in committed["segments"]:
        index = int(round((seg["start"] + seg["end"]) / 2 * fps))
        diff = np.abs(_frame(DEMO_CLIP, index) - _frame(rebuilt_clip, index)).mean()
        assert diff <= MAX_MEAN_DIFF, f"{seg['photo']} at {seg['start']} s: frames differ by {diff:.1f} levels"
