"""Training code on tiny data: loaders for all three forms, model factories, metrics by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from training import data as fer_data
from training import metrics


def _tiny(n: int = 21, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    labels = np.arange(n) % 7
    usage = np.array([0] * (n - 6) + [1] * 3 + [2] * 3)
    return images, labels.astype(np.uint8), usage.astype(np.uint8)


def test_csv_loader_matches_written_rows(tmp_path: Path) -> None:
    images, labels, usage = _tiny()
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for img, lab, u in zip(images, labels, usage, strict=True):
            w.writerow([int(lab), " ".join(map(str, img.ravel())), fer_data.USAGES[u]])
    ds = fer_data.load(path)
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_array_equal(ds.usage, usage)
    assert len(ds.split("private")) == 3


def test_csv_loader_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2: bad row: 3 pixels"):
        fer_data.load(path)


def test_image_folder_loader(tmp_path: Path) -> None:
    import cv2

    images, labels, _ = _tiny(14)
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        sub = "train" if i < 7 else "test"
        prefix = {"train": "Training", "test": "PrivateTest" if i % 2 else "PublicTest"}[sub]
        folder = tmp_path / sub / fer_data.LABELS[lab]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{prefix}_{i}.png"), img)
    ds = fer_data.load(tmp_path)
    assert len(ds) == 14
    assert sorted(np.bincount(ds.usage, minlength=3).tolist()) == sorted([7, 3, 4])
    # PNG is lossless: every image comes back bit-exact under its label.
    for img, lab in zip(images, labels, strict=True):
        hits = [j for j in range(len(ds)) if np.array_equal(ds.images[j], img)]
        assert len(hits) == 1 and ds.labels[hits[0]] == lab


def test_npz_loader_and_splits(tmp_path: Path) -> None:
    images, labels, usage = _tiny()
    votes = np.zeros((len(labels), 10), np.uint8)
    np.savez(tmp_path / "d.npz", images=images, labels=labels, usage=usage, ferplus_votes=votes)
    ds = fer_data.load(tmp_path / "d.npz")
    assert len(ds.split("train")) == 15 and ds.split("public").ferplus_votes.shape == (3, 10)
    with pytest.raises(ValueError, match="unknown split"):
        ds.split("validation")


def test_ferplus_majority_and_soft_labels() -> None:
    votes = np.zeros((4, 10), np.uint8)
    votes[0, 1] = 8  # happiness -> happy (3)
    votes[0, 0] = 2
    votes[1, 4] = 5  # anger tie with sadness -> no majority
    votes[1, 3] = 5
    votes[2, 7] = 9  # contempt -> not a FER class
    votes[3, 9] = 10  # not a face
    np.testing.assert_array_equal(fer_data.ferplus_majority(votes), [3, -1, -1, -1])
    soft = fer_data.ferplus_soft_labels(votes)
    assert soft[0, 3] == pytest.approx(0.8) and soft[0, 6] == pytest.approx(0.2)
    assert soft[3].sum() == 0


def test_metrics_on_a_hand_made_case() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    cm = metrics.confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert metrics.accuracy(cm) == pytest.approx(4 / 6)
    np.testing.assert_allclose(metrics.per_class_recall(cm), [2 / 3, 1 / 2, 1])
    # precision: 1, 1/2, 1/2 ; f1: 0.8, 0.5, 2/3
    assert metrics.macro_f1(cm) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_ece_and_temperature() -> None:
    # Perfectly confident and always right: ECE 0. Confident and right half the time: ECE 0.5.
    probs = np.array([[1.0, 0.0]] * 4)
    assert metrics.expected_calibration_error(probs, np.zeros(4, int)) == pytest.approx(0.0)
    assert metrics.expected_calibration_error(probs, np.array([0, 1, 0, 1])) == pytest.approx(0.5)
    # Logits drawn from a model whose true temperature is 2: the fit must find about 2.
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 7))
    y = np.array([rng.choice(7, p=p) for p in metrics.softmax(logits, 2.0)])
    assert metrics.fit_temperature(logits, y) == pytest.approx(2.0, rel=0.1)


def test_seed_split_is_fixed_and_70_30() -> None:
    from training.train import seed_split

    ds = fer_data.FerData(*_tiny(100))
    a1, b1 = seed_split(ds)
    a2, b2 = seed_split(ds)
    np.testing.assert_array_equal(a1, a2)
    assert len(a1) == 70 and len(b1) == 30 and not set(a1) & set(b1)


def test_class_weights_lift_rare_classes_and_average_one() -> None:
    from training.train import class_weights

    labels = np.array([3] * 160 + [1] * 10 + [0] * 40)
    w = class_weights(labels)
    assert w[1] > w[0] > w[3]
    assert np.mean([w[int(c)] for c in labels]) == pytest.approx(1.0)


@pytest.mark.parametrize("arch", ["seed", "resnet", "resnet18h"])
def test_model_factories_build_and_run(arch: str) -> None:
    keras = pytest.importorskip("keras")
    from training.models import FACTORIES

    model = FACTORIES[arch]()
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype("float32")
    out = np.asarray(model(x, training=False))
    assert out.shape == (3, 7) and np.isfinite(out).all()
    assert model.count_params() < 5_000_000
    assert isinstance(model, keras.Model)


def test_augmentation_keeps_the_input_contract_and_is_seeded() -> None:
    from training.augment import augment_batch

    images, _, _ = _tiny(16)
    a = augment_batch(images, np.random.default_rng(5))
    b = augment_batch(images, np.random.default_rng(5))
    assert a.shape == (16, 48, 48, 1) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 255
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, augment_batch(images, np.random.default_rng(6)))


def test_augmentation_flip_mirrors_about_the_centre() -> None:
    from training.augment import random_affine

    # With no rotation, scale or shift, a flipped matrix must map x to 47 - x.
    rng = np.random.default_rng(0)
    seen_flip = False
    for _ in range(20):
        m = random_affine(rng, 48, max_shift=0.0, max_rot_deg=0.0, scale=(1.0, 1.0))
        x = m @ np.array([10.0, 20.0, 1.0])
        if m[0, 0] < 0:
            seen_flip = True
            np.testing.assert_allclose(x, [37.0, 20.0], atol=1e-9)
        else:
            np.testing.assert_allclose(x, [10.0, 20.0], atol=1e-9)
    assert seen_flip


def test_epochs_give_every_face_once_with_its_class_weight() -> None:
    pytest.importorskip("keras")
    from training.train import augmented_epoch, sample_weights

    images, labels, _ = _tiny(50)
    plain = augmented_epoch(images, 0, "none")
    assert plain.shape == (50, 48, 48, 1)
    np.testing.assert_array_equal(plain[..., 0], images)  # order kept: fit shuffles
    a0, a0_again, a1 = (augmented_epoch(images, e, "strong") for e in (0, 0, 1))
    assert a0.shape == (50, 48, 48, 1) and a0.dtype == np.float32
    np.testing.assert_array_equal(a0, a0_again)  # a resumed run sees the same epoch
    assert not np.array_equal(a0, a1)
    w = sample_weights(labels, {i: float(i + 1) for i in range(7)})
    assert w is not None
    np.testing.assert_allclose(w, labels + 1.0)
    assert sample_weights(labels, None) is None


def test_continued_run_histories_chain_into_one_curve(tmp_path: Path) -> None:
    from training.export import join_histories, write_history

    head = "epoch,accuracy,loss,val_accuracy,val_loss\n"
    (tmp_path / "a.csv").write_text(head + "0,0.2,1.9,0.17,1.8\n1,0.4,1.7,0.47,1.5\n2,0.5,1.5,0.52,1.4\n")
    (tmp_path / "b.csv").write_text(head + "0,0.55,1.4,0.50,1.5\n1,0.6,1.3,0.61,1.2\n")
    h, restarts = join_histories([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert h["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert restarts == [3]
    np.testing.assert_allclose(h["val_accuracy"], [0.17, 0.47, 0.52, 0.50, 0.61])
    write_history(h, tmp_path / "joined.csv")
    back, none = join_histories([tmp_path / "joined.csv"])
    assert none == []
    assert back.tolist() == h.tolist()
    # a phase that went on with the same schedule (--start-epoch 5) keeps its own numbers
    (tmp_path / "c.csv").write_text(head + "5,0.62,1.2,0.63,1.1\n6,0.63,1.2,0.64,1.1\n")
    h2, restarts2 = join_histories([tmp_path / "joined.csv", tmp_path / "c.csv"])
    assert h2["epoch"].tolist() == [0, 1, 2, 3, 4, 5, 6] and restarts2 == [5]
    alone, _ = join_histories([tmp_path / "c.csv"])
    assert alone["epoch"].tolist() == [5, 6]
    # the shipped epoch in that numbering: b's best (its epoch 2) is the joined epoch 5; c counts already
    from training.export import joined_best_epoch

    assert joined_best_epoch(tmp_path / "b.csv", restarts, 2) == 5
    assert joined_best_epoch(tmp_path / "c.csv", restarts2, 7) == 7
    assert joined_best_epoch(tmp_path / "a.csv", [], 3) == 3


def test_real_augmentation_keeps_the_contract_and_darkens_some_faces() -> None:
    from training.augment import augment_batch

    images = np.full((400, 48, 48), 160, np.uint8)
    a = augment_batch(images, np.random.default_rng(1), "real")
    np.testing.assert_array_equal(a, augment_batch(images, np.random.default_rng(1), "real"))
    assert a.shape == (400, 48, 48, 1) and a.min() >= 0 and a.max() <= 255
    # Brightness jitter alone moves a 160-grey face by at most 38 levels (erasing by ~5 more);
    # only the gamma step of "real" (about 22% of faces) takes it below 115.
    dark_real = int((a.reshape(400, -1).mean(1) < 115).sum())
    dark_strong = int((augment_batch(images, np.random.default_rng(1), "strong").reshape(400, -1).mean(1) < 115).sum())
    assert dark_strong == 0 and dark_real >= 40


def test_mix_batch_mixes_pixels_labels_and_weights_in_proportion() -> None:
    from training.augment import mix_batch

    n = 200
    x = np.zeros((n, 48, 48), np.float32)
    x[n // 2:] = 200.0
    y = np.zeros((n, 7), np.float32)
    y[: n // 2, 0] = 1
    y[n // 2:, 3] = 1
    w = np.where(np.arange(n) < n // 2, 1.0, 3.0).astype(np.float32)
    x0, y0 = x.copy(), y.copy()
    mix_batch(x, y, w, np.random.default_rng(0), p=0.5)
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
    changed = np.flatnonzero(np.abs(x - x0).reshape(n, -1).max(1) > 0)
    assert 40 <= len(changed) <= 110  # about half were mixed with a partner of the other kind
    for i in changed:
        # the share of class 3 equals the share of bright pixels, and the weight follows it
        share = float(x[i].mean() / 200.0)
        assert y[i, 3] == pytest.approx(share, abs=1e-5)
        assert w[i] == pytest.approx(1.0 + 2.0 * share, abs=1e-4)
    untouched = np.setdiff1d(np.arange(n), changed)
    np.testing.assert_array_equal(y[untouched].argmax(1), y0[untouched].argmax(1))


def test_epoch_arrays_repeat_exactly_for_a_resumed_epoch() -> None:
    pytest.importorskip("keras")
    from training.train import RECIPES, epoch_arrays

    images, labels, _ = _tiny(60)
    y = np.eye(7, dtype=np.float32)[labels]
    w = np.linspace(0.5, 2.0, 60).astype(np.float32)
    r = RECIPES["resnet18h"]
    a = epoch_arrays(images, y, w, 4, r)
    b = epoch_arrays(images, y, w, 4, r)
    c = epoch_arrays(images, y, w, 5, r)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    plain = epoch_arrays(images, y, w, 4, __import__("dataclasses").replace(r, mix=0.0, augment="none"))
    # unmixed, the epoch is a permutation of the faces with their own labels and weights
    order = [int(np.flatnonzero((images == img[..., 0]).all(axis=(1, 2)))[0]) for img in plain[0]]
    assert sorted(order) == list(range(60))
    np.testing.assert_array_equal(plain[1], y[order])
    np.testing.assert_array_equal(plain[2], w[order])


def test_weight_average_swaps_in_the_average_and_back() -> None:
    keras = pytest.importorskip("keras")
    from training.train import WeightAverage

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ema = WeightAverage(0.9, every=1)
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(64, 4)), rng.normal(size=(64, 3))
    start = [np.array(v) for v in model.get_weights()]
    model.fit(x, t, batch_size=8, epochs=2, verbose=0, callbacks=[ema])
    trained = [np.array(v) for v in model.get_weights()]
    ema.swap()
    averaged = model.get_weights()
    # the average lies between the start and the end, and differs from both
    assert not np.allclose(averaged[0], trained[0]) and not np.allclose(averaged[0], start[0])
    ema.swap()
    for u, v in zip(model.get_weights(), trained, strict=True):
        np.testing.assert_array_equal(u, v)
    state = ema.state()
    again = WeightAverage(0.9, every=1)
    again.set_model(model)
    again.load(state)
    again.swap()
    for u, v in zip(model.get_weights(), averaged, strict=True):
        np.testing.assert_array_equal(u, v)
    # going on from weights alone: the average starts as them, at full momentum
    fresh = WeightAverage(0.9, every=1)
    fresh.set_model(model)
    fresh.continue_from_model(1000)
    assert fresh.updates == 1000
    before = [np.array(v) for v in model.get_weights()]
    model.fit(x, t, batch_size=64, epochs=1, verbose=0, callbacks=[fresh])  # one step
    after = model.get_weights()
    fresh.swap()
    # 0.9 of the starting weights and 0.1 of the stepped ones (the warm-up would give far more)
    np.testing.assert_allclose(model.get_weights()[0], 0.9 * before[0] + 0.1 * after[0], rtol=1e-5, atol=1e-6)


def test_a_run_keeps_its_seed_and_will_not_resume_under_another(tmp_path: Path, capsys) -> None:
    """Two runs of one recipe differ only by --seed; resuming one with the other's seed is refused."""
    pytest.importorskip("keras")
    from training.train import main

    images, labels, usage = _tiny(40)
    np.savez(tmp_path / "d.npz", images=images, labels=labels, usage=usage)
    out = tmp_path / "run"
    common = ["--recipe", "resnet", "--data", str(tmp_path / "d.npz"), "--out", str(out), "--epochs", "1",
              "--verbose", "0"]
    assert main([*common, "--seed", "7"]) == 0
    meta = __import__("json").loads((out / "train_meta.json").read_text())
    assert meta["seed"] == 7 and meta["finished"] and meta["epochs"] == 1
    assert main([*common, "--seed", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"training.train: {out} was trained with --seed 7, not 8; resume with --seed 7 or use another --out"
    # the refused start touched nothing: the run is still the seed-7 run, one epoch done
    assert __import__("json").loads((out / "backup" / "state.json").read_text())["epochs_done"] == 1


def test_targets_blend_the_label_with_the_crowd_only_where_it_voted() -> None:
    pytest.importorskip("keras")
    from training.train import targets

    labels = np.array([4, 4, 3], np.uint8)
    votes = np.zeros((3, 10), np.uint8)
    votes[0, 3], votes[0, 0] = 6, 4  # FER+: sadness 6, neutral 4
    votes[1, 9] = 10  # not a face: no usable vote
    votes[2, 1] = 10  # happiness, agreeing with the label
    np.testing.assert_array_equal(targets(labels, votes, 0.0), np.eye(7, dtype=np.float32)[labels])
    y = targets(labels, votes, 0.5)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    assert y[0, 4] == pytest.approx(0.5 + 0.5 * 0.6) and y[0, 6] == pytest.approx(0.5 * 0.4)
    np.testing.assert_array_equal(y[1], np.eye(7, dtype=np.float32)[4])
    np.testing.assert_array_equal(y[2], np.eye(7, dtype=np.float32)[3])
    np.testing.assert_array_equal(targets(labels, None, 0.5), np.eye(7, dtype=np.float32)[labels])


def test_ferplus_targets_need_votes_in_the_data(tmp_path: Path, capsys) -> None:
    pytest.importorskip("keras")
    from training.train import main

    images, labels, usage = _tiny(40)
    np.savez(tmp_path / "d.npz", images=images, labels=labels, usage=usage)
    assert main(["--recipe", "resnet", "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "r"),
                 "--ferplus", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("training.train: --ferplus 0.5 needs FER+ votes, and ") and "has none" in err
    assert not (tmp_path / "r" / "backup").exists()


def test_a_lost_run_goes_on_with_its_schedule_from_the_weights_it_left(tmp_path: Path, capsys) -> None:
    """--init-from W --start-epoch N: the learning rate is where epoch N+1 of the same schedule has it."""
    pytest.importorskip("keras")
    from training.train import main

    images, labels, usage = _tiny(40)
    np.savez(tmp_path / "d.npz", images=images, labels=labels, usage=usage)
    common = ["--recipe", "resnet", "--data", str(tmp_path / "d.npz"), "--epochs", "3", "--warmup-epochs", "1",
              "--verbose", "0"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--init-from", str(tmp_path / "a" / "best_train.keras"),
                 "--start-epoch", "2"]) == 0
    a = np.atleast_1d(np.genfromtxt(tmp_path / "a" / "history.csv", delimiter=",", names=True))
    b = np.atleast_1d(np.genfromtxt(tmp_path / "b" / "history.csv", delimiter=",", names=True))
    assert a["epoch"].tolist() == [0, 1, 2] and b["epoch"].tolist() == [2]
    assert b["lr"][0] == pytest.approx(a["lr"][2], rel=1e-5) and b["lr"][0] < a["lr"][1]
    meta = __import__("json").loads((tmp_path / "b" / "train_meta.json").read_text())
    assert meta["start_epoch"] == 2 and meta["schedule_epochs"] == 3 and meta["epochs"] == 3
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "c"), "--start-epoch", "2"]) == 2
    assert capsys.readouterr().err.strip().endswith("--start-epoch needs --init-from (the weights to continue from)")
    assert main([*common, "--out", str(tmp_path / "c"), "--init-from", str(tmp_path / "a" / "best_train.keras"),
                 "--start-epoch", "3"]) == 2
    assert "outside the 3-epoch schedule" in capsys.readouterr().err


