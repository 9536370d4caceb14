"""Freezing/unfreezing, BatchNorm in inference mode, differential learning rates,
early stopping at the best epoch, and head training under a MirroredStrategy."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tlcourse import finetune  # noqa: E402
from tlcourse.config import set_seed  # noqa: E402
from tlcourse.fetch import TLCourseError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mobilenet224():
    """The real MobileNet V1 base (random weights: no download), for layer and count tests."""
    return keras.applications.MobileNet(weights=None, include_top=False, input_shape=(224, 224, 3))


def he_init(base, seed=0):
    """He-normal conv kernels. Keras's default init with untrained BatchNorm (mean 0, variance 1)
    shrinks MobileNet's activations to ~1e-18 after 27 layers: gradients vanish below float32
    resolution and no weight would visibly move."""
    rng = np.random.default_rng(seed)
    for layer in base.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            k = layer.kernel
            fan_in = np.prod(k.shape[:2]) * (1 if isinstance(layer, keras.layers.DepthwiseConv2D) else k.shape[2])
            k.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), k.shape).astype("float32"))
    return base


def small_mobilenet():
    """Same architecture and layer names, small enough to train a step in a test."""
    return he_init(keras.applications.MobileNet(weights=None, include_top=False, alpha=0.25,
                                                input_shape=(32, 32, 3)))


def snapshot(variables):
    return [np.array(v.numpy(), copy=True) for v in variables]


def is_bn(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


# ---------------------------------------------------------------- blocks ----

def test_mobilenet_blocks_cover_every_layer_by_name(mobilenet224):
    blocks = finetune.mobilenet_blocks(mobilenet224)
    assert len(blocks) == finetune.N_BLOCKS == 14
    names = [[layer.name for layer in blk] for blk in blocks]
    assert {"conv1", "conv1_bn", "conv1_relu"} <= set(names[0])
    assert names[1] == ["conv_dw_1", "conv_dw_1_bn", "conv_dw_1_relu",
                        "conv_pw_1", "conv_pw_1_bn", "conv_pw_1_relu"]
    assert names[2][0] == "conv_pad_2"  # strided blocks start with their padding
    assert names[13][-1] == "conv_pw_13_relu"
    # every weighted layer is in exactly one block: the blocks hold all parameters
    in_blocks = sum(finetune.count_params(layer.weights) for blk in blocks for layer in blk)
    assert in_blocks == mobilenet224.count_params() == 3_228_864


def test_mobilenet_blocks_refuses_the_whole_model(mobilenet224):
    model = finetune.build_head_model(mobilenet224, 5)
    with pytest.raises(TLCourseError, match="MobileNet V1 base"):
        finetune.mobilenet_blocks(model)
    assert finetune.find_base(model) is mobilenet224


# ------------------------------------------------------ freeze / unfreeze ----

def expected_trainable(base, block, train_bn):
    """Independent count: every weight a layer *could* train, in blocks >= block."""
    total = 0
    for layer in base.layers:
        b = finetune.block_of(layer.name)
        if b is None or b < block:
            continue
        if is_bn(layer):
            if train_bn:
                total += int(np.prod(layer.gamma.shape)) + int(np.prod(layer.beta.shape))
        else:
            total += finetune.count_params(layer.weights)
    return total


@pytest.mark.parametrize("block", [0, 1, 5, 10, 13, 14])
@pytest.mark.parametrize("train_bn", [False, True])
def test_unfreeze_from_counts_and_flags(mobilenet224, block, train_bn):
    base = mobilenet224
    n = finetune.unfreeze_from(base, block, train_bn=train_bn)
    assert n == expected_trainable(base, block, train_bn) == finetune.trainable_params(base)
    for layer in base.layers:
        b = finetune.block_of(layer.name)
        if b is None:
            continue
        should = b >= block and (train_bn or not is_bn(layer))
        assert layer.trainable is should, layer.name
        if is_bn(layer):  # moving statistics are never trainable
            assert all(v.path.endswith(("gamma", "beta")) for v in layer.trainable_weights)


def test_unfreeze_known_numbers_and_table(mobilenet224):
    base = mobilenet224
    assert finetune.unfreeze_from(base, 14) == 0
    assert base.trainable is False
    # block 13 alone: depthwise 3x3x1024 + pointwise 1024x1024 (BN frozen)
    assert finetune.unfreeze_from(base, 13) == 9 * 1024 + 1024 * 1024 == 1_057_792
    bn_params = sum(finetune.count_params(layer.weights) for layer in base.layers if is_bn(layer))
    assert finetune.unfreeze_from(base, 0) == base.count_params() - bn_params

    finetune.unfreeze_from(base, 7)
    before = [layer.trainable for layer in base.layers]
    table = finetune.unfreeze_table(base)
    assert [layer.trainable for layer in base.layers] == before  # the table leaves the base alone
    assert [b for b, _ in table] == list(range(15))
    counts = [n for _, n in table]
    assert counts == sorted(counts, reverse=True) and counts[-1] == 0
    assert table[13][1] == 1_057_792 and table[7][1] == expected_trainable(base, 7, False)


def test_unfreeze_rejects_bad_block(mobilenet224):
    with pytest.raises(ValueError, match="0..14"):
        finetune.unfreeze_from(mobilenet224, 15)


def test_unfreeze_widget_shows_counts_without_changing_the_base(mobilenet224):
    base = mobilenet224
    finetune.unfreeze_from(base, 14)
    widget = finetune.unfreeze_widget(base, value=10)
    assert (widget.slider.min, widget.slider.max, widget.slider.value) == (0, 14, 10)
    widget.slider.value = 13
    label = widget.children[1].value
    assert "1,057,792" in label and "3,228,864" in label
    assert finetune.trainable_params(base) == 0


# -------------------------------------------------------------- BatchNorm ----

def bn_model_and_batch(train_bn):
    set_seed(0)
    base = small_mobilenet()
    model = finetune.build_head_model(base, 3, dropout=0.0, image_size=32)
    finetune.unfreeze_from(base, 0, train_bn=train_bn)
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    bns = [layer for layer in base.layers if is_bn(layer)]
    return base, model, bns, x, np.arange(16) % 3


def bn_stats(bns):
    return snapshot([v for bn in bns for v in (bn.moving_mean, bn.moving_variance)])


def test_batchnorm_stays_in_inference_mode_when_unfrozen():
    base, model, bns, x, y = bn_model_and_batch(train_bn=False)
    assert finetune.trainable_params(base) > 0 and not any(bn.trainable for bn in bns)
    # inference mode: the forward pass in "training" is the same as in inference
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), rtol=1e-5, atol=1e-6)
    stats = bn_stats(bns)
    affine = snapshot([v for bn in bns for v in (bn.gamma, bn.beta)])
    kernels = [layer.kernel for layer in base.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    kernels_before = snapshot(kernels)

    finetune.compile_classifier(model, keras.optimizers.SGD(0.1))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)

    assert not any(np.array_equal(a, k.numpy()) for a, k in zip(kernels_before, kernels))  # it trained
    for a, b in zip(stats + affine, bn_stats(bns) + snapshot([v for bn in bns for v in (bn.gamma, bn.beta)])):
        np.testing.assert_array_equal(a, b)  # ImageNet statistics and scale/offset untouched


def test_why_batchnorm_stays_frozen_training_false_alone_does_not_hold_in_keras3():
    """Keras 3's fit passes training=True through ``base(x, training=False)`` (keras-team/keras#20285):
    a *trainable* BN layer then normalises with batch statistics and overwrites its moving averages.
    This is the behaviour unfreeze_from's default (BN frozen) protects against."""
    base, model, bns, x, y = bn_model_and_batch(train_bn=True)
    assert all(bn.trainable for bn in bns)
    assert not np.allclose(model(x, training=True), model(x, training=False), atol=1e-4)
    stats = bn_stats(bns)
    finetune.compile_classifier(model, keras.optimizers.SGD(0.1))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert not any(np.array_equal(a, b) for a, b in zip(stats, bn_stats(bns)))


