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
               dropout: float = 0.3, blocks: int = 1, standardize: bool = False,
               name: str = "fer_resnet") -> keras.Model:
    """fer-audio's network: a small ResNet sized for training on 2 CPU cores.

    A 3×3 stem at 48×48, then pooling before each residual stage
    (24 → 12 → 6) of ``blocks`` basic blocks. Measured here: separable
    convolutions looked cheap on paper but trained at ~30 images/s on this
    CPU, against ~100 for this plain-convolution design. ``blocks=1`` is the
    shipped 1.2 M network (~0.1 GMAC per face); ``blocks=2`` is a half-width
    ResNet-18 layout (2.8 M, 3.1 ms per face through LiteRT float32 at
    batch 1, 1.1 ms int8).

    ``standardize`` divides each face by its own mean and spread before the
    first convolution (a LayerNormalization over the whole image, built in so
    it ships inside the .tflite): a dim or washed-out camera face then reaches
    the network on the same scale as FER-2013's bright ones. It runs in
    float32 even under a mixed-precision policy.
    """
    inputs = keras.Input(shape=input_shape, name="gray48")
    x = layers.Rescaling(1.0 / 255.0, dtype="float32")(inputs)
    if standardize:
        x = layers.LayerNormalization(axis=(1, 2, 3), epsilon=1e-5, center=False, scale=False,
                                      dtype="float32", name="per_face_standardize")(x)
    x = _conv_bn(x, widths[0])
    for w in widths[1:]:
        x = layers.MaxPooling2D(2)(x)
        for _ in range(blocks):
            x = _residual(x, w)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    # Logits in float32 whatever the compute policy: softmax and the loss need the range.
    logits = layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name=name)


def make_resnet18h(input_shape: tuple[int, int, int] = INPUT_SHAPE, num_classes: int = NUM_CLASSES) -> keras.Model:
    """Two blocks per stage and per-face standardisation: the capacity the 73% target needs."""
    return make_model(input_shape, num_classes, blocks=2, standardize=True, name="fer_resnet18h")


FACTORIES = {"seed": make_seed_model, "resnet": make_model, "resnet18h": make_resnet18h}
