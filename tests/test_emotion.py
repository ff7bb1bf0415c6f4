"""The shipped model through the runtime path, on 70 real PrivateTest faces committed as a fixture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_audio.config import ModelConfig
from fer_audio.emotion import ModelError, load_card, load_model
from fer_audio.preprocess import face_to_input, faces_to_batch
from fer_audio.resources import DEFAULT_CARD, LABELS
from fer_audio.types import Box


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return load_model(ModelConfig())


def test_card_contract() -> None:
    card = load_card(DEFAULT_CARD)
    assert card.labels == LABELS
    assert card.raw["input"]["shape"] == [None, 48, 48, 1]
    assert 0.05 <= card.temperature <= 20 and -0.3 <= card.crop_margin <= 1
    for kind in ("tflite", "keras"):
        assert card.file(kind).is_file()
        assert card.file(kind).stat().st_size < 20_000_000
    private = card.raw["metrics"]["private"]
    assert private["split"] == "PrivateTest" and private["n"] == 3589


def test_predicts_real_faces_with_the_card_labels(model, sample_faces) -> None:  # type: ignore[no-untyped-def]
    images, labels = sample_faces
    probs = model.predict_batch(images[..., None].astype(np.float32))
    assert probs.shape == (70, len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    acc = float((probs.argmax(axis=1) == labels).mean())
    # Chance is 1/7 (14%); a broken input contract (wrong scaling, transposed
    # image, wrong label order) lands near it. Any trained model is far above.
    assert acc >= 0.35, f"accuracy on 70 fixture faces is {acc:.2f}"


def test_batch_equals_one_by_one(model, sample_faces) -> None:  # type: ignore[no-untyped-def]
    images, _ = sample_faces
    x = images[:5, ..., None].astype(np.float32)
    batched = model.predict_batch(x)
    single = np.concatenate([model.predict_batch(x[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert model.predict_batch(np.zeros((0, 48, 48, 1), np.float32)).shape == (0, 7)


def test_keras_and_tflite_agree(model, sample_faces) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    images, _ = sample_faces
    x = images[..., None].astype(np.float32)
    keras_model = load_model(ModelConfig(backend="keras"))
    a, b = model.predict_batch(x), keras_model.predict_batch(x)
    export = load_card(DEFAULT_CARD).raw["export"]
    if export.get("shipped", "float32") == "float32":
        assert (a.argmax(1) == b.argmax(1)).all()
        np.testing.assert_allclose(a, b, atol=1e-3)
    else:
        # A quantised file is an approximation: it must agree with the trained model about as
        # well here as the export measured on all of PublicTest, and never be far off in probability.
        measured = export["variants"][export["shipped"]]["top1_agreement_with_keras_on_public"]
        agree = float((a.argmax(1) == b.argmax(1)).mean())
        assert agree >= min(measured, 1.0) - 0.05, f"top-1 agreement {agree:.3f} vs {measured:.3f} on PublicTest"
        assert float(np.abs(a - b).sum(axis=1).max()) / 2 < 0.35


def test_crop_of_a_face_in_a_frame_matches_the_face(sample_faces) -> None:  # type: ignore[no-untyped-def]
    images, _ = sample_faces
    face = images[0]
    frame = np.full((300, 400), 128, np.uint8)
    frame[100:196, 150:246] = np.kron(face, np.ones((2, 2), np.uint8))  # 2x upscaled at (150, 100)
    crop = face_to_input(frame, Box(150, 100, 96, 96), margin=0.0)
    assert np.abs(crop.astype(int) - face.astype(int)).mean() < 3
    # A box at the frame's corner pads by replicating the border instead of failing.
    corner = face_to_input(frame, Box(-20, -20, 60, 60), margin=0.2)
    assert corner.shape == (48, 48)
    batch = faces_to_batch(np.dstack([frame] * 3), [Box(150, 100, 96, 96)], 0.0)
    assert batch.shape == (1, 48, 48, 1) and batch.dtype == np.float32


def _copy_model(tmp_path: Path) -> Path:
    card = load_card(DEFAULT_CARD)
    for kind in ("tflite", "keras"):
        shutil.copy(card.file(kind), tmp_path / card.file(kind).name)
    shutil.copy(DEFAULT_CARD, tmp_path / "card.json")
    return tmp_path / "card.json"


def test_corrupt_model_is_refused_with_one_line(tmp_path: Path) -> None:
    card_path = _copy_model(tmp_path)
    tfl = load_card(card_path).file("tflite")
    data = bytearray(tfl.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tfl.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"sha256 .* does not match") as info:
        load_model(ModelConfig(card=card_path))
    assert "\n" not in str(info.value) and str(tfl) in str(info.value)


def test_bad_cards_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model card not found"):
        load_model(ModelConfig(card=tmp_path / "none.json"))
    bad = tmp_path / "card.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="unreadable model card"):
        load_card(bad)
    bad.write_text(json.dumps({"labels": [], "files": {}}))
    with pytest.raises(ModelError, match="labels"):
        load_card(bad)
    card_path = _copy_model(tmp_path / "m" if (tmp_path / "m").mkdir() is None else tmp_path)
    load_card(card_path).file("tflite").unlink()
    with pytest.raises(ModelError, match="model file not found"):
        load_model(ModelConfig(card=card_path))


@pytest.mark.dataset
def test_card_private_accuracy_is_reproduced(fer2013_npz: Path) -> None:
    """The card's PrivateTest numbers come back from the shipped .tflite (skips without the dataset)."""
    from training import data as fer_data
    from training.evaluate import load_logits_fn, predict_logits, report

    private = fer_data.load(fer2013_npz).split("private")
    card = load_card(DEFAULT_CARD)
    # The single model (the number the issue counts), and the predictor as the service runs it.
    checks = [(True, card.raw["metrics"]["private"])]
    if card.flip_average:
        checks.append((False, card.raw["metrics"]["predictor"]["private"]))
    for single, stated in checks:
        logits_fn, temperature, _ = load_logits_fn(DEFAULT_CARD, single=single)
        r = report(predict_logits(logits_fn, private.images), private.labels.astype(np.int64), temperature,
                   private.ferplus_votes)
        assert r["n"] == stated["n"] == 3589
        assert abs(r["accuracy"] - stated["accuracy"]) <= 0.001, (single, r["accuracy"])
        assert abs(r["ferplus_majority_accuracy"] - stated["ferplus_majority_accuracy"]) <= 0.001


