"""Freezing and unfreezing MobileNet by blocks, differential learning rates, saving (04-05).

MobileNet V1 is a stem (block 0: ``conv1``) and 13 depthwise-separable blocks (``conv_dw_N``,
``conv_pw_N`` with their BatchNorm and ReLU); the rest a lesson writes in plain Keras."""
from __future__ import annotations

import re

import keras
import numpy as np

from .config import atomic_write
from .errors import TLCourseError

N_BLOCKS = 14
_STEM = re.compile(r"^conv1(_bn|_relu|_pad)?$")
_BLOCK = re.compile(r"^conv_(?:pad|dw|pw)_(\d+)(?:_bn|_relu)?$")


def block_of(layer_name: str) -> int | None:
    """The MobileNet block a layer belongs to, by name (``conv_pw_7_bn`` -> 7); else None."""
    if _STEM.match(layer_name):
        return 0
    m = _BLOCK.match(layer_name)
    return int(m.group(1)) if m else None


def find_base(model):
    """The MobileNet base nested in a head model (``keras.applications.MobileNet(include_top=False)``)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and any(block_of(sub.name) == 0 for sub in layer.layers):
            return layer
    raise TLCourseError(f"No MobileNet base inside model {model.name!r}: expected a nested "
                        "keras.applications.MobileNet(include_top=False), as notebook 04 builds it.")


def count_params(variables) -> int:
    """Number of scalars in a list of variables."""
    return int(sum(np.prod(v.shape) for v in variables))


def unfreeze_from(base, block: int, train_bn: bool = False) -> int:
    """Make blocks ``block``..13 of a MobileNet base trainable and earlier ones frozen; return
    the base's trainable parameters. BatchNorm layers stay frozen (inference mode, ImageNet's
    statistics) unless ``train_bn``. ``block=14`` freezes everything. Recompile afterwards."""
    if not 0 <= block <= N_BLOCKS:
        raise ValueError(f"block must be 0..{N_BLOCKS} (14 = nothing unfrozen), got {block}")
    if not any(block_of(layer.name) == 0 for layer in base.layers):
        raise TLCourseError(f"{base.name!r} is not a MobileNet V1 base: pass find_base(model).")
    base.trainable = block < N_BLOCKS
    for layer in base.layers:
        b = block_of(layer.name)
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = b is not None and b >= block and (train_bn or not is_bn)
    return count_params(base.trainable_weights)


def unfreeze_table(base) -> dict[int, int]:
    """``{block: trainable base parameters when unfrozen from it}`` for 0..14; leaves the base as it was."""
    state = base.trainable, [layer.trainable for layer in base.layers]
    try:
        return {b: unfreeze_from(base, b) for b in range(N_BLOCKS + 1)}
    finally:
        base.trainable = state[0]
        for layer, flag in zip(base.layers, state[1]):
            layer.trainable = flag


def layer_groups(model, base, n_groups: int = 3) -> list[tuple[str, list]]:
    """The trainable variables as ``[(name, variables), ...]``, earliest first: the unfrozen
    blocks in ``n_groups`` contiguous groups, then the head (everything outside the base)."""
    blocks = {}
    for layer in base.layers:
        if layer.trainable_weights:
            blocks.setdefault(block_of(layer.name), []).extend(layer.trainable_weights)
    chunks = np.array_split(sorted(blocks), min(n_groups, len(blocks))) if blocks else []
    groups = [(f"blocks {c[0]}-{c[-1]}" if len(c) > 1 else f"block {c[0]}",
               [v for b in c for v in blocks[b]]) for c in chunks]
    in_base = {id(v) for v in base.weights}
    groups.append(("head", [v for v in model.trainable_weights if id(v) not in in_base]))
    return groups


class _PerVariableRate:
    """Mixin for a Keras optimizer: each variable's update uses ``learning_rate * its multiplier``; the
    rate enters every update linearly (SGD, Adam, RMSprop), so this is exactly one optimizer per group."""

    def __init__(self, *args, multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._multipliers = dict(multipliers or {})
        self._scales = ()

    def build(self, var_list):
        if not self.built:
            if missing := [v.path for v in var_list if v.path not in self._multipliers]:
                raise TLCourseError(f"{len(missing)} trainable variables have no learning-rate group "
                                    f"(e.g. {missing[:3]}): make the groups after unfreezing.")
            self._scales = tuple(self._multipliers[v.path] for v in var_list)
        return super().build(var_list)

    def update_step(self, gradient, variable, learning_rate):
        scale = self._scales[self._get_variable_index(variable)]
        return super().update_step(gradient, variable, keras.ops.cast(learning_rate, variable.dtype) * scale)


def differential_optimizer(groups, head_lr: float, factor: float, optimizer=keras.optimizers.Adam,
                           **kwargs):
    """One optimizer, one learning rate per group: with G groups (earliest first, the head last)
    group g learns at ``head_lr / factor**(G-1-g)``. ``optimizer``: a Keras optimizer class."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1 (earlier groups learn slower), got {factor}")
    multipliers = {v.path: factor ** -(len(groups) - 1 - g)
                   for g, (_, variables) in enumerate(groups) for v in variables}
    cls = type(f"Differential{optimizer.__name__}", (_PerVariableRate, optimizer), {})
    return cls(learning_rate=head_lr, multipliers=multipliers, **kwargs)


