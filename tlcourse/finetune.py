"""Freezing, unfreezing and fine-tuning MobileNet (notebooks 04 and 05).

The lecture's four steps, and the helper for each:

1. freeze the base               ``base.trainable = False`` (:func:`fit_head` does it)
2. train the new head            :func:`build_head_model`, :func:`fit_head`
3. unfreeze later blocks         :func:`unfreeze_from` (:func:`unfreeze_table`,
                                 :func:`unfreeze_widget` show what that costs)
4. train base and head together  :func:`fine_tune`, with a very low learning
   at a very low learning rate   rate, optionally a *differential* one
                                 (:func:`layer_groups`, :func:`differential_optimizer`)

and "train until you overfit, then step back": :func:`best_epoch_early_stopping`.

**BatchNorm.** A BatchNormalization layer behaves differently in training
(normalise with the batch's own mean/variance and update its moving averages)
and in inference (use the moving averages learnt on ImageNet). Fine-tuning on a
few hundred flower photos must not overwrite ImageNet's statistics with those of
small, differently distributed batches: the features the head learnt on would
shift under it, and accuracy collapses for several epochs. So BN stays in
inference mode while the base is unfrozen, by two means:

- :func:`unfreeze_from` keeps every BN layer frozen (``trainable=False``, the
  default ``train_bn=False``). A frozen BN layer runs in inference mode whatever
  ``training`` it is called with (Keras rule since TF 2.0), and its scale and
  offset (gamma/beta) stay ImageNet's too. **This is the guard that holds in
  Keras 3**: ``model.fit`` calls the model with ``training=True`` and Keras 3
  passes that down *through* a ``base(x, training=False)`` written in the
  functional graph (keras-team/keras#20285; verified with Keras 3.15 in
  ``tests/test_finetune.py``), so ``training=False`` alone would let trainable
  BN layers train.
- :func:`build_head_model` still calls the base with ``training=False``, as
  the Keras transfer-learning guide does: it keeps BN in inference mode
  whenever the model is called without ``training=True`` (``model(x)``,
  ``predict``, ``evaluate``), and in tf.keras 2 it was the guard.

**Distribution.** Every training helper takes ``strategy=None`` (the active
``tf.distribute`` strategy): the model and its optimizer are created and
compiled under ``strategy.scope()`` and ``fit`` splits each batch across the
replicas, so ``tf.distribute.MirroredStrategy()`` over the GPUs of one node works
unchanged. Pass a *function that builds the model* to :func:`fit_head` so the
model's variables are created inside that scope.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import re  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from .fetch import TLCourseError  # noqa: E402

N_BLOCKS = 14
"""MobileNet V1 as 14 blocks: 0 is the stem (conv1), 1..13 the depthwise-separable blocks."""

_STEM = re.compile(r"^conv1(_bn|_relu|_pad)?$")
_BLOCK = re.compile(r"^conv_(?:pad|dw|pw)_(\d+)(?:_bn|_relu)?$")


# --------------------------------------------------------------------------
# Blocks, freezing, unfreezing
# --------------------------------------------------------------------------

def block_of(layer_name: str) -> int | None:
    """The MobileNet block a layer belongs to by its name (``conv_pw_7_bn`` -> 7), else None."""
    if _STEM.match(layer_name):
        return 0
    m = _BLOCK.match(layer_name)
    return int(m.group(1)) if m else None


def mobilenet_blocks(base) -> list[list]:
    """The layers of a MobileNet V1 base (``include_top=False``) in its 14 blocks.

    Block 0 is the stem (``conv1``, ``conv1_bn``, ``conv1_relu``, and
    ``conv1_pad`` where the Keras version has one); block N (1..13) is the
    depthwise-separable block ``conv_pad_N`` (only in strided blocks),
    ``conv_dw_N``, ``conv_dw_N_bn``, ``conv_dw_N_relu``, ``conv_pw_N``,
    ``conv_pw_N_bn``, ``conv_pw_N_relu``. The input layer belongs to no block.
    """
    blocks: list[list] = [[] for _ in range(N_BLOCKS)]
    strays = []
    for layer in base.layers:
        b = block_of(layer.name)
        if b is not None and b < N_BLOCKS:
            blocks[b].append(layer)
        elif layer.weights:
            strays.append(layer.name)
    if strays or any(not blk for blk in blocks):
        raise TLCourseError(
            f"{getattr(base, 'name', base)!r} does not look like a MobileNet V1 base "
            f"(keras.applications.MobileNet(include_top=False)): layers with weights outside "
            f"the 14 blocks: {strays[:5]}, empty blocks: "
            f"{[i for i, blk in enumerate(blocks) if not blk]}. Pass the MobileNet inside "
            "the model (finetune.find_base(model)), not the whole model."
        )
    return blocks


def find_base(model):
    """The MobileNet base nested inside a head model (e.g. one loaded from notebook 04's file)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and any(block_of(sub.name) == 0 for sub in layer.layers):
            return layer
    raise TLCourseError(
        f"No MobileNet base found inside model {model.name!r}: expected a nested "
        "keras.applications.MobileNet(include_top=False) as built by finetune.build_head_model."
    )


def count_params(variables) -> int:
    """Number of scalars in a list of variables (counted once each)."""
    seen, total = set(), 0
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            total += int(np.prod(v.shape))
    return total


def trainable_params(model) -> int:
    """Number of trainable parameters of a model or layer right now."""
    return count_params(model.trainable_weights)


def unfreeze_from(base, block: int, train_bn: bool = False) -> int:
    """Unfreeze blocks ``block``..13 of a MobileNet base, freeze the ones before.

    ``block=0`` unfreezes everything, ``block=14`` (:data:`N_BLOCKS`) nothing.
    BatchNorm layers stay frozen, hence in inference mode (see the module
    docstring). ``train_bn=True`` unfreezes them too, which in Keras 3 puts
    them in *training* mode during ``fit`` despite ``base(x, training=False)``:
    batch statistics, ImageNet's moving averages overwritten. It exists to
    demonstrate that mistake, not for use. Returns the number of trainable
    parameters of the base. Recompile the model afterwards: Keras reads
    ``trainable`` when it compiles.
    """
    if not 0 <= int(block) <= N_BLOCKS:
        raise ValueError(f"block must be 0..{N_BLOCKS} (14 = nothing unfrozen), got {block}")
    blocks = mobilenet_blocks(base)
    base.trainable = block < N_BLOCKS  # cascades to every layer; now refine per layer
    for b, layers in enumerate(blocks):
        for layer in layers:
            is_bn = isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = b >= block and (train_bn or not is_bn)
    return trainable_params(base)


def _trainable_state(base):
    return base.trainable, [layer.trainable for layer in base.layers]


def _restore_trainable_state(base, state):
    flag, flags = state
    base.trainable = flag
    for layer, f in zip(base.layers, flags):
        layer.trainable = f


def unfreeze_table(base, train_bn: bool = False) -> list[tuple[int, int]]:
    """``[(block, trainable params of the base if unfrozen from that block), ...]`` for 0..14.

    Leaves the base's current freezing as it was.
    """
    state = _trainable_state(base)
    try:
        return [(b, unfreeze_from(base, b, train_bn)) for b in range(N_BLOCKS + 1)]
    finally:
        _restore_trainable_state(base, state)


def describe_unfreeze(block: int, trainable: int, total: int) -> str:
    """One line: what unfreezing from ``block`` makes trainable."""
    if block >= N_BLOCKS:
        return f"block {block}: base fully frozen, 0 of {total:,} base parameters trainable (head only)"
    which = "all blocks (0-13)" if block == 0 else f"blocks {block}-13"
    return (f"block {block}: {which} unfrozen, {trainable:,} of {total:,} base parameters "
            f"trainable ({100.0 * trainable / total:.1f} %), plus the head")


def unfreeze_widget(base, value: int = 10, train_bn: bool = False):
    """A slider 0..14 "unfreeze from block" with the trainable/total count, live.

    The widget only *shows* the cost; it does not change the base. Read the
    choice with ``widget.slider.value`` and apply it with
    ``unfreeze_from(base, widget.slider.value)``.
    """
    import ipywidgets as widgets

    table = dict(unfreeze_table(base, train_bn))
    total = count_params(base.weights)
    slider = widgets.IntSlider(value=value, min=0, max=N_BLOCKS, step=1,
                               description="unfreeze from", continuous_update=True,
                               style={"description_width": "initial"})
    label = widgets.HTML()

    def update(change=None):
        label.value = describe_unfreeze(slider.value, table[slider.value], total)

    slider.observe(update, names="value")
    update()
    box = widgets.VBox([slider, label])
    box.slider = slider
    return box


# --------------------------------------------------------------------------
# The head model
# --------------------------------------------------------------------------

def build_head_model(base, num_classes: int, dropout: float = 0.2, augmentation=None,
                     image_size: int = 224, name: str = "mobilenet_transfer"):
    """A new head on a (frozen) base, exactly as in the Keras transfer-learning guide.

    Images come in as float pixels in [0, 255]; preprocessing lives inside
    the model, so the saved model takes raw photos::

        inputs = keras.Input(shape=(224, 224, 3))
        x = augmentation(inputs)                                  # optional
        x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)       # preprocess_input: [0, 255] -> [-1, 1]
        x = base(x, training=False)        # BN in inference mode (keep BN layers frozen
                                           # when unfreezing: see the module docstring)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dropout(0.2)(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs)

    (The guide: https://keras.io/guides/transfer_learning/, "The typical
    transfer-learning workflow" and "Fine-tuning".)
    """
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="preprocess")(x)  # as notebook 04 builds it
    x = base(x, training=False)  # with unfreeze_from keeping BN frozen: BN in inference mode
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="head_predictions")(x)
    return keras.Model(inputs, outputs, name=name)


