"""Train an expression classifier on FER-2013, keras-io style: read it top to bottom.

    python -m training.train --arch seed --data ../shared/data/fer2013.npz --epochs 4
    python -m training.train --arch resnet --data ../shared/data/fer2013.npz --epochs 40

Protocol (kept, and written into the model card by ``training.export``):
- ``--arch seed`` reproduces the coursework: 70/30 split of the Training rows
  (fixed seed) for train/validation, batch 64, Adam, plain cross-entropy.
- every other arch trains on all Training rows and is *chosen* on PublicTest
  (the best epoch by PublicTest accuracy is kept). PrivateTest is never read
  here; ``training.evaluate`` reads it once, at the end.

Interrupt at any time: ``BackupAndRestore`` resumes from the last finished
epoch when the same command is run again. The same file runs unchanged on
``KERAS_BACKEND=jax`` (a GPU machine) and TensorFlow (this CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from training import data as fer_data  # noqa: E402
from training.models import FACTORIES  # noqa: E402

SEED = 1337


# -- 1. Data -----------------------------------------------------------------

def seed_split(train: fer_data.FerData, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The coursework's 70/30 train/validation split of the Training rows (index arrays)."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(train))
    cut = int(round(0.7 * len(idx)))
    return np.sort(idx[:cut]), np.sort(idx[cut:])


def class_weights(labels: np.ndarray, power: float = 0.5) -> dict[int, float]:
    """Inverse-frequency weights softened by ``power`` (0.5 = square root).

    Full inverse frequency would weight a disgust face 16× a happy one and
    make the model shout "disgust"; the square root lifts the rare classes
    without wrecking calibration. Mean weight is 1.
    """
    counts = np.bincount(labels, minlength=len(fer_data.LABELS)).astype(np.float64)
    w = (counts.sum() / np.maximum(counts, 1)) ** power
    w = w / (w * counts).sum() * counts.sum()
    return {i: float(v) for i, v in enumerate(w)}


# -- 2. Augmentation -----------------------------------------------------------

def make_augmenter(strength: str = "strong") -> keras.Sequential | None:
    """Random geometry and photometry, active only in training.

    It wraps the model for ``fit`` and is not part of the exported network.
    Chosen on PublicTest: flip + shift/scale/rotation + contrast are the big
    wins on FER; erasing helps the longer runs resist over-fitting.
    """
    if strength == "none":
        return None
    aug = [
        layers.RandomFlip("horizontal", seed=SEED),
        layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=SEED + 1),
        layers.RandomRotation(0.05, fill_mode="nearest", seed=SEED + 2),
        layers.RandomZoom((-0.15, 0.15), fill_mode="nearest", seed=SEED + 3),
        layers.RandomContrast(0.3, value_range=(0, 255), seed=SEED + 4),
        layers.RandomBrightness(0.2, value_range=(0, 255), seed=SEED + 5),
    ]
    if strength == "strong":
        aug.append(layers.RandomErasing(factor=0.5, scale=(0.02, 0.15),
                                        value_range=(0, 255), seed=SEED + 6))
    return keras.Sequential(aug, name="augment")


# -- 3. Training -------------------------------------------------------------

def build_training_model(arch: str, augment: str) -> tuple[keras.Model, keras.Model]:
    net = FACTORIES[arch]()
    inputs = keras.Input(shape=net.input_shape[1:], name="gray48")
    augmenter = make_augmenter(augment)
    outputs = net(inputs if augmenter is None else augmenter(inputs))
    return keras.Model(inputs, outputs, name=f"train_{arch}"), net


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=sorted(FACTORIES), default="resnet")
    ap.add_argument("--data", required=True, help="fer2013.npz, fer2013.csv or an image-folder tree")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default runs/<arch>)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=None, help="default: 64 for seed, 128 otherwise")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate")
    ap.add_argument("--augment", choices=["none", "light", "strong"], default=None)
    ap.add_argument("--label-smoothing", type=float, default=None)
    ap.add_argument("--limit", type=int, default=0, help="use only N training rows (smoke tests)")
    ap.add_argument("--verbose", type=int, default=2 if not sys.stdout.isatty() else 1)
    args = ap.parse_args(argv)

    seed = args.arch == "seed"
    batch = args.batch or (64 if seed else 128)
    lr = args.lr or (1e-3 if seed else 3e-3)
    augment = args.augment or ("none" if seed else "strong")
    smoothing = args.label_smoothing if args.label_smoothing is not None else (0.0 if seed else 0.1)
    out = args.out or Path("runs") / args.arch
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(SEED)

    ds = fer_data.load(args.data)
    train = ds.split("train")
    if seed:
        tr_idx, va_idx = seed_split(train)
        x_tr, y_tr = train.images[tr_idx], train.labels[tr_idx]
        x_va, y_va = train.images[va_idx], train.labels[va_idx]
        val_name = "70/30 validation of Training"
    else:
        x_tr, y_tr = train.images, train.labels
        pub = ds.split("public")
        x_va, y_va = pub.images, pub.labels
        val_name = "PublicTest"
    if args.limit:
        x_tr, y_tr = x_tr[: args.limit], y_tr[: args.limit]
    x_tr = x_tr[..., None].astype("float32")
    x_va = x_va[..., None].astype("float32")
    n_cls = len(fer_data.LABELS)
    y_tr_1h = keras.utils.to_categorical(y_tr, n_cls)
    y_va_1h = keras.utils.to_categorical(y_va, n_cls)
    print(f"train {len(x_tr)} faces, validate on {val_name} ({len(x_va)} faces), "
          f"batch {batch}, peak lr {lr}, augment {augment}", flush=True)

    model, net = build_training_model(args.arch, augment)
    steps = int(np.ceil(len(x_tr) / batch)) * args.epochs
    if seed:
        optimizer: keras.optimizers.Optimizer = keras.optimizers.Adam(lr)
        weights = None
    else:
        # One warm-up epoch to the peak, then cosine to zero: the shape of
        # a one-cycle schedule, which gets the most out of a short budget.
        warm = int(np.ceil(len(x_tr) / batch))
        schedule = keras.optimizers.schedules.CosineDecay(
            lr / 10, decay_steps=max(steps - warm, 1), warmup_target=lr, warmup_steps=warm)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=5e-4)
        weights = class_weights(y_tr)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing),
        metrics=["accuracy"],
    )
    net.summary(print_fn=lambda s, **_: print(s, flush=True))

    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        keras.callbacks.ModelCheckpoint(str(out / "best_train.keras"), monitor="val_accuracy",
                                        save_best_only=True, mode="max"),
    ]
    t0 = time.time()
    model.fit(x_tr, y_tr_1h, batch_size=batch, epochs=args.epochs,
              validation_data=(x_va, y_va_1h), class_weight=weights,
              callbacks=callbacks, verbose=args.verbose, shuffle=True)
    elapsed = time.time() - t0

    # Keep the inference network only (no augmentation), from the best epoch.
    best = keras.models.load_model(out / "best_train.keras")
    best_net = best.get_layer(net.name)
    best_net.save(out / "model.keras")
    hist = np.genfromtxt(out / "history.csv", delimiter=",", names=True)
    hist = np.atleast_1d(hist)
    meta = {
        "arch": args.arch,
        "epochs": int(hist["epoch"].max()) + 1,
        "best_epoch": int(hist["epoch"][np.argmax(hist["val_accuracy"])]) + 1,
        "best_val_accuracy": float(np.max(hist["val_accuracy"])),
        "validation": val_name,
        "batch": batch, "peak_lr": lr, "augment": augment, "label_smoothing": smoothing,
        "class_weights": weights, "train_rows": len(x_tr), "seed": SEED,
        "seconds_this_invocation": round(elapsed, 1),
        "command": "python -m training.train " + " ".join(argv if argv is not None else sys.argv[1:]),
        "keras_backend": keras.backend.backend(),
    }
    (out / "train_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
