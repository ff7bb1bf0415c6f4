"""The small public API: read_faces / FaceReader give per-face boxes and probabilities, and the pipeline uses them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fer_audio
from fer_audio.config import Config

FACES = Path(__file__).resolve().parent / "fixtures" / "faces"


def test_every_public_name_resolves() -> None:
    for name in fer_audio.__all__:
        assert getattr(fer_audio, name) is not None, name
    assert set(fer_audio.__all__) <= set(dir(fer_audio))
    with pytest.raises(AttributeError):
        _ = fer_audio.no_such_name  # type: ignore[attr-defined]


def test_importing_the_package_loads_nothing_heavy() -> None:
    code = ("import sys, fer_audio; heavy = [m for m in ('cv2', 'numpy', 'sounddevice', 'ai_edge_litert') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_read_faces_gives_each_photo_its_face_box_and_probabilities() -> None:
    cfg = Config()
    frames = list(fer_audio.read_faces(FACES, cfg))
    photos = sorted(p for p in FACES.iterdir() if p.suffix in (".jpg", ".png"))
    assert len(frames) == len(photos)
    assert [f.t for f in frames] == sorted(f.t for f in frames)
    with_a_face = [f for f in frames if f.faces]
    assert len(with_a_face) >= len(photos) - 1  # obama_partial_face may or may not be found
    for frame in with_a_face:
        for face in frame.faces:
            assert face.labels == fer_audio.LABELS
            assert face.probs.shape == (len(fer_audio.LABELS),)
            assert np.isclose(float(face.probs.sum()), 1.0, atol=1e-4)
            assert face.label == fer_audio.LABELS[int(np.argmax(face.probs))]
            assert 0.0 < face.confidence <= 1.0
            assert face.box.w > 20 and face.box.h > 20
            assert -1.0 <= face.x <= 1.0


def test_face_reader_is_what_the_pipeline_runs() -> None:
    """The reader's probabilities for a frame are the observations the smoother gets."""
    import cv2

    from fer_audio.pipeline import Pipeline, build_stages
    from fer_audio.reader import FaceReader
    from fer_audio.resources import DEMO_CLIP

    cfg = Config()
    cfg = cfg.model_copy(update={"source": cfg.source.model_copy(update={"uri": str(DEMO_CLIP)}),
                                 "audio": cfg.audio.model_copy(update={"output": "silent"})})
    stages = build_stages(cfg)
    seen: list[list[np.ndarray]] = []
    step = stages.smoother.step

    def recording_step(t: float, obs: list) -> list:  # type: ignore[type-arg]
        seen.append([o.probs for o in obs])
        return step(t, obs)

    stages.smoother.step = recording_step  # type: ignore[method-assign]
    image = cv2.imread(str(FACES / "obama.jpg"))
    try:
        Pipeline(cfg, stages).process(image, 0.0)
        alone = FaceReader.from_config(cfg).read(image)
    finally:
        stages.source.close()
        stages.audio.close()
    assert len(seen) == 1 and len(seen[0]) == len(alone) == 1
    np.testing.assert_allclose(seen[0][0], alone[0].probs, rtol=1e-5, atol=1e-6)