# --------------------------------------------------------------------------
# Differential learning rates
# --------------------------------------------------------------------------

@dataclass
class LayerGroup:
    """Variables trained at one learning rate: some MobileNet blocks, or the head."""

    name: str
    blocks: list[int]
    variables: list = field(repr=False)

    @property
    def n_params(self) -> int:
        return count_params(self.variables)


def layer_groups(model, base, n_groups: int = 3) -> list[LayerGroup]:
    """The model's trainable variables in groups, earliest first, the head last.

    The *unfrozen* MobileNet blocks are split into ``n_groups`` contiguous
    groups of (nearly) equal numbers of blocks (fewer if fewer blocks are
    unfrozen); every other trainable variable of ``model`` (the new head) is
    the last group. So the result has ``n_groups + 1`` groups when at least
    ``n_groups`` blocks are unfrozen. Call it after :func:`unfreeze_from`.
    """
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    blocks = mobilenet_blocks(base)
    unfrozen = [b for b, layers in enumerate(blocks) if any(layer.trainable_weights for layer in layers)]
    chunks = np.array_split(np.array(unfrozen, dtype=int), min(n_groups, len(unfrozen))) if unfrozen else []
    groups = []
    for chunk in chunks:
        chunk = [int(b) for b in chunk]
        variables = [v for b in chunk for layer in blocks[b] for v in layer.trainable_weights]
        label = f"block {chunk[0]}" if len(chunk) == 1 else f"blocks {chunk[0]}-{chunk[-1]}"
        groups.append(LayerGroup(label, chunk, variables))
    in_base = {id(v) for v in base.weights}
    head = [v for v in model.trainable_weights if id(v) not in in_base]
    groups.append(LayerGroup("head", [], head))
    return groups


