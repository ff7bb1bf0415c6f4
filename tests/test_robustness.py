"""The robustness study's changes do what their names say, and the study runs through the runtime's code."""

from __future__ import annotations

import numpy as np
import pytest

from training import robustness as rb


def test_every_condition_keeps_the_face_contract(sample_faces: tuple) -> None:
    images, _ = sample_faces
    for name, change in rb.CONDITIONS.items():
        for norm in rb.CONTRAST.values():
            out = norm(change(images[0]))
            assert out.shape == (48, 48) and out.dtype == np.uint8, name


def test_darkening_and_dimming_lower_the_mean_and_the_spread(sample_faces: tuple) -> None:
    images, _ = sample_faces
    face = images[3]
    g2, g3, d = rb.gamma(2.0)(face), rb.gamma(3.0)(face), rb.dim(face)
    assert face.mean() > g2.mean() > g3.mean()
    assert abs(float(d.mean()) - 40.0) < 3 and d.std() < 0.4 * face.std()
    # Histogram equalisation undoes any monotonic brightness curve: the two darkened faces
    # equalise to nearly the same picture (ties merged by the gamma are all that differs).
    e2, e3 = rb.CONTRAST["equalised"](g2).astype(float), rb.CONTRAST["equalised"](g3).astype(float)
    assert np.corrcoef(e2.ravel(), e3.ravel())[0, 1] > 0.97


def test_roll_turns_about_the_centre() -> None:
    face = np.zeros((48, 48), np.uint8)
    face[20:28, 36:44] = 255  # a bright patch right of the centre
    turned = rb.roll(90.0)(face)  # counter-clockwise on screen: the patch goes to the top
    ys, xs = np.nonzero(turned > 128)
    assert ys.mean() < 14 and abs(xs.mean() - 23.5) < 2


def test_rolled_faces_through_the_detector_are_found_and_scored(sample_faces: tuple) -> None:
    from fer_audio.config import ModelConfig
    from fer_audio.emotion import load_model

    images, labels = sample_faces
    model = load_model(ModelConfig())
    r = rb.through_detector(model, images[:30], labels[:30].astype(np.int64), 20.0)
    assert r["detected"] >= 0.5
    for key in ("not levelled", "eyes levelled"):
        assert 0.0 <= r[key] <= 1.0
    # the shipped model is far better than chance (1/7) on these real faces, levelled or not
    assert r["eyes levelled"] > 0.3 and r["not levelled"] > 0.3
    assert rb.accuracy(model, images, labels.astype(np.int64)) == pytest.approx(
        float((model.predict_batch(images[..., None].astype(np.float32)).argmax(1) == labels).mean()))


def test_real_probe_scores_photos_resized_and_through_the_runtime(sample_faces: tuple, tmp_path) -> None:
    """realfaces96's format (96 px gray photos), made from the committed real faces."""
    import cv2

    from fer_audio.config import ModelConfig
    from fer_audio.emotion import load_model

    images, labels = sample_faces
    photos = np.stack([cv2.resize(f, (96, 96), interpolation=cv2.INTER_CUBIC) for f in images])
    path = tmp_path / "real.npz"
    np.savez(path, images=photos, labels=labels)
    model = load_model(ModelConfig())
    r = rb.real_probe(model, path)
    straight = np.stack([cv2.resize(f, (48, 48), interpolation=cv2.INTER_AREA) for f in photos])
    pred = model.predict_batch(straight[..., None].astype(np.float32)).argmax(1)
    assert r["n"] == 70 and r["accuracy"] == pytest.approx(float((pred == labels).mean()))
    assert r["recall"] == {}  # 10 per class: below the 50 photos a recall needs
    rt = r["through_runtime"]
    assert rt["detected"] >= 0.8 and rt["margin"] == model.card.crop_margin
    assert rt["accuracy"] > 0.3 and 0.3 < rt["resized_on_same"] <= 1.0
