"""Freezing and unfreezing MobileNet by blocks, differential learning rates, saving (04-05).

MobileNet V1 is a stem (block 0: ``conv1``) and 13 depthwise-separable blocks (``conv_dw_N``,
``conv_pw_N`` with their BatchNorm and ReLU, 1..13). Everything else a lesson does in plain Keras:
``layer.trainable``, ``model.compile``, ``keras.callbacks.EarlyStopping``.
"""

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
    """The MobileNet base nested in a head model, as notebook 04 builds it.

    That is a ``keras.applications.MobileNet(include_top=False)`` used as a layer of ``model``.
    """
    for layer in model.layers:
        if isinstance(layer, keras.Model) and any(block_of(sub.name) == 0 for sub in layer.layers):
            return layer
    raise TLCourseError(
        f"No MobileNet base inside model {model.name!r}: expected a nested "
        "keras.applications.MobileNet(include_top=False), as notebook 04 builds it."
    )


def count_params(variables) -> int:
    """Number of scalars in a list of variables."""
    return int(sum(np.prod(v.shape) for v in variables))


def unfreeze_from(base, block: int, train_bn: bool = False) -> int:
    """Make blocks ``block``..13 of a MobileNet base trainable and earlier ones frozen.

    BatchNorm layers stay frozen (inference mode, ImageNet's statistics) unless ``train_bn``;
    ``block=14`` freezes everything. Returns the base's trainable parameters. Recompile the model
    afterwards: Keras reads ``trainable`` when it compiles.
    """
    if not 0 <= block <= N_BLOCKS:
        raise ValueError(f"block must be 0..{N_BLOCKS} (14 = nothing unfrozen), got {block}")
    if not any(block_of(layer.name) == 0 for layer in base.layers):
        raise TLCourseError(
            f"{base.name!r} is not a MobileNet V1 base: pass find_base(model), the base inside it."
        )
    base.trainable = block < N_BLOCKS
    for layer in base.layers:
        b = block_of(layer.name)
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = b is not None and b >= block and (train_bn or not is_bn)
    return count_params(base.trainable_weights)


def unfreeze_table(base) -> dict[int, int]:
    """``{block: trainable base parameters when unfrozen from it}`` for blocks 0..14.

    The base is left as it was.
    """
    base_was_trainable = base.trainable
    layers_were_trainable = [layer.trainable for layer in base.layers]
    try:
        return {b: unfreeze_from(base, b) for b in range(N_BLOCKS + 1)}
    finally:
        base.trainable = base_was_trainable
        for layer, flag in zip(base.layers, layers_were_trainable):
            layer.trainable = flag


def layer_groups(model, base, n_groups: int = 3) -> list[tuple[str, list]]:
    """The trainable variables as ``[(name, variables), ...]``, earliest first.

    The unfrozen blocks come in ``n_groups`` contiguous groups, then the head (every trainable
    variable outside the base). Make the groups after unfreezing.
    """
    blocks = {}
    for layer in base.layers:
        if layer.trainable_weights:
            blocks.setdefault(block_of(layer.name), []).extend(layer.trainable_weights)
    groups = []
    if blocks:
        for chunk in np.array_split(sorted(blocks), min(n_groups, len(blocks))):
            name = f"blocks {chunk[0]}-{chunk[-1]}" if len(chunk) > 1 else f"block {chunk[0]}"
            groups.append((name, [v for b in chunk for v in blocks[b]]))
    in_base = {id(v) for v in base.weights}
    groups.append(("head", [v for v in model.trainable_weights if id(v) not in in_base]))
    return groups