def group_learning_rates(n_groups: int, base_lr: float, factor: float) -> list[float]:
    """``base_lr / factor**(G-1-g)`` for g = 0..G-1: the last group (the head) gets ``base_lr``."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1 (earlier groups learn slower), got {factor}")
    return [base_lr / factor ** (n_groups - 1 - g) for g in range(n_groups)]


def lr_table(groups, base_lr: float, factor: float) -> list[tuple[str, int, float]]:
    """``[(group name, trainable parameters, learning rate), ...]`` for printing."""
    rates = group_learning_rates(len(groups), base_lr, factor)
    return [(g.name, g.n_params, lr) for g, lr in zip(groups, rates)]


def _var_path(variable) -> str:
    return getattr(variable, "path", None) or variable.name


class _LRMultipliers:
    """Mixin for a Keras 3 optimizer: one learning-rate multiplier per variable.

    ``lr_multipliers`` maps variable paths (``"conv_pw_12/kernel"``) to a
    factor; each variable's update is computed with ``learning_rate * factor``.
    For SGD (with or without momentum), Adam, RMSprop, ... the learning rate
    enters every variable's update linearly and the optimizer state is per
    variable, so this is *exactly* one optimizer per group with its own rate,
    in one optimizer object that ``model.compile``/``fit``/``save`` handle as
    usual (the multipliers are in its config). Weight decay (AdamW) is applied
    at the base learning rate. Every trainable variable must be in the map: a
    variable the groups do not cover is an error, not silently trained at the
    head's rate.
    """

    def __init__(self, *args, lr_multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._lr_multipliers = {str(k): float(v) for k, v in dict(lr_multipliers or {}).items()}
        self._lr_scales = ()

    @property
    def lr_multipliers(self) -> dict:
        return dict(self._lr_multipliers)

    def build(self, var_list):
        if not self.built:
            missing = [_var_path(v) for v in var_list if _var_path(v) not in self._lr_multipliers]
            if missing:
                raise TLCourseError(
                    f"{len(missing)} trainable variables have no learning-rate group, e.g. "
                    f"{missing[:4]}. Build the groups after unfreezing (finetune.layer_groups "
                    "after finetune.unfreeze_from), then create the optimizer and compile."
                )
            self._lr_scales = tuple(self._lr_multipliers[_var_path(v)] for v in var_list)
        return super().build(var_list)

    def update_step(self, gradient, variable, learning_rate):
        scale = self._lr_scales[self._get_variable_index(variable)]
        if scale != 1.0:
            learning_rate = keras.ops.cast(learning_rate, variable.dtype) * scale
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["lr_multipliers"] = dict(self._lr_multipliers)
        return config


@keras.saving.register_keras_serializable(package="tlcourse")
class DifferentialAdam(_LRMultipliers, keras.optimizers.Adam):
    """Adam with a learning-rate multiplier per variable (see :func:`differential_optimizer`)."""


@keras.saving.register_keras_serializable(package="tlcourse")
class DifferentialSGD(_LRMultipliers, keras.optimizers.SGD):
    """SGD with a learning-rate multiplier per variable (see :func:`differential_optimizer`)."""


@keras.saving.register_keras_serializable(package="tlcourse")
class DifferentialRMSprop(_LRMultipliers, keras.optimizers.RMSprop):
    """RMSprop with a learning-rate multiplier per variable (see :func:`differential_optimizer`)."""


_DIFFERENTIAL = {keras.optimizers.Adam: DifferentialAdam, keras.optimizers.SGD: DifferentialSGD,
                 keras.optimizers.RMSprop: DifferentialRMSprop}
_BY_NAME = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
            "rmsprop": keras.optimizers.RMSprop}


def differential_class(optimizer_class):
    """The per-variable-learning-rate version of a Keras optimizer class.

    Adam, SGD and RMSprop have fixed ones (loadable in a fresh kernel after
    ``import tlcourse.finetune``); another class gets one made and registered
    on first use (call this again before ``load_model`` in a new kernel).
    """
    if optimizer_class in _DIFFERENTIAL.values():
        return optimizer_class
    if optimizer_class not in _DIFFERENTIAL:
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, keras.optimizers.Optimizer)):
            raise TypeError(f"not a keras.optimizers.Optimizer subclass: {optimizer_class!r}")
        cls = type(f"Differential{optimizer_class.__name__}", (_LRMultipliers, optimizer_class),
                   {"__doc__": f"{optimizer_class.__name__} with per-variable learning-rate multipliers."})
        _DIFFERENTIAL[optimizer_class] = keras.saving.register_keras_serializable(package="tlcourse")(cls)
    return _DIFFERENTIAL[optimizer_class]


def _group_variables(group) -> list:
    if isinstance(group, LayerGroup):
        return list(group.variables)
    if isinstance(group, keras.layers.Layer):
        return list(group.weights)
    out = []
    for item in group:  # variables or layers
        out.extend(item.weights if isinstance(item, keras.layers.Layer) else [item])
    return out


def differential_optimizer(groups, base_lr: float, factor: float, optimizer="adam", **kwargs):
    """One optimizer, a learning rate per group: group g of G gets ``base_lr / factor**(G-1-g)``.

    ``groups``: earliest first, the head last, e.g. :func:`layer_groups` (or
    lists of variables or layers). ``factor``: how much slower each group
    learns than the next later one (3-10 in the lecture); the head learns at
    ``base_lr``. ``optimizer``: ``"adam"``, ``"sgd"``, ``"rmsprop"``, a Keras
    optimizer class, an optimizer instance (its settings are kept, its
    learning rate replaced by ``base_lr``), or a function ``lr -> optimizer``.
    Extra ``kwargs`` go to the optimizer (``momentum=0.9``, ``clipnorm=1.0``).

    Create it inside ``strategy.scope()`` when training distributed.
    """
    rates = group_learning_rates(len(groups), 1.0, factor)
    multipliers: dict[str, float] = {}
    for rate, group in zip(rates, groups):
        for v in _group_variables(group):
            path = _var_path(v)
            if path in multipliers and multipliers[path] != rate:
                raise TLCourseError(f"variable {path!r} is in two groups with different learning rates")
            multipliers[path] = rate

    if isinstance(optimizer, str):
        try:
            optimizer = _BY_NAME[optimizer.lower()]
        except KeyError:
            raise ValueError(f"optimizer {optimizer!r}: use one of {sorted(_BY_NAME)}, "
                             "a keras optimizer class, instance or factory") from None
    if isinstance(optimizer, type):
        return differential_class(optimizer)(learning_rate=float(base_lr), lr_multipliers=multipliers, **kwargs)
    if not isinstance(optimizer, keras.optimizers.Optimizer) and callable(optimizer):
        optimizer = optimizer(float(base_lr))
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(f"optimizer must be a name, class, instance or factory, got {optimizer!r}")
    config = optimizer.get_config()
    config.update(kwargs, learning_rate=float(base_lr), lr_multipliers=multipliers)
    config.pop("name", None)
    return differential_class(type(optimizer)).from_config(config)


# --------------------------------------------------------------------------
# Early stopping at the best epoch
# --------------------------------------------------------------------------

class BestEpochEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that always ends with the best epoch's weights, and says which epoch.

    ``EarlyStopping(restore_best_weights=True)`` in tf.keras 2 restored only
    when *it* stopped training: a run that reached its last epoch kept the
    last weights (keras-team/keras#12511). Keras 3.15 also restores at the
    end of training; this callback does so in every version (setting the best
    weights twice is harmless) and records ``best_epoch`` (0-based, like
    ``history.epoch``), ``best`` (the monitored value), ``stopped_epoch``
    (0 when it ran to the end) and ``values`` (``[(epoch, value), ...]``).
    """

    def __init__(self, monitor: str = "val_accuracy", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", start_from_epoch: int = 0, baseline=None, verbose: int = 1):
        super().__init__(monitor=monitor, patience=patience, min_delta=min_delta, mode=mode,
                         start_from_epoch=start_from_epoch, baseline=baseline, verbose=verbose,
                         restore_best_weights=True)
        self.values: list[tuple[int, float]] = []
        self.last_epoch: int | None = None
        self.restored_epoch: int | None = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.values, self.last_epoch, self.restored_epoch = [], None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None:
            self.values.append((int(epoch), float(value)))
        self.last_epoch = int(epoch)
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self.best_weights is not None:
            # Idempotent when Keras has already restored them; essential when it has not.
            self.model.set_weights(self.best_weights)
            self.restored_epoch = int(self.best_epoch)

    def report(self) -> str:
        """One sentence for the notebook: best epoch, value, and what was restored."""
        if self.restored_epoch is None:
            return (f"No {self.monitor} was logged (no validation data?): nothing restored, "
                    "the model keeps its last weights.")
        ran = self.last_epoch + 1
        how = (f"stopped early after epoch {self.stopped_epoch + 1}" if self.stopped_epoch
               else f"ran to the last epoch ({ran})")
        return (f"Best {self.monitor} = {self.best:.4f} at epoch {self.best_epoch + 1}; "
                f"training {how}; weights restored from epoch {self.restored_epoch + 1}.")


def best_epoch_early_stopping(patience: int = 3, monitor: str = "val_accuracy", min_delta: float = 0.0,
                              start_from_epoch: int = 0, verbose: int = 1) -> BestEpochEarlyStopping:
    """Validation-based early stopping that ends on the best epoch's weights ("step back").

    Stops when ``monitor`` has not improved for ``patience`` epochs and, in
    every case (stopped early or not), restores the weights of the best epoch;
    ``callback.best_epoch`` and ``callback.report()`` say which it was.
    """
    return BestEpochEarlyStopping(monitor=monitor, patience=patience, min_delta=min_delta,
                                  start_from_epoch=start_from_epoch, verbose=verbose)


# --------------------------------------------------------------------------
# Training helpers (any tf.distribute strategy)
# --------------------------------------------------------------------------

def _strategy(strategy):
    return strategy if strategy is not None else tf.distribute.get_strategy()


def _check_model_strategy(model, strategy) -> None:
    default = not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy()
    made_in = getattr(model, "_distribute_strategy", strategy)
    if not default and made_in is not strategy:
        raise TLCourseError(
            f"Model {model.name!r} was created outside {type(strategy).__name__}.scope(): its "
            "variables cannot be mirrored. Pass a function that builds the model "
            "(fit_head(lambda: build_head_model(...), ...)) or build it inside `with strategy.scope():`."
        )


def _fresh_optimizer(optimizer, learning_rate):
    if optimizer is None or isinstance(optimizer, str):
        cls = _BY_NAME[(optimizer or "adam").lower()]
        return cls(learning_rate=float(learning_rate))
    if isinstance(optimizer, keras.optimizers.Optimizer):
        if getattr(optimizer, "_distribution_strategy", None) in (None, tf.distribute.get_strategy()):
            return optimizer
        # Made under another strategy: re-create it here, in this scope, with its settings.
        return type(optimizer).from_config(optimizer.get_config())
    return optimizer()


def _fit(model, train_ds, val_ds, **kwargs):
    # A tf.data.Dataset shuffles itself (data.image_dataset does, every epoch): Keras 3 warns
    # that fit's default shuffle=True is ignored for one, on every call. Say so explicitly.
    if isinstance(train_ds, tf.data.Dataset):
        kwargs.setdefault("shuffle", False)
    return model.fit(train_ds, validation_data=val_ds, **kwargs)


def compile_classifier(model, optimizer="adam", learning_rate: float = 1e-3, strategy=None):
    """Compile for integer labels (sparse categorical cross-entropy, accuracy) under ``strategy.scope()``.

    ``optimizer``: a name (with ``learning_rate``), an optimizer instance, or a
    zero-argument function that returns one (called inside the scope).
    """
    strategy = _strategy(strategy)
    _check_model_strategy(model, strategy)
    with strategy.scope():
        model.compile(optimizer=_fresh_optimizer(optimizer, learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit_head(model_or_builder, train_ds, val_ds=None, *, epochs: int, learning_rate: float = 1e-3,
             optimizer="adam", callbacks=None, strategy=None, verbose="auto"):
    """Steps 1-2: freeze the base, train the new head. Returns ``(model, history)``.

    ``model_or_builder``: a head model (e.g. :func:`build_head_model`) or a
    zero-argument function that builds one; with a distribution strategy pass
    the function, so the model is created under ``strategy.scope()``. The
    MobileNet base inside (if any) is frozen before compiling.
    """
    strategy = _strategy(strategy)
    with strategy.scope():
        model = model_or_builder if isinstance(model_or_builder, keras.Model) else model_or_builder()
        try:
            find_base(model).trainable = False
        except TLCourseError:
            pass  # not a MobileNet head model: train it as it is
        compile_classifier(model, optimizer, learning_rate, strategy)
    history = _fit(model, train_ds, val_ds, epochs=epochs, callbacks=list(callbacks or []), verbose=verbose)
    return model, history


def fine_tune(model, train_ds, val_ds=None, *, epochs: int, from_block: int, learning_rate: float = 1e-5,
              factor: float | None = None, n_groups: int = 3, optimizer="adam", base=None,
              train_bn: bool = False, initial_epoch: int = 0, callbacks=None, strategy=None,
              verbose="auto"):
    """Steps 3-4: unfreeze from ``from_block``, train base and head at a low learning rate.

    ``learning_rate`` is the head's rate. With ``factor`` (e.g. 3-10) the
    unfrozen blocks are split into ``n_groups`` groups, each ``factor`` times
    slower than the next later one (:func:`layer_groups`,
    :func:`differential_optimizer`); without it everything trains at
    ``learning_rate``. Runs ``epochs`` more epochs, numbered from
    ``initial_epoch`` (pass ``len(head_history.epoch)`` to continue the head's
    curves). Returns the History; ``history.groups`` lists the learning-rate
    groups ``(name, params, lr)``.
    """
    strategy = _strategy(strategy)
    _check_model_strategy(model, strategy)
    base = base if base is not None else find_base(model)
    unfreeze_from(base, from_block, train_bn)
    with strategy.scope():
        if factor is None:
            opt = _fresh_optimizer(optimizer, learning_rate)
            table = [("all", trainable_params(model), float(learning_rate))]
        else:
            groups = layer_groups(model, base, n_groups)
            opt = differential_optimizer(groups, learning_rate, factor, optimizer)
            table = lr_table(groups, learning_rate, factor)
        compile_classifier(model, opt, strategy=strategy)
    history = _fit(model, train_ds, val_ds, epochs=initial_epoch + epochs, initial_epoch=initial_epoch,
                   callbacks=list(callbacks or []), verbose=verbose)
    history.groups = table
    return history
