"""Model factories. Each takes raw 0–255 gray pixels (N, 48, 48, 1) and returns logits.

Normalisation lives inside the model (a Rescaling layer), so the exported
file carries it and the runtime never repeats a constant. Augmentation is
kept out of the model: it belongs to the training input pipeline, so the
exported graph is inference-only.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

INPUT_SHAPE = (48, 48, 1)
NUM_CLASSES = 7


def make_seed_model(input_shape: tuple[int, int, int] = INPUT_SHAPE,
                    num_classes: int = NUM_CLASSES) -> keras.Model:
    """The original coursework network, kept as the baseline to beat.

    Conv32 → Conv64 → MaxPool → Dropout → Conv128 → MaxPool → Dropout →
    Flatten → Dense → Dropout → Dense(7). The hidden Dense is 256 wide (the
    coursework's width is not recorded) so the weights stay ~13 MB.
    """
    inputs = keras.Input(shape=input_shape, name="gray48")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Conv2D(128, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="seed_cnn")


def _conv_bn(x: Any, filters: int, kernel: int = 3, stride: int = 1) -> Any:
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def _residual(x: Any, filters: int) -> Any:
    """A basic ResNet block (two 3×3 convolutions), with a 1×1 projection when widening."""
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = layers.BatchNormalization()(layers.Conv2D(filters, 1, use_bias=False)(x))
    y = _conv_bn(x, filters)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    return layers.Activation("relu")(layers.Add()([y, shortcut]))


def make_model(input_shape: tuple[int, int, int] = INPUT_SHAPE,
               num_classes: int = NUM_CLASSES, widths: tuple[int, ...] = (32, 64, 128, 256),
               dropout: float = 0.3) -> keras.Model:
    """fer-audio's network: a small ResNet sized for training on 2 CPU cores.

    A 3×3 stem at 48×48, then pooling before each residual stage
    (24 → 12 → 6). Measured here: separable convolutions looked cheap on
    paper but trained at ~30 images/s on this CPU, against ~100 for this
    plain-convolution design; ~1.2 M parameters, ~0.1 GMAC per face.
    """
    inputs = keras.Input(shape=input_shape, name="gray48")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = _conv_bn(x, widths[0])
    for w in widths[1:]:
        x = layers.MaxPooling2D(2)(x)
        x = _residual(x, w)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="fer_resnet")


FACTORIES = {"seed": make_seed_model, "resnet": make_model}