class _PerVariableRate:
    """Mixin for a Keras optimizer: each variable's update uses ``learning_rate * its multiplier``.

    The rate enters every update linearly (SGD, momentum, Adam, RMSprop), so this is exactly one
    optimizer per group, in one object that ``fit`` drives as usual. It overrides only the public
    ``build`` and ``update_step`` of ``keras.optimizers.Optimizer``. ``update_step`` receives the
    Keras variable, or (TensorFlow backend) its ``value``: both find the variable's multiplier.
    """

    def __init__(self, *args, multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._multipliers = dict(multipliers or {})  # variable path -> multiplier
        self._scale_of = {}  # id of what update_step receives -> multiplier

    def build(self, var_list):
        if not self.built:
            missing = [v.path for v in var_list if v.path not in self._multipliers]
            if missing:
                raise TLCourseError(
                    f"{len(missing)} trainable variables have no learning-rate group "
                    f"(e.g. {missing[:3]}): make the groups after unfreezing."
                )
            for v in var_list:
                self._scale_of[id(v)] = self._scale_of[id(v.value)] = self._multipliers[v.path]
        return super().build(var_list)

    def update_step(self, gradient, variable, learning_rate):
        scale = self._scale_of[id(variable)]
        scaled = keras.ops.cast(learning_rate, variable.dtype) * scale
        return super().update_step(gradient, variable, scaled)


def differential_optimizer(
    groups, head_lr: float, factor: float, optimizer=keras.optimizers.Adam, **kwargs
):
    """One optimizer with one learning rate per layer group.

    With G groups (:func:`layer_groups`: earliest first, the head last) group g learns at
    ``head_lr / factor**(G-1-g)``. ``optimizer``: a Keras optimizer class; ``kwargs`` go to it.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1 (earlier groups learn slower), got {factor}")
    multipliers = {
        v.path: factor ** -(len(groups) - 1 - g)
        for g, (_, variables) in enumerate(groups)
        for v in variables
    }
    cls = type(f"Differential{optimizer.__name__}", (_PerVariableRate, optimizer), {})
    return cls(learning_rate=head_lr, multipliers=multipliers, **kwargs)


def save_model(model, path) -> None:
    """``model.save(path)`` that any plain Keras loads, the file appearing only once complete.

    A model trained with a course optimizer (:func:`differential_optimizer`) is recompiled with a
    stock Adam first: the weights are what matter.
    """
    if isinstance(getattr(model, "optimizer", None), _PerVariableRate):
        model.compile(optimizer="adam", loss=model.loss, metrics=["accuracy"])
    with atomic_write(path) as tmp:
        model.save(tmp)


def predictions(model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, outputs)`` of ``model`` over an unshuffled ``(images, labels)`` dataset."""
    labels, probs = [], []
    for images, y in dataset:
        probs.append(model.predict_on_batch(images))
        labels.append(np.asarray(y))
    return np.concatenate(labels), np.concatenate(probs)


def predict_array(model, x, batch_size: int = 64) -> np.ndarray:
    """``model.predict(x)`` over an array, one batch at a time.

    The same outputs; but ``model.predict`` first turns the whole array into one TensorFlow
    dataset (a copy of a few thousand photos costs about as much memory as the model's training),
    while this holds one batch at a time.
    """
    return np.concatenate(
        [model.predict_on_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )


def train_head(
    splits,
    img_size: int = 224,
    copies: int | None = None,
    C: float = 1.0,
    max_epochs: int = 300,
    patience: int = 20,
    seed: int = 42,
):
    """Notebook 04's model in one call, for notebooks that run without ``04_head.keras``.

    The frozen ImageNet MobileNet, and a softmax ``Dense`` head trained on the cached features of
    each training photo, its mirror image and ``copies`` augmented copies: L2 penalty
    ``1 / (2 C N)`` (the same model as ``LogisticRegression(C)``), Adam at 1e-3 on batches of 64,
    at most ``max_epochs`` epochs, stopped when the validation loss has not improved for
    ``patience`` epochs and the best epoch's weights restored. Assembled to take raw RGB photos
    (0-255).

    ``splits``: what :func:`tlcourse.flowers_splits` returns; ``img_size``: the photos' side;
    ``copies``: augmented copies per photo, default ``pick(full=4, fast=1)`` as in notebook 04.
    """
    from .config import pick, set_seed
    from .data import augmentation

    copies = pick(full=4, fast=1) if copies is None else copies
    set_seed(seed)
    folder = dict(image_size=(img_size, img_size), batch_size=32, shuffle=False, verbose=False)
    train = keras.utils.image_dataset_from_directory(splits.train_dir, **folder)
    val = keras.utils.image_dataset_from_directory(splits.val_dir, **folder)

    base = keras.applications.MobileNet(
        weights="imagenet", include_top=False, input_shape=(img_size, img_size, 3)
    )
    base.trainable = False
    photos = keras.Input((img_size, img_size, 3))
    x = base(keras.layers.Rescaling(1 / 127.5, offset=-1)(photos), training=False)
    features = keras.layers.GlobalAveragePooling2D()(x)
    extractor = keras.Model(photos, features)

    augment = augmentation(seed)
    views = [train, train.map(lambda images, labels: (keras.ops.flip(images, axis=2), labels))]
    views += [train.map(lambda images, labels: (augment(images, training=True), labels))] * copies
    labels_and_features = [predictions(extractor, view) for view in views]
    y = np.concatenate([labels for labels, _ in labels_and_features])
    X = np.concatenate([features for _, features in labels_and_features])
    y_val, X_val = predictions(extractor, val)

    n_classes = len(splits.class_names)
    penalty = keras.regularizers.L2(1 / (2 * C * len(X)))
    dense = keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=penalty)
    head = keras.Sequential([keras.Input((X.shape[1],)), dense])
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )
    head.fit(
        X,
        y,
        validation_data=(X_val, y_val),
        epochs=max_epochs,
        batch_size=64,
        callbacks=[stop],
        verbose=0,
    )

    outputs = keras.layers.Dense(n_classes, activation="softmax")(features)
    model = keras.Model(photos, outputs, name="mobilenet_new_head")
    model.layers[-1].set_weights(dense.get_weights())
    return model


