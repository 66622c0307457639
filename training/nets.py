"""Named, configurable network builders. Each takes (input_shape, num_classes, **options).

``baseline``  the report's CNN: blocks of Conv2D-BatchNorm-ReLU, then MaxPool and Dropout,
              then a dense head.
``effnet``    an EfficientNet-like network for 48x48 grey faces: MBConv blocks (expand,
              depthwise conv, squeeze-and-excitation, project), swish, stochastic depth.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import keras
from keras import layers

from training.runs import Run

NETWORKS: dict[str, Callable[..., keras.Model]] = {}


def register(name: str) -> Callable:
    def wrap(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        NETWORKS[name] = builder
        return builder
    return wrap


def load(path: str | os.PathLike, compile: bool = True) -> keras.Model:
    """A .keras checkpoint of one of these networks (custom layers registered)."""
    return keras.models.load_model(path, custom_objects={"StochasticDepth": StochasticDepth}, compile=compile)


def run_classes(run: str | os.PathLike) -> tuple[str, ...]:
    """The class names a run folder was trained on, in output order (its recipe.json), in emofer's
    vocabulary (a FER+ run recorded before the rename says "happiness" for "happy")."""
    return Run(run).classes


def pick_classes(probabilities, classes: Sequence[str], wanted: Sequence[str], who: str = "model"):
    """Columns ``wanted`` of ``probabilities`` (over ``classes``), renormalised to sum to 1.

    Works on numpy arrays and on symbolic Keras tensors alike (keras.ops), so an ensemble graph
    and a teacher's training targets pick a 7-emotion model's five classes the same way.
    """
    missing = [c for c in wanted if c not in classes]
    if missing:
        raise ValueError(f"{who} has no classes {missing}; it was trained on {tuple(classes)}")
    picked = keras.ops.take(probabilities, [list(classes).index(c) for c in wanted], axis=1)
    return picked / keras.ops.sum(picked, axis=1, keepdims=True)


def build(name: str, input_shape: Sequence[int], num_classes: int, **options) -> keras.Model:
    """Build the network registered under ``name``."""
    if name not in NETWORKS:
        raise KeyError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[name](tuple(input_shape), num_classes, **options)


def _conv_bn_relu(x, width: int, strides: int, reg):
    x = layers.Conv2D(width, 3, strides=strides, padding="same", use_bias=False, kernel_regularizer=reg)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def _dense_bn_relu(x, width: int, reg):
    x = layers.Dense(width, use_bias=False, kernel_regularizer=reg)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


@register("baseline")
def baseline(input_shape: tuple[int, ...], num_classes: int, filters: Sequence[int] = (32, 64, 128, 256),
             convs_per_block: int = 2, dropout: float = 0.25, dense: int = 256,
             head_dropout: float = 0.5, l2: float = 1e-4) -> keras.Model:
    """Conv-BN-ReLU x convs_per_block, MaxPool, Dropout per block; GAP + Dense head."""
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(input_shape, name="input")
    x = inputs
    for width in filters:
        for _ in range(convs_per_block):
            x = _conv_bn_relu(x, width, 1, reg)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(dropout)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = _dense_bn_relu(x, dense, reg)
    x = layers.Dropout(head_dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="baseline")


class StochasticDepth(layers.Layer):
    """Drops the residual branch per sample with probability ``rate`` while training."""

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (keras.ops.shape(inputs)[0], 1, 1, 1)
        mask = keras.ops.floor(keep + keras.random.uniform(shape, seed=self.seed_generator))
        return inputs / keep * mask

    def build(self, input_shape):
        self.seed_generator = keras.random.SeedGenerator(1337)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


def _mbconv(x, out_width: int, expand: int, stride: int, se_ratio: float, drop: float, reg):
    in_width = x.shape[-1]
    shortcut = x
    if expand != 1:
        x = layers.Conv2D(in_width * expand, 1, use_bias=False, kernel_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("swish")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("swish")(x)
    if se_ratio:
        width = x.shape[-1]
        se = layers.GlobalAveragePooling2D(keepdims=True)(x)
        se = layers.Conv2D(max(4, int(in_width * se_ratio)), 1, activation="swish")(se)
        se = layers.Conv2D(width, 1, activation="sigmoid")(se)
        x = layers.Multiply()([x, se])
    x = layers.Conv2D(out_width, 1, use_bias=False, kernel_regularizer=reg)(x)
    x = layers.BatchNormalization()(x)
    if stride == 1 and in_width == out_width:
        if drop:
            x = StochasticDepth(drop)(x)
        x = layers.Add()([shortcut, x])
    return x


@register("effnet")
def effnet(input_shape: tuple[int, ...], num_classes: int,
           stages: Sequence[tuple[int, int, int, int]] = ((1, 24, 1, 1), (4, 40, 2, 2), (4, 80, 3, 2),
                                                          (4, 128, 3, 2), (4, 192, 2, 1)),
           stem: int = 32, head: int = 640, se_ratio: float = 0.25, drop_connect: float = 0.2,
           dropout: float = 0.3, l2: float = 1e-5) -> keras.Model:
    """EfficientNet-like: stages of (expand, width, repeats, first stride) MBConv blocks."""
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(input_shape, name="input")
    x = layers.Conv2D(stem, 3, padding="same", use_bias=False, kernel_regularizer=reg)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("swish")(x)
    total = sum(s[2] for s in stages)
    block = 0
    for expand, width, repeats, stride in stages:
        for i in range(repeats):
            x = _mbconv(x, width, expand, stride if i == 0 else 1, se_ratio,
                        drop_connect * block / total, reg)
            block += 1
    x = layers.Conv2D(head, 1, use_bias=False, kernel_regularizer=reg)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("swish")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="effnet")


def _separable(x, width: int, reg):
    x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False,
                               pointwise_regularizer=reg)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


@register("sepnet")
def sepnet(input_shape: tuple[int, ...], num_classes: int, stem: Sequence[int] = (32, 32),
           stages: Sequence[int] = (64, 128, 256), dense: int = 256, dropout: float = 0.1,
           head_dropout: float = 0.3, l2: float = 1e-5) -> keras.Model:
    """A small Xception-like network for a per-face budget of about a millisecond.

    Two plain 3x3 convolutions (the second with stride 2), then per stage two depthwise-
    separable convolutions and a max-pool, with a strided 1x1 shortcut; ReLU throughout (int8
    friendly: no sigmoid gates), then global average pooling and a small dense head.
    """
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(input_shape, name="input")
    x = inputs
    for i, width in enumerate(stem):
        x = _conv_bn_relu(x, width, 2 if i == len(stem) - 1 else 1, reg)
    for width in stages:
        shortcut = layers.Conv2D(width, 1, strides=2, use_bias=False, kernel_regularizer=reg)(x)
        shortcut = layers.BatchNormalization()(shortcut)
        x = _separable(x, width, reg)
        x = _separable(x, width, reg)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.Add()([shortcut, x])
        if dropout:
            x = layers.Dropout(dropout)(x)
    x = layers.GlobalAveragePooling2D()(x)
    if dense:
        x = _dense_bn_relu(x, dense, reg)
    x = layers.Dropout(head_dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="sepnet")