def test_the_export_ships_the_best_predictor_within_the_time_budget() -> None:
    from training.export import choose_predictor

    def c(acc: float, ms: float, passes: int) -> dict[str, float]:
        return {"public_accuracy": acc, "ms_per_face_batch1": ms, "passes": passes}

    one = {"single": c(0.692, 0.9, 1), "flip": c(0.701, 1.8, 2)}
    assert choose_predictor("auto", one) == "flip"
    assert choose_predictor("auto", {**one, "flip": c(0.692, 1.8, 2)}) == "single"  # a tie: fewer runs
    assert choose_predictor("single", one) == "single"
    two = {**one, "ensemble": c(0.712, 1.9, 2), "split": c(0.718, 1.9, 2), "ensemble-flip": c(0.722, 3.6, 4)}
    assert choose_predictor("auto", two) == "split"  # ensemble-flip is better, and over 3 ms per face
    assert choose_predictor("ensemble-flip", two) == "ensemble-flip"
    slow = {"single": c(0.692, 3.2, 1), "flip": c(0.701, 6.0, 2)}
    assert choose_predictor("auto", slow) == "single"  # nothing fits: one look of one network
    with pytest.raises(SystemExit, match="--predictor split needs --member"):
        choose_predictor("split", one)


def test_the_curve_is_brought_up_to_date_without_changing_what_shipped(tmp_path: Path) -> None:
    from training import card_tables
    from training.card import read_card
    from training.export import main

    run, models = tmp_path / "run", tmp_path / "models"
    run.mkdir(), models.mkdir()
    rows = [(0, 0.40), (1, 0.55), (2, 0.61), (3, 0.63), (4, 0.62)]  # shipped after epoch 2; epoch 4 is its best
    (run / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss,lr\n" + "".join(
        f"{e},0.5,1.0,{v},1.0,{0.1 * (4 - e) / 4}\n" for e, v in rows))
    (run / "train_meta.json").write_text(json.dumps({"finished": True, "best_epoch": 4, "best_val_accuracy": 0.63,
                                                     "peak_lr": 0.1}))
    card = {"name": "fer_x", "training": {"best_epoch": 2, "ema": 0.999, "finished": False,
                                          "curve": {"public_accuracy": [0.40, 0.55], "first_epoch": 1}},
            "files": {"tflite": {"sha256": "a"}}}
    (models / "card.json").write_text(json.dumps(card))
    assert main(["--run", str(run), "--data", "unused", "--out", str(models), "--curve-only"]) == 0
    after = read_card(models / "card.json")
    assert after["training"]["best_epoch"] == 2 and after["files"] == card["files"]  # what shipped is unchanged
    assert after["training"]["curve"]["public_accuracy"] == [0.40, 0.55, 0.61, 0.63, 0.62]
    assert after["training"]["run_after_ship"]["best_epoch"] == 4
    text = card_tables.curve(after)
    assert "40.0, **55.0** (epoch 2, shipped), 61.0, 63.0 (epoch 4, the run's best; did not ship), 62.0%" in text
    assert text.endswith("After epoch 5 the learning rate was 0% of its peak.")
    assert (models / "fer_x_history.csv").read_text().count("\n") == 6 and (models / "training_curves.png").exists()