def save_model(model, path) -> None:
    """``model.save(path)`` that plain Keras loads (a course optimizer is swapped for a stock Adam: the
    weights are what matter), the file appearing only once complete."""
    if isinstance(getattr(model, "optimizer", None), _PerVariableRate):
        model.compile(optimizer="adam", loss=model.loss, metrics=["accuracy"])
    with atomic_write(path) as tmp:
        model.save(tmp)


def predictions(model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, probabilities)`` of a model over an unshuffled ``(images, labels)`` dataset."""
    labels, probs = [], []
    for images, y in dataset:
        probs.append(model.predict_on_batch(images))
        labels.append(np.asarray(y))
    return np.concatenate(labels), np.concatenate(probs)


def train_head(splits, img_size: int = 224, copies: int | None = None, C: float = 1.0,
               max_epochs: int = 300, patience: int = 20, seed: int = 42):
    """Notebook 04's model (frozen MobileNet, softmax head trained on the cached features of each
    training photo, its mirror image and ``copies`` augmented copies, L2 matched to
    ``LogisticRegression(C)``), for notebooks that run without ``04_head.keras``; takes raw RGB photos.
    ``splits``: :func:`tlcourse.flowers_splits`'s; ``copies``: default ``pick(full=4, fast=1)``."""
    from .config import pick, set_seed
    from .data import augmentation

    copies = pick(full=4, fast=1) if copies is None else copies
    set_seed(seed)
    folder = dict(image_size=(img_size, img_size), batch_size=32, shuffle=False, verbose=False)
    train = keras.utils.image_dataset_from_directory(splits.train_dir, **folder)
    val = keras.utils.image_dataset_from_directory(splits.val_dir, **folder)
    base = keras.applications.MobileNet(weights="imagenet", include_top=False,
                                        input_shape=(img_size, img_size, 3))
    base.trainable = False
    photos = keras.Input((img_size, img_size, 3))
    x = base(keras.layers.Rescaling(1 / 127.5, offset=-1)(photos), training=False)
    features = keras.layers.GlobalAveragePooling2D()(x)
    extractor = keras.Model(photos, features)
    augment = augmentation(seed)
    views = [train, train.map(lambda im, lab: (keras.ops.flip(im, axis=2), lab))]
    views += [train.map(lambda im, lab: (augment(im, training=True), lab))] * copies
    y, X = (np.concatenate(parts) for parts in zip(*(predictions(extractor, v) for v in views)))
    y_val, X_val = predictions(extractor, val)
    n_classes = len(splits.class_names)
    dense = keras.layers.Dense(n_classes, activation="softmax",
                               kernel_regularizer=keras.regularizers.L2(1 / (2 * C * len(X))))
    head = keras.Sequential([keras.Input((X.shape[1],)), dense])
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    head.fit(X, y, validation_data=(X_val, y_val), epochs=max_epochs, batch_size=64, callbacks=[stop],
             verbose=0)
    model = keras.Model(photos, keras.layers.Dense(n_classes, activation="softmax")(features),
                        name="mobilenet_new_head")
    model.layers[-1].set_weights(dense.get_weights())
    return model