# ------------------------------------------------- differential learning ----

def make_groups(n_groups, size=4):
    return [[keras.Variable(np.zeros(size, "float32"), name=f"g{g}_{i}") for i in range(2)]
            for g in range(n_groups)]


def one_step_updates(optimizer, groups, gradient=1.0):
    variables = [v for grp in groups for v in grp]
    optimizer.apply_gradients([(tf.fill(v.shape, gradient), v) for v in variables])
    return [[-v.numpy() for v in grp] for grp in groups]  # zeros - update


PLAIN = {"sgd": lambda lr: keras.optimizers.SGD(lr),
         "sgd+momentum": lambda lr: keras.optimizers.SGD(lr, momentum=0.9),
         "adam": lambda lr: keras.optimizers.Adam(lr),
         "rmsprop": lambda lr: keras.optimizers.RMSprop(lr),
         "adamax": lambda lr: keras.optimizers.Adamax(lr)}
AS_GIVEN = {"sgd": "sgd", "sgd+momentum": keras.optimizers.SGD(momentum=0.9), "adam": "adam",
            "rmsprop": "rmsprop", "adamax": keras.optimizers.Adamax}  # name, instance or class


@pytest.mark.parametrize("factor", [3.0, 10.0])
@pytest.mark.parametrize("kind", list(PLAIN))
def test_each_group_update_has_the_requested_ratio(kind, factor):
    base_lr, G = 0.01, 4
    groups = make_groups(G)
    opt = finetune.differential_optimizer(groups, base_lr, factor, optimizer=AS_GIVEN[kind])
    updates = one_step_updates(opt, groups)  # gradient of all ones
    mean = [float(np.mean(u)) for u in updates]
    for g in range(G):
        lr_g = base_lr / factor ** (G - 1 - g)
        # exactly what a separate optimizer of this kind at lr_g does to this group
        reference = one_step_updates(PLAIN[kind](lr_g), make_groups(1))[0]
        for u, r in zip(updates[g], reference):
            np.testing.assert_allclose(u, r, rtol=1e-6)
    rtol = 1e-6 if kind.startswith("sgd") else 1e-4  # adaptive: m/(sqrt(v)+eps) is 1 - O(eps)
    if kind in ("sgd", "sgd+momentum", "adam", "adamax"):  # first step moves by lr * sign(g)
        np.testing.assert_allclose(mean[-1], base_lr, rtol=rtol)
    for g in range(G - 1):
        np.testing.assert_allclose(mean[g] / mean[g + 1], 1.0 / factor, rtol=rtol)