def test_a_shipped_card_unpacks_into_the_phases_that_a_continued_run_joins(tmp_path: Path, capsys) -> None:
    from training.export import join_histories, joined_best_epoch, main

    models = tmp_path / "models"
    models.mkdir()
    head = "epoch,accuracy,loss,val_accuracy,val_loss\n"
    # shipped: a 3-epoch schedule, then a 2-epoch fine-tune whose epoch 2 (joined epoch 5) shipped
    (models / "fer_x_history.csv").write_text(head + "".join(
        f"{e},0.5,1.0,{v},1.0\n" for e, v in enumerate([0.40, 0.55, 0.61, 0.60, 0.64])))
    (models / "fer_x.keras").write_bytes(b"the shipped network")
    card = {"name": "fer_x", "files": {"keras": {"path": "fer_x.keras"}}, "training": {
        "epochs": 2, "start_epoch": 0, "best_epoch": 5, "best_epoch_of_this_phase": 2, "seed": 1,
        "curve": {"public_accuracy": [0.40, 0.55, 0.61, 0.60, 0.64]}, "history_note": "x",
        "earlier_phases": [{"epochs": 3, "start_epoch": 0, "best_epoch": 3, "seed": 1}]}}
    (models / "card.json").write_text(json.dumps(card))
    assert main(["--unpack-phases", str(models / "card.json"), "--out", str(tmp_path / "shipped")]) == 0
    p1, p2 = (tmp_path / "shipped" / f"phase{i}" for i in (1, 2))
    assert capsys.readouterr().out.split() == [str(p1), str(p2)]
    assert json.loads((p1 / "train_meta.json").read_text()) == card["training"]["earlier_phases"][0]
    meta2 = json.loads((p2 / "train_meta.json").read_text())
    assert meta2 == {"epochs": 2, "start_epoch": 0, "best_epoch": 2, "seed": 1}  # its own numbering, nothing joined
    # each log numbered as its phase numbered it; the last folder is the shipped model's run again
    assert (p2 / "history.csv").read_text().splitlines()[1].startswith("0,")
    assert (p2 / "model.keras").read_bytes() == b"the shipped network" and not (p1 / "model.keras").exists()
    h, restarts = join_histories([p1 / "history.csv", p2 / "history.csv"])
    assert h["epoch"].tolist() == list(range(5)) and joined_best_epoch(p2 / "history.csv", restarts, 2) == 5
    # a run that went on from the shipped weights (numbered from 0) joins after them, each restart kept
    (tmp_path / "ft.csv").write_text(head + "0,0.6,1.0,0.65,1.0\n1,0.6,1.0,0.66,1.0\n")
    h, restarts = join_histories([p1 / "history.csv", p2 / "history.csv", tmp_path / "ft.csv"])
    assert h["epoch"].tolist() == list(range(7)) and restarts == [3, 5]
    np.testing.assert_allclose(h["val_accuracy"], [0.40, 0.55, 0.61, 0.60, 0.64, 0.65, 0.66])
    assert joined_best_epoch(tmp_path / "ft.csv", restarts, 2) == 7
    # a card whose phases do not add up to its history is refused, naming the card
    card["training"]["earlier_phases"][0]["epochs"] = 4
    (models / "card.json").write_text(json.dumps(card))
    assert main(["--unpack-phases", str(models / "card.json"), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "card.json" in err and "do not add up to the 5 rows" in err
    assert not (tmp_path / "bad").exists()
    card["training"]["earlier_phases"][0]["epochs"] = 3
    (models / "card.json").write_text(json.dumps(card))
    (models / "fer_x.keras").unlink()
    assert main(["--unpack-phases", str(models / "card.json"), "--out", str(tmp_path / "bad")]) == 2
    assert "fer_x.keras is missing" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit):  # never into models/ by default
        main(["--unpack-phases", str(models / "card.json")])
    assert "needs --out" in capsys.readouterr().err and sorted(p.name for p in models.iterdir()) == [
        "card.json", "fer_x_history.csv"]


def _schedule_run(folder: Path, accuracies: list[float], seed: int, **meta: object) -> Path:
    """A run folder as training.train leaves it, with ``accuracies`` on PublicTest after each epoch."""
    folder.mkdir(parents=True)
    (folder / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss,lr\n" + "".join(
        f"{e},0.5,1.0,{v},1.0,{0.05 * (1 - e / 40)}\n" for e, v in enumerate(accuracies)))
    (folder / "train_meta.json").write_text(json.dumps({
        "recipe": "resnet18h", "seed": seed, "epochs": len(accuracies), "schedule_epochs": 40, "lr": 0.05,
        "peak_lr": 0.05, "finished": len(accuracies) == 40, "init_from": None, "start_epoch": 0,
        "precision": "float32", "command": f"python -m training.train --seed {seed}", **meta}))
    return folder