def test_flip_average_is_the_mean_of_a_face_and_its_mirror_in_one_batch() -> None:
    from fer_audio.emotion import flip_averaged

    calls: list[int] = []

    def left_minus_right(batch: np.ndarray) -> np.ndarray:
        """Two logits that only a mirror swaps: the mean of the left half and of the right half."""
        calls.append(len(batch))
        return np.stack([batch[:, :, :24].mean(axis=(1, 2, 3)), batch[:, :, 24:].mean(axis=(1, 2, 3))], axis=1)

    x = np.zeros((3, 48, 48, 1), np.float32)
    x[:, :, :24] = 200.0  # bright left half
    out = flip_averaged(left_minus_right, x)
    assert calls == [6]  # the faces and their mirrors, in one call
    np.testing.assert_allclose(out, np.full((3, 2), 100.0))  # (200 + 0) / 2 for both halves
    np.testing.assert_allclose(left_minus_right(x), np.tile([200.0, 0.0], (3, 1)))


def test_a_flip_averaging_card_runs_the_mirror_too(tmp_path: Path, sample_faces) -> None:  # type: ignore[no-untyped-def]
    from fer_audio.emotion import flip_averaged, softmax

    card_path = _copy_model(tmp_path)
    raw = json.loads(card_path.read_text())
    raw["predictor"] = {"flip_average": True}
    card_path.write_text(json.dumps(raw))
    raw["predictor"] = {"flip_average": False}
    single_path = tmp_path / "single.json"
    single_path.write_text(json.dumps(raw))
    flipping, single = load_model(ModelConfig(card=card_path)), load_model(ModelConfig(card=single_path))
    assert flipping.card.flip_average and not single.card.flip_average
    x = sample_faces[0][:8, :, :, None].astype(np.float32)
    mirrored = single.predict_batch(x[:, :, ::-1])
    expected = softmax(flip_averaged(single.backend.logits, x), single.card.temperature)
    np.testing.assert_allclose(flipping.predict_batch(x), expected, atol=1e-5)
    assert not np.allclose(single.predict_batch(x), mirrored, atol=1e-3)  # the mirror is another look
    # A user who keeps the CPU gets one look per face from the same card.
    opted_out = load_model(ModelConfig(card=card_path, flip_average=False))
    assert not opted_out.card.flip_average
    np.testing.assert_allclose(opted_out.predict_batch(x), single.predict_batch(x), atol=1e-6)
    raw["predictor"] = {"flip_average": "yes"}
    single_path.write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="predictor.flip_average must be true or false"):
        load_card(single_path)