def test_sgd_step_in_fit_is_lr_times_gradient_per_group_and_frozen_layers_do_not_move():
    set_seed(1)
    base = small_mobilenet()
    model = finetune.build_head_model(base, 3, dropout=0.0, image_size=32)
    finetune.unfreeze_from(base, 10)
    groups = finetune.layer_groups(model, base, n_groups=2)
    assert [g.blocks for g in groups] == [[10, 11], [12, 13], []]
    base_lr, factor = 0.5, 5.0
    rates = finetune.group_learning_rates(len(groups), base_lr, factor)
    assert rates == pytest.approx([0.02, 0.1, 0.5])

    x = np.random.default_rng(1).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 3
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy()(y, model(x, training=True))
    grads = dict(zip([id(v) for v in model.trainable_weights],
                     tape.gradient(loss, model.trainable_weights)))
    frozen = [v for v in model.weights if not any(v is t for t in model.trainable_weights)]
    frozen_before = snapshot(frozen)
    before = {id(v): np.array(v.numpy(), copy=True) for v in model.trainable_weights}

    opt = finetune.differential_optimizer(groups, base_lr, factor, optimizer="sgd")
    finetune.compile_classifier(model, opt)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    for lr, group in zip(rates, groups):
        steps = [before[id(v)] - v.numpy() for v in group.variables]
        g = [grads[id(v)].numpy() for v in group.variables]
        for v, step, grad in zip(group.variables, steps, g):
            expected = lr * grad
            assert np.abs(expected).max() > 1e-6, v.path  # a visible step, not float noise
            ulp = np.spacing(np.abs(before[id(v)]).max())  # float32 rounding of w - step
            np.testing.assert_allclose(step, expected, rtol=1e-3, atol=8 * ulp)
        # the group's effective learning rate: least-squares slope of step against gradient
        flat_s = np.concatenate([x.ravel() for x in steps]).astype(np.float64)
        flat_g = np.concatenate([x.ravel() for x in g]).astype(np.float64)
        assert flat_s @ flat_g / (flat_g @ flat_g) == pytest.approx(lr, rel=1e-3)
    for a, v in zip(frozen_before, frozen):  # blocks 0-9 and all BatchNorm: bit-identical
        np.testing.assert_array_equal(a, v.numpy())
    assert sum(len(g.variables) for g in groups) == len(model.trainable_weights)