def test_every_schedule_of_the_recipe_is_kept_in_the_card_and_shown_with_its_plateau(tmp_path: Path, capsys) -> None:
    from training import card_tables
    from training.export import carry_over
    from training.schedules import main

    models = tmp_path / "models"
    models.mkdir()
    card = {"name": "fer_x", "training": {"recipe": "resnet18h", "seed": 1337, "best_epoch": 42}}
    (models / "card.json").write_text(json.dumps(card))
    # the shipped network's schedule: finished; its last 20 epochs rise 0.1 point an epoch from 66%, 3.15 over the best before
    first = [0.60 + 0.0025 * e for e in range(20)] + [0.66 + 0.001 * e for e in range(20)]
    s1 = _schedule_run(tmp_path / "s1", first, 1337)
    s2 = _schedule_run(tmp_path / "s2", [0.30, 0.45, 0.52], 2)
    assert main(["--run", str(s1), "--run", str(s2), "--card", str(models / "card.json")]) == 0
    assert "seed 2: 3 of 40 epochs, best PublicTest 52.00% at epoch 3 (still training)" in capsys.readouterr().out
    kept = json.loads((models / "card.json").read_text())
    assert kept["training"] == card["training"] and [s["seed"] for s in kept["schedules"]] == [1337, 2]
    assert kept["schedules"][1]["public_accuracy"] == [0.3, 0.45, 0.52] and (models / "schedules.png").stat().st_size
    table = card_tables.schedules(kept)
    assert "| 1337 | 40 (40) | 67.90% (40) | 66.0-67.9% | +3.15 points | 0: the schedule ended | the shipped " in table
    assert "| 2 | 3 (40), training | 52.00% (3) | — | — | 95% of its peak | no: still training |" in table
    assert "Seed 2, PublicTest after each epoch: 30.0, 45.0, 52.0%." in table and "Seed 1337," not in table

    # the second schedule goes on: recording it again replaces its entry, in its place
    (s2 / "history.csv").write_text((s2 / "history.csv").read_text() + "3,0.5,1.0,0.55,1.0,0.045\n")
    assert main(["--run", str(s2), "--card", str(models / "card.json"), "--no-plot"]) == 0
    again = json.loads((models / "card.json").read_text())
    assert [(s["seed"], s["epochs"]) for s in again["schedules"]] == [(1337, 40), (2, 4)]

    # what is not a whole schedule of the card's recipe is refused in one line, the card untouched
    before = (models / "card.json").read_text()
    bad = [_schedule_run(tmp_path / "ft", [0.7], 3, init_from="models/fer_x.keras"),
           _schedule_run(tmp_path / "other", [0.5], 4, recipe="resnet"),
           _schedule_run(tmp_path / "gap", [0.5, 0.6], 5)]
    (bad[2] / "history.csv").write_text("epoch,val_accuracy\n0,0.5\n2,0.6\n")
    for run, words in zip(bad, ["not from random weights", "the card's model was trained by 'resnet18h'",
                                "not 0, 1, 2 ... in order"], strict=True):
        assert main(["--run", str(s2), "--run", str(run), "--card", str(models / "card.json")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(run) in err and words in err
    assert main(["--run", str(tmp_path / "nowhere"), "--card", str(models / "card.json")]) == 2
    assert "no train_meta.json" in capsys.readouterr().err
    assert (models / "card.json").read_text() == before

    # a ship writes a new card: it keeps every schedule of its recipe, none of another's
    new = {"files": {"tflite": {"sha256": "new"}}, "training": {"recipe": "resnet18h"}}
    carry_over({**again, "schedules": [*again["schedules"], {"seed": 9, "recipe": "resnet"}]}, new)
    assert new["schedules"] == again["schedules"] and new["predecessors"][0]["name"] == "fer_x"


def test_compare_scores_each_candidate_three_ways_and_reads_a_runs_last_weight_average(tmp_path: Path, capsys) -> None:
    import keras

    from training.compare import load_network, main
    from training.models import FACTORIES

    # a run's saved state: the raw network and, beside it, the weight average that is scored
    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)
    (run / "train_meta.json").write_text(json.dumps({"arch": "resnet", "precision": "float32"}))
    net = FACTORIES["resnet"]()
    net.save(run / "backup" / "model.keras")
    average = [w + 0.5 for w in net.get_weights()]
    np.savez(run / "backup" / "ema.npz", updates=np.array(3), **{f"w{i}": w for i, w in enumerate(average)})
    last = load_network(f"{run}:last")
    for got, want in zip(last.get_weights(), average, strict=True):
        np.testing.assert_allclose(got, want)
    assert keras.config.dtype_policy().name == "float32"
    net.save(run / "best_train.keras")  # the run folder alone names the epoch chosen on PublicTest
    np.testing.assert_allclose(load_network(str(run)).get_weights()[0], net.get_weights()[0])

    # a data file whose PublicTest faces have FER+ votes; the mirror image of a face is another look
    images, labels, usage = _tiny(40)
    votes = np.zeros((40, 10), np.uint8)
    to_ferplus = {fer: fp for fp, fer in fer_data._FERPLUS_TO_FER.items()}
    votes[np.arange(40), [to_ferplus[int(c)] for c in labels]] = 8  # the crowd agrees with the label
    np.savez(tmp_path / "fer.npz", images=images, labels=labels, usage=usage, ferplus_votes=votes)
    assert main([str(run), f"{run}:last", "--data", str(tmp_path / "fer.npz"), "--average", "0.5"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| candidate | PublicTest, FER-2013 label | PublicTest, FER+ majority | real photos")
    assert len(table) == 2 + 4 + 2 and table[-1].startswith("| average, 0.5 first: face to the first, mirror")
    for line in table[2:]:  # the crowd agrees with every label, so the two accuracies are one number
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == cells[2] and cells[3] == "—"
    assert main([str(run), "--data", str(tmp_path / "fer.npz"), "--average", "0.5"]) == 2
    assert "--average needs two candidates" in capsys.readouterr().err


def test_distilled_targets_blend_the_teachers_softened_prediction() -> None:
    pytest.importorskip("keras")
    from training.train import distilled

    y = np.eye(7, dtype=np.float32)[[0, 3]]
    logits = np.array([[2.0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1.0, 0, 0, 3.0]], np.float32)
    assert distilled(y, logits, 0.0, 2.0) is y and distilled(y, None, 0.5, 2.0) is y
    out = distilled(y, logits, 0.5, 2.0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    soft = metrics.softmax(logits.astype(np.float64), 2.0)
    np.testing.assert_allclose(out, 0.5 * y + 0.5 * soft, rtol=1e-6)
    # the second face's teacher disagrees with its label: the target says both, the label first
    assert out[1].argmax() == 3 and out[1, 6] > 0.2 > out[1, 0]
    # a hotter temperature gives the classes the teacher ranks lower more of the target
    assert distilled(y, logits, 0.5, 4.0)[0, 0] < out[0, 0] < distilled(y, logits, 0.5, 1.0)[0, 0]


def test_a_student_is_taught_by_the_teachers_two_looks_and_resumes_only_with_them(tmp_path: Path, capsys) -> None:
    """--teacher T --distill W: the teachers' logits (face and mirror, averaged) are kept in the
    run folder and named in train_meta; a resume with other teachers is refused in one line."""
    keras = pytest.importorskip("keras")
    from training.models import FACTORIES
    from training.train import main, teacher_logits

    images, labels, usage = _tiny(40)
    np.savez(tmp_path / "d.npz", images=images, labels=labels, usage=usage)
    keras.utils.set_random_seed(3)
    FACTORIES["resnet"]().save(tmp_path / "teacher.keras")
    spec = str(tmp_path / "teacher.keras")
    out = tmp_path / "student"
    common = ["--recipe", "resnet", "--data", str(tmp_path / "d.npz"), "--out", str(out), "--epochs", "1",
              "--verbose", "0"]

    assert main([*common, "--distill", "0.5"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "training.train: --distill W and --teacher SPEC go together")
    assert main([*common, "--teacher", str(tmp_path / "nobody.keras"), "--distill", "0.5"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"training.train: --teacher {tmp_path / 'nobody.keras'}: {tmp_path / 'nobody.keras'} does not exist")
    assert not (out / "backup").exists()

    assert main([*common, "--teacher", spec, "--distill", "0.5"]) == 0
    train_faces = images[usage == 0]
    teacher = keras.models.load_model(spec)
    by_hand = (np.asarray(teacher(train_faces[..., None].astype(np.float32), training=False))
               + np.asarray(teacher(train_faces[:, :, ::-1, None].astype(np.float32), training=False))) / 2
    with np.load(out / "teacher.npz") as z:
        np.testing.assert_allclose(z["logits"], by_hand, rtol=1e-4, atol=1e-4)
        assert z["specs"].tolist() == [spec]
    np.testing.assert_allclose(teacher_logits([spec], train_faces), by_hand, rtol=1e-4, atol=1e-4)
    meta = json.loads((out / "train_meta.json").read_text())
    assert meta["distill"] == 0.5 and meta["distill_temperature"] == 2.0 and meta["teachers"]["specs"] == [spec]
    assert meta["teachers"]["train_accuracy"] == pytest.approx(
        float((by_hand.argmax(axis=1) == labels[usage == 0]).mean()))
    assert keras.config.dtype_policy().name == "float32"

    capsys.readouterr()
    assert main([*common, "--epochs", "2"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"training.train: {out} was taught by [{spec!r}], not none; "
        "resume with the same --teacher list or use another --out")
    assert json.loads((out / "backup" / "state.json").read_text())["epochs_done"] == 1
    # and a distilled run is not one of the recipe's schedules
    from training.schedules import ScheduleError, record
    with pytest.raises(ScheduleError, match="a student of other networks"):
        record(out, "resnet")