def test_evaluate_writes_the_predictor_beside_the_single_model(tmp_path: Path, sample_faces) -> None:  # type: ignore[no-untyped-def]
    from training import evaluate
    from training.card import read_card

    card_path = _copy_model(tmp_path)
    raw = json.loads(card_path.read_text())
    raw["predictor"] = {"flip_average": True}
    card_path.write_text(json.dumps(raw))
    images, labels = sample_faces
    data = tmp_path / "faces.npz"
    np.savez(data, images=images, labels=labels, usage=np.full(len(labels), 2))  # all PrivateTest
    common = ["--model", str(card_path), "--data", str(data), "--split", "private", "--write-card"]
    assert evaluate.main(common) == 0
    assert evaluate.main([*common, "--predictor"]) == 0
    m = read_card(card_path)["metrics"]
    single, flipped = m["private"], m["predictor"]["private"]
    assert single["n"] == flipped["n"] == 70
    assert single["predictor"] == "single model" and flipped["predictor"] == "card"
    assert "--predictor" in flipped["command"] and "--predictor" not in single["command"]
    assert single["ece"] != flipped["ece"]  # the probabilities differ: two looks, each measured


def test_predictor_logits_average_networks_and_can_split_the_views_between_them() -> None:
    from fer_audio.emotion import flip_averaged, predictor_logits

    seen: dict[str, list[float]] = {"a": [], "b": []}

    def net(name: str, gain: float):  # type: ignore[no-untyped-def]
        def logits(batch: np.ndarray) -> np.ndarray:
            """Logits (left-half mean, right-half mean) times a gain; records the left half it saw."""
            seen[name] += [float(v) for v in batch[:, :, :24].mean(axis=(1, 2, 3))]
            return gain * np.stack([batch[:, :, :24].mean(axis=(1, 2, 3)), batch[:, :, 24:].mean(axis=(1, 2, 3))], 1)
        return logits

    a, b = net("a", 1.0), net("b", 3.0)
    x = np.zeros((2, 48, 48, 1), np.float32)
    x[:, :, :24] = 100.0  # bright left half; the mirror has it on the right
    np.testing.assert_allclose(predictor_logits([a], x), [[100, 0]] * 2)
    np.testing.assert_allclose(predictor_logits([a, b], x), [[200, 0]] * 2)  # (100 + 300) / 2
    np.testing.assert_allclose(predictor_logits([a, b], x, flip=True), [[100, 100]] * 2)
    seen["a"].clear(), seen["b"].clear()
    # Split: a sees the faces, b only their mirror images; one look each.
    np.testing.assert_allclose(predictor_logits([a, b], x, flip=True, split=True), [[50, 150]] * 2)
    assert seen == {"a": [100.0, 100.0], "b": [0.0, 0.0]}
    # One network cannot split: it flip-averages.
    np.testing.assert_allclose(predictor_logits([a], x, flip=True, split=True), flip_averaged(a, x))