def test_layer_groups_fewer_blocks_than_groups_and_uncovered_variables():
    base = small_mobilenet()
    model = finetune.build_head_model(base, 2, image_size=32)
    finetune.unfreeze_from(base, 12)
    groups = finetune.layer_groups(model, base, n_groups=5)
    assert [g.name for g in groups] == ["block 12", "block 13", "head"]
    assert groups[-1].n_params == 256 * 2 + 2
    finetune.unfreeze_from(base, 14)
    assert [g.name for g in finetune.layer_groups(model, base, 3)] == ["head"]

    # groups made before unfreezing more: the optimizer refuses to guess a rate
    opt = finetune.differential_optimizer(finetune.layer_groups(model, base, 2), 1e-3, 3.0)
    finetune.unfreeze_from(base, 11)
    finetune.compile_classifier(model, opt)
    x, y = np.zeros((2, 32, 32, 3), "float32"), np.array([0, 1])
    with pytest.raises(TLCourseError, match="no learning-rate group"):
        model.fit(x, y, epochs=1, verbose=0)


def test_differential_model_saves_and_loads(tmp_path):
    set_seed(2)
    base = small_mobilenet()
    model = finetune.build_head_model(base, 2, image_size=32)
    finetune.unfreeze_from(base, 12)
    groups = finetune.layer_groups(model, base, 2)
    finetune.compile_classifier(model, finetune.differential_optimizer(groups, 1e-3, 10.0, "adam"))
    x = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = np.array([0, 1, 0, 1])
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, finetune.DifferentialAdam)
    assert loaded.optimizer.lr_multipliers == model.optimizer.lr_multipliers
    assert sorted(set(loaded.optimizer.lr_multipliers.values())) == pytest.approx([0.01, 0.1, 1.0])
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)
    assert finetune.trainable_params(loaded) == finetune.trainable_params(model)
    loaded.fit(x, y, epochs=1, verbose=0)  # and it keeps training


# --------------------------------------------------------- early stopping ----