# Training from scratch (notebook 03's recipe; notebook 07 reuses it)


def scratch_model(
    num_classes: int,
    img_size: int,
    alpha: float = 1.0,
    bn_momentum: float = 0.9,
    seed: int = 42,
    augment: bool = True,
):
    """Notebook 03's network: MobileNet with random weights, taking raw RGB photos (0-255).

    The course's augmentation (active only in training; ``augment=False`` leaves it out, for
    images that a flip or a turn would change, such as digits), MobileNet's scaling to [-1, 1], then
    ``keras.applications.MobileNet(weights=None, alpha=alpha)`` at ``img_size`` pixels with a
    ``num_classes``-way softmax. Its BatchNormalization layers average over about the last
    ``1 / (1 - bn_momentum)`` batches (Keras's default 0.99 lags behind weights that change fast).
    """
    from .data import augmentation

    inputs = keras.Input(shape=(img_size, img_size, 3))
    x = augmentation(seed)(inputs) if augment else inputs
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)
    mobilenet = keras.applications.MobileNet(
        weights=None, alpha=alpha, input_shape=(img_size, img_size, 3), classes=num_classes
    )
    for layer in mobilenet.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
    return keras.Model(inputs, mobilenet(x), name="mobilenet_from_scratch")


def scratch_callbacks(patience: int = 8):
    """Notebook 03's stopping rule, as Keras callbacks.

    The learning rate is cut to a third after ``patience // 2`` epochs without a lower validation
    loss, training stops after ``patience`` such epochs, and the weights of the epoch with the
    lowest validation loss are restored.
    """
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=1 / 3, patience=max(1, patience // 2), verbose=0
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True
        ),
    ]


def train_from_scratch(
    x,
    y=None,
    *,
    validation_data,
    num_classes: int,
    img_size: int,
    alpha: float = 1.0,
    max_epochs: int = 60,
    patience: int = 8,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    augment: bool = True,
    seed: int = 42,
):
    """Notebook 03's recipe in one call: :func:`scratch_model` trained by its stopping rule.

    ``fit`` with Adam at ``learning_rate`` for at most ``max_epochs`` epochs and
    :func:`scratch_callbacks`. ``x, y``: training photos (raw pixels) and labels as arrays, or
    ``x`` a dataset of batches (``y`` None); ``validation_data`` likewise. Returns
    ``(model, history, stop_reason)``, where ``stop_reason`` is "validation stopped improving" or
    "reached the epoch limit".
    """
    from .config import set_seed

    set_seed(seed)
    model = scratch_model(num_classes, img_size, alpha=alpha, seed=seed, augment=augment)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = scratch_callbacks(patience)
    history = model.fit(
        x,
        y,
        validation_data=validation_data,
        epochs=max_epochs,
        batch_size=None if y is None else batch_size,
        callbacks=callbacks,
        verbose=0,
    )
    stopped = callbacks[-1].stopped_epoch > 0
    reason = "validation stopped improving" if stopped else "reached the epoch limit"
    return model, history, reason