def test_a_card_with_member_networks_runs_them_all(tmp_path: Path, sample_faces) -> None:  # type: ignore[no-untyped-def]
    from fer_audio.emotion import describe

    card_path = _copy_model(tmp_path)
    raw = json.loads(card_path.read_text())
    # The shipped file named again as a member: the same network twice, so the averages are checkable.
    raw["predictor"] = {"flip_average": False, "members": [{"files": {"tflite": raw["files"]["tflite"]}}]}
    card_path.write_text(json.dumps(raw))
    single_path = tmp_path / "single.json"
    single_path.write_text(json.dumps({**raw, "predictor": {"flip_average": False}}))
    flip_path = tmp_path / "flip.json"
    flip_path.write_text(json.dumps({**raw, "predictor": {"flip_average": True}}))
    x = sample_faces[0][:8, :, :, None].astype(np.float32)
    single, flipped = load_model(ModelConfig(card=single_path)), load_model(ModelConfig(card=flip_path))
    pair = load_model(ModelConfig(card=card_path))
    assert len(pair.members) == 1 and pair.card.passes == 2 and describe(pair.card) == "2 networks averaged"
    np.testing.assert_allclose(pair.predict_batch(x), single.predict_batch(x), atol=1e-5)
    raw["predictor"].update(flip_average=True, split_views=True)
    card_path.write_text(json.dumps(raw))
    split = load_model(ModelConfig(card=card_path))
    assert split.card.passes == 2 and "shared between them" in describe(split.card)
    # The second network saw the mirror images: two identical networks split equal one flip-averaged.
    np.testing.assert_allclose(split.predict_batch(x), flipped.predict_batch(x), atol=1e-5)
    assert not np.allclose(split.predict_batch(x), single.predict_batch(x), atol=1e-3)
    # The user's CPU switches: without the ensemble, the first network alone, flip-averaged.
    alone = load_model(ModelConfig(card=card_path, ensemble=False))
    assert alone.members == () and alone.card.passes == 2
    np.testing.assert_allclose(alone.predict_batch(x), flipped.predict_batch(x), atol=1e-6)
    plain = load_model(ModelConfig(card=card_path, ensemble=False, flip_average=False))
    assert plain.card.passes == 1
    # The training tools measure the same predictor, and the single model is the first network.
    from fer_audio.emotion import softmax
    from training.evaluate import load_logits_fn

    fn, t, _ = load_logits_fn(card_path)
    np.testing.assert_allclose(softmax(fn(x), t), split.predict_batch(x), atol=1e-5)
    fn, t, _ = load_logits_fn(card_path, single=True)
    np.testing.assert_allclose(softmax(fn(x), t), single.predict_batch(x), atol=1e-5)


def test_bad_member_networks_are_refused_with_one_line(tmp_path: Path) -> None:
    card_path = _copy_model(tmp_path)
    raw = json.loads(card_path.read_text())
    member = tmp_path / "member.tflite"
    shutil.copy(load_card(card_path).file("tflite"), member)
    good = {"tflite": {"path": "member.tflite", "sha256": raw["files"]["tflite"]["sha256"]}}
    cases = [
        ({"members": {"files": good}}, "predictor.members must be a list of networks"),
        ({"members": [{"tflite": good["tflite"]}]}, r"predictor.members\[0\].files must map kind"),
        ({"members": [{"files": {"keras": good["tflite"]}}]}, r"predictor.members\[0\].files.tflite.path missing"),
        ({"split_views": True, "flip_average": True}, "split_views needs predictor.members"),
        ({"split_views": True, "members": [{"files": good}]}, "split_views needs predictor.members and flip_average"),
        ({"split_views": "yes"}, "predictor.split_views must be true or false"),
    ]
    for predictor, message in cases:
        card_path.write_text(json.dumps({**raw, "predictor": predictor}))
        with pytest.raises(ModelError, match=message) as info:
            load_model(ModelConfig(card=card_path))
        assert "\n" not in str(info.value)
    card_path.write_text(json.dumps({**raw, "predictor": {"members": [{"files": good}]}}))
    load_model(ModelConfig(card=card_path))  # the good member loads
    data = bytearray(member.read_bytes())
    data[len(data) // 2] ^= 0xFF
    member.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"member.tflite: sha256 .* does not match"):
        load_model(ModelConfig(card=card_path))
    member.unlink()
    with pytest.raises(ModelError, match=r"member.tflite: model file not found"):
        load_model(ModelConfig(card=card_path))