def run_scalar_fit(callback, epochs):
    """w moves 0 -> 10 along w_e = 10 (1 - 0.9^e); validation wants w = 2.71 (after epoch 3)."""
    set_seed(3)
    model = keras.Sequential([keras.Input((1,)),
                              keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    history = model.fit(np.ones((1, 1)), np.full((1, 1), 10.0), epochs=epochs, batch_size=1,
                        validation_data=(np.ones((1, 1)), np.full((1, 1), 2.71)),
                        callbacks=[callback], verbose=0)
    return float(model.layers[0].kernel.numpy().ravel()[0]), history


def test_early_stopping_restores_the_best_epoch_when_it_stops():
    cb = finetune.best_epoch_early_stopping(patience=2, monitor="val_loss", verbose=0)
    w, history = run_scalar_fit(cb, epochs=20)
    assert len(history.epoch) == 5  # best at index 2, two worse epochs, stop
    assert cb.best_epoch == 2 and cb.stopped_epoch == 4
    assert w == pytest.approx(2.71, abs=1e-4)
    assert "epoch 3" in cb.report() and "stopped early" in cb.report()


def test_early_stopping_restores_the_best_epoch_when_training_runs_to_the_end():
    cb = finetune.best_epoch_early_stopping(patience=50, monitor="val_loss", verbose=0)
    w, history = run_scalar_fit(cb, epochs=6)
    assert len(history.epoch) == 6 and cb.stopped_epoch == 0
    assert cb.best_epoch == 2 and cb.restored_epoch == 2
    assert w == pytest.approx(2.71, abs=1e-4)  # not the last epoch's 4.69
    assert "ran to the last epoch" in cb.report()


def test_fit_head_then_fine_tune_on_the_default_strategy():
    set_seed(4)
    base = small_mobilenet()
    base.trainable = True  # fit_head freezes it (step 1)
    y = np.arange(32) % 2
    x = (np.random.default_rng(4).uniform(0, 60, (32, 32, 32, 3)) + 180 * y[:, None, None, None]).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model, head = finetune.fit_head(finetune.build_head_model(base, 2, image_size=32), ds, ds,
                                    epochs=2, learning_rate=1e-2, verbose=0)
    assert finetune.trainable_params(base) == 0 and head.epoch == [0, 1]
    stop = finetune.best_epoch_early_stopping(patience=5, verbose=0)
    history = finetune.fine_tune(model, ds, ds, epochs=2, from_block=13, learning_rate=1e-4,
                                 initial_epoch=len(head.epoch), callbacks=[stop], verbose=0)
    assert history.epoch == [2, 3] and stop.restored_epoch in (2, 3)
    assert type(model.optimizer) is keras.optimizers.Adam
    assert history.groups == [("all", 9 * 256 + 256 * 256 + 2 * 256 + 2, 1e-4)]  # alpha=0.25: 256 channels


# ------------------------------------------------------------ distributed ----

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tlcourse import finetune
    from tlcourse.config import set_seed
    from tlcourse.fetch import TLCourseError

    set_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    rng = np.random.default_rng(0)
    y = np.arange(64) % 2
    x = (rng.uniform(0, 60, (64, 32, 32, 3)) + 180 * y[:, None, None, None]).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

    def build():
        base = keras.applications.MobileNet(weights=None, include_top=False, alpha=0.25,
                                            input_shape=(32, 32, 3))
        for layer in base.layers:  # He init: Keras's default makes activations vanish (see he_init)
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
                k = layer.kernel
                fan_in = np.prod(k.shape[:2]) * (1 if isinstance(layer, keras.layers.DepthwiseConv2D)
                                                 else k.shape[2])
                k.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), k.shape).astype("float32"))
        return finetune.build_head_model(base, 2, image_size=32)

    model, history = finetune.fit_head(build, ds, ds, epochs=4, learning_rate=1e-2,
                                       strategy=strategy, verbose=0)
    loss = history.history["loss"]
    assert model.distribute_strategy is strategy
    assert isinstance(model.trainable_weights[0].value, tf.distribute.DistributedValues)
    assert finetune.trainable_params(finetune.find_base(model)) == 0
    assert loss[-1] < loss[0], loss

    base = finetune.find_base(model)
    early = [l for l in base.layers if l.weights and finetune.block_of(l.name) < 12]
    frozen = [np.array(v.numpy()) for l in early for v in l.weights]
    ft = finetune.fine_tune(model, ds, ds, epochs=1, initial_epoch=4, from_block=12,
                            learning_rate=1e-3, factor=3.0, n_groups=2, strategy=strategy, verbose=0)
    assert isinstance(model.optimizer, finetune.DifferentialAdam)
    assert [g[0] for g in ft.groups] == ["block 12", "block 13", "head"], ft.groups
    assert ft.epoch == [4]
    after = [v.numpy() for l in early for v in l.weights]
    assert all(np.array_equal(a, b) for a, b in zip(frozen, after))

    outside = build()  # variables not mirrored: refused with a plain message
    try:
        finetune.fit_head(outside, ds, epochs=1, strategy=strategy, verbose=0)
    except TLCourseError as exc:
        assert "scope" in str(exc)
    else:
        raise AssertionError("a model built outside the scope was accepted")
    print("LOSS", loss)
    """
)


def test_head_training_under_mirrored_strategy_on_two_cpu_replicas():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "LOSS" in result.stdout
