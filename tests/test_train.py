"""Training helpers (tlcourse.lesson.train).

Blocks, freezing and unfreezing, BatchNorm in inference mode, differential learning rates, Keras's
own early stopping, saved models that load without tlcourse, and notebook 03's recipe.
"""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tlcourse as tl
from tlcourse.lesson import train
from tlcourse.lesson.errors import TLCourseError


@pytest.fixture(scope="module")
def mobilenet224():
    """The real MobileNet V1 base (random weights: no download), for layer and count tests."""
    return keras.applications.MobileNet(weights=None, include_top=False, input_shape=(224, 224, 3))


def he_init(base, seed=0):
    """He-normal conv kernels:

    Keras's default init with untrained BatchNorm shrinks MobileNet's activations to ~1e-18 after 27
    layers, and no weight would visibly move.
    """
    rng = np.random.default_rng(seed)
    for layer in base.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            k = layer.kernel
            fan_in = np.prod(k.shape[:2]) * (
                1 if isinstance(layer, keras.layers.DepthwiseConv2D) else k.shape[2]
            )
            k.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), k.shape).astype("float32"))
    return base


def head_model(base, num_classes, size=32):
    """Notebook 04's model: raw pixels, MobileNet's scaling, the base (inference mode), a head."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def small_model(num_classes=3, seed=0):
    tl.set_seed(seed)
    base = he_init(
        keras.applications.MobileNet(
            weights=None, include_top=False, alpha=0.25, input_shape=(32, 32, 3)
        )
    )
    return base, head_model(base, num_classes)


def snapshot(variables):
    return [np.array(v.numpy(), copy=True) for v in variables]


def is_bn(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


# ---------------------------------------------------------------- blocks ----


def test_every_weighted_layer_is_in_a_block(mobilenet224):
    blocks = {}
    for layer in mobilenet224.layers:
        blocks.setdefault(train.block_of(layer.name), []).append(layer.name)
    assert sorted(b for b in blocks if b is not None) == list(range(14))
    assert blocks[None] == [mobilenet224.layers[0].name]  # only the input belongs to none
    assert blocks[1] == [
        "conv_dw_1",
        "conv_dw_1_bn",
        "conv_dw_1_relu",
        "conv_pw_1",
        "conv_pw_1_bn",
        "conv_pw_1_relu",
    ]
    assert blocks[2][0] == "conv_pad_2"  # strided blocks start with their padding


def test_find_base_and_refusing_the_whole_model(mobilenet224):
    model = head_model(mobilenet224, 5, size=224)
    assert train.find_base(model) is mobilenet224
    with pytest.raises(TLCourseError, match="not a MobileNet V1 base"):
        train.unfreeze_from(model, 10)
    with pytest.raises(TLCourseError, match="No MobileNet base"):
        train.find_base(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))


# ------------------------------------------------------ freeze / unfreeze ----


def expected_trainable(base, block, train_bn):
    """Independent count: every weight a layer *could* train, in blocks >= block."""
    total = 0
    for layer in base.layers:
        b = train.block_of(layer.name)
        if b is None or b < block:
            continue
        if is_bn(layer):
            total += (int(np.prod(layer.gamma.shape)) * 2) if train_bn else 0
        else:
            total += train.count_params(layer.weights)
    return total


@pytest.mark.parametrize("block", [0, 1, 5, 10, 13, 14])
@pytest.mark.parametrize("train_bn", [False, True])
def test_unfreeze_from_counts_and_flags(mobilenet224, block, train_bn):
    base = mobilenet224
    n = train.unfreeze_from(base, block, train_bn=train_bn)
    assert (
        n == expected_trainable(base, block, train_bn) == train.count_params(base.trainable_weights)
    )
    for layer in base.layers:
        b = train.block_of(layer.name)
        if b is not None:
            assert layer.trainable is (b >= block and (train_bn or not is_bn(layer))), layer.name
        if is_bn(layer):  # moving statistics are never trainable
            assert all(v.path.endswith(("gamma", "beta")) for v in layer.trainable_weights)


def test_unfreeze_known_numbers_table_and_slider(mobilenet224):
    base = mobilenet224
    assert train.unfreeze_from(base, 14) == 0 and base.trainable is False
    # block 13 alone: depthwise 3x3x1024 + pointwise 1024x1024 (BN frozen)
    assert train.unfreeze_from(base, 13) == 9 * 1024 + 1024 * 1024 == 1_057_792
    bn_params = sum(train.count_params(layer.weights) for layer in base.layers if is_bn(layer))
    assert train.unfreeze_from(base, 0) == base.count_params() - bn_params
    train.unfreeze_from(base, 7)
    before = [layer.trainable for layer in base.layers]
    table = train.unfreeze_table(base)
    assert [layer.trainable for layer in base.layers] == before  # the table leaves the base alone
    assert list(table) == list(range(15)) and table[14] == 0 and table[13] == 1_057_792
    assert list(table.values()) == sorted(table.values(), reverse=True)
    slider = tl.unfreeze_slider(base, value=10)
    slider.children[0].value = 13
    assert "1,057,792 of 3,228,864" in slider.children[1].value
    assert [layer.trainable for layer in base.layers] == before
    with pytest.raises(ValueError, match="0..14"):
        train.unfreeze_from(base, 15)


# -------------------------------------------------------------- BatchNorm ----


def bn_setup(train_bn):
    base, model = small_model()
    train.unfreeze_from(base, 0, train_bn=train_bn)
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    bns = [layer for layer in base.layers if is_bn(layer)]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return base, model, bns, x, np.arange(16) % 3


def bn_stats(bns):
    return snapshot(
        [v for bn in bns for v in (bn.moving_mean, bn.moving_variance, bn.gamma, bn.beta)]
    )


def test_batchnorm_stays_in_inference_mode_when_unfrozen():
    base, model, bns, x, y = bn_setup(train_bn=False)
    np.testing.assert_allclose(
        model(x, training=True), model(x, training=False), rtol=1e-5, atol=1e-6
    )
    stats = bn_stats(bns)
    kernels = [layer.kernel for layer in base.layers if hasattr(layer, "kernel")]
    kernels_before = snapshot(kernels)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert not any(
        np.array_equal(a, k.numpy()) for a, k in zip(kernels_before, kernels)
    )  # it trained
    for a, b in zip(stats, bn_stats(bns)):
        np.testing.assert_array_equal(a, b)  # ImageNet statistics, scale and offset untouched


def test_why_batchnorm_stays_frozen_training_false_alone_does_not_hold_in_keras3():
    """Keras 3's fit passes training=True through ``base(x, training=False)``.

    A *trainable* BN layer normalises with batch statistics and overwrites its moving averages.
    """
    base, model, bns, x, y = bn_setup(train_bn=True)
    assert not np.allclose(model(x, training=True), model(x, training=False), atol=1e-4)
    stats = bn_stats(bns)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert not any(np.array_equal(a, b) for a, b in zip(stats[::4], bn_stats(bns)[::4]))


# ------------------------------------------------- differential learning ----


def make_groups(n_groups, size=4):
    return [
        (f"g{g}", [keras.Variable(np.zeros(size, "float32"), name=f"g{g}_{i}") for i in range(2)])
        for g in range(n_groups)
    ]


def one_step_updates(optimizer, groups, gradient=1.0):
    variables = [v for _, grp in groups for v in grp]
    optimizer.apply_gradients([(tf.fill(v.shape, gradient), v) for v in variables])
    return [[-v.numpy() for v in grp] for _, grp in groups]  # zeros - update


KINDS = {
    "sgd": (keras.optimizers.SGD, {}),
    "sgd+momentum": (keras.optimizers.SGD, {"momentum": 0.9}),
    "adam": (keras.optimizers.Adam, {}),
    "rmsprop": (keras.optimizers.RMSprop, {}),
}


@pytest.mark.parametrize("factor", [3.0, 10.0])
@pytest.mark.parametrize("kind", list(KINDS))
def test_each_group_update_is_a_separate_optimizer_at_its_rate(kind, factor):
    cls, kwargs = KINDS[kind]
    head_lr, n = 0.01, 4
    groups = make_groups(n)
    updates = one_step_updates(
        train.differential_optimizer(groups, head_lr, factor, cls, **kwargs), groups
    )
    for g in range(n):
        reference = one_step_updates(
            cls(head_lr / factor ** (n - 1 - g), **kwargs), make_groups(1)
        )[0]
        for u, r in zip(updates[g], reference):
            np.testing.assert_allclose(u, r, rtol=1e-6)
    assert float(np.mean(updates[0])) < float(np.mean(updates[-1]))


def test_sgd_step_in_fit_is_rate_times_gradient_per_group_and_frozen_layers_do_not_move():
    base, model = small_model(seed=1)
    train.unfreeze_from(base, 10)
    groups = train.layer_groups(model, base, n_groups=2)
    assert [name for name, _ in groups] == ["blocks 10-11", "blocks 12-13", "head"]
    rates = [0.5 / 25, 0.5 / 5, 0.5]
    x = np.random.default_rng(1).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 3
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy()(y, model(x, training=True))
    grads = dict(
        zip([id(v) for v in model.trainable_weights], tape.gradient(loss, model.trainable_weights))
    )
    frozen = [v for v in model.weights if not any(v is t for t in model.trainable_weights)]
    frozen_before = snapshot(frozen)
    before = {id(v): np.array(v.numpy(), copy=True) for v in model.trainable_weights}
    model.compile(
        optimizer=train.differential_optimizer(groups, 0.5, 5.0, keras.optimizers.SGD),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for lr, (_, variables) in zip(rates, groups):
        steps = np.concatenate([(before[id(v)] - v.numpy()).ravel() for v in variables]).astype(
            np.float64
        )
        g = np.concatenate([grads[id(v)].numpy().ravel() for v in variables]).astype(np.float64)
        assert np.abs(g).max() > 1e-6
        assert steps @ g / (g @ g) == pytest.approx(lr, rel=1e-3)  # the group's effective rate
    for a, v in zip(frozen_before, frozen):  # blocks 0-9 and all BatchNorm: bit-identical
        np.testing.assert_array_equal(a, v.numpy())
    assert sum(len(v) for _, v in groups) == len(model.trainable_weights)


def test_groups_made_before_unfreezing_more_are_refused():
    base, model = small_model(2)
    train.unfreeze_from(base, 12)
    assert [name for name, _ in train.layer_groups(model, base, n_groups=5)] == [
        "block 12",
        "block 13",
        "head",
    ]
    opt = train.differential_optimizer(train.layer_groups(model, base, 2), 1e-3, 3.0)
    train.unfreeze_from(base, 11)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    with pytest.raises(TLCourseError, match="no learning-rate group"):
        model.fit(np.zeros((2, 32, 32, 3), "float32"), np.array([0, 1]), epochs=1, verbose=0)


def test_saved_model_loads_in_a_fresh_process_without_tlcourse(tmp_path):
    base, model = small_model(2, seed=2)
    train.unfreeze_from(base, 12)
    model.compile(
        optimizer=train.differential_optimizer(train.layer_groups(model, base, 2), 1e-3, 10.0),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    x = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model.fit(x, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    expected = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    train.save_model(model, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]  # no temporary left
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys, numpy as np, keras
        model = keras.models.load_model({str(path)!r})
        print(np.abs(model.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0)).sum())
        assert not [m for m in sys.modules if m.startswith("tlcourse")]
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) == pytest.approx(np.abs(expected).sum(), rel=1e-5)


# --------------------------------------------------------- early stopping ----


def test_keras_early_stopping_restores_the_best_epoch_even_at_the_last_epoch():
    """The course uses Keras's own callback.

    It restores the best weights when it stops and when training runs to its last epoch, and says
    which epoch that was.
    """
    for epochs, stopped in ((20, True), (4, False)):
        tl.set_seed(3)
        model = keras.Sequential(
            [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
        )
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        stop = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=2, restore_best_weights=True
        )
        # w moves 0 -> 10 along 10 (1 - 0.9^e); validation wants w = 2.71, reached after epoch 3
        history = model.fit(
            np.ones((1, 1)),
            np.full((1, 1), 10.0),
            epochs=epochs,
            batch_size=1,
            validation_data=(np.ones((1, 1)), np.full((1, 1), 2.71)),
            callbacks=[stop],
            verbose=0,
        )
        assert stop.best_epoch == 2 and (len(history.epoch) == 5) is stopped
        assert float(model.layers[0].kernel.numpy().ravel()[0]) == pytest.approx(2.71, abs=1e-4)


def test_predictions_follow_the_dataset_order():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    x = np.arange(10, dtype="float32").reshape(5, 2)
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(5) % 2)).batch(2)
    labels, probs = train.predictions(model, ds)
    assert labels.tolist() == [0, 1, 0, 1, 0]
    np.testing.assert_allclose(probs, model.predict(x, verbose=0), rtol=1e-6)


def test_predict_array_is_model_predict_one_batch_at_a_time():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    x = np.arange(14, dtype="uint8").reshape(7, 2)  # bytes in, as the course's photos are
    expected = model.predict(x.astype("float32"), verbose=0)
    for batch_size in (1, 3, 64):  # batches that split the array unevenly, or one batch for all
        np.testing.assert_allclose(train.predict_array(model, x, batch_size), expected, rtol=1e-6)


# ------------------------------------------------ notebook 04's head, rebuilt ----


def test_train_head_is_notebook_04s_model_and_separates_two_colours(tmp_path):
    """Red-ish against blue-ish noise photos.

    The frozen ImageNet features separate them, so the rebuilt head must get every validation photo
    right; the model takes raw 0-255 photos of any batch, only its Dense layer trains, and it is
    Rescaling -> base -> pooling -> Dense, the shape notebook 05 and the class activation maps
    expect.
    """
    from PIL import Image

    from tlcourse.lesson.data import Splits

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3)):
        for k, name in enumerate(("blue", "red")):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 90, (48, 48, 3))
                pixels[..., 2 - 2 * k] += 160  # the blue or the red channel
                Image.fromarray(pixels.astype("uint8")).save(folder / f"{i}.png")
    splits = Splits(root=tmp_path, class_names=["blue", "red"], counts={})
    model = tl.train_head(splits, copies=1, max_epochs=60, patience=10)
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 2)
    assert [type(layer).__name__ for layer in model.layers[1:]] == [
        "Rescaling",
        "Functional",
        "GlobalAveragePooling2D",
        "Dense",
    ]
    base = train.find_base(model)
    assert not base.trainable and train.count_params(model.trainable_weights) == 1024 * 2 + 2
    val = keras.utils.image_dataset_from_directory(
        tmp_path / "val", image_size=(224, 224), shuffle=False, verbose=False
    )
    labels, probs = train.predictions(model, val)
    assert (probs.argmax(axis=1) == labels).all(), probs
    images = np.concatenate([x for x, _ in val])
    pooled = base.predict(images / 127.5 - 1, verbose=0).mean(axis=(1, 2))
    kernel, bias = model.layers[-1].get_weights()
    np.testing.assert_allclose(
        probs, keras.ops.convert_to_numpy(keras.ops.softmax(pooled @ kernel + bias)), atol=1e-5
    )
    path = tmp_path / "head.keras"
    train.save_model(model, path)
    np.testing.assert_allclose(
        keras.models.load_model(path).predict(images[:1], verbose=0),
        probs[:1],
        rtol=1e-5,
        atol=1e-6,
    )


def test_the_scratch_recipe_builds_notebook_03s_network_and_stops_on_validation():
    """tl.scratch_model is notebook 03's cell; tl.train_from_scratch stops on a stall."""
    model = tl.scratch_model(3, 32, alpha=0.25, bn_momentum=0.9)
    inner = model.layers[-1]
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 3)
    assert [type(layer) for layer in model.layers[1].layers] == [
        keras.layers.RandomFlip,
        keras.layers.RandomRotation,
        keras.layers.RandomZoom,
    ]
    assert all(layer.momentum == 0.9 for layer in inner.layers if is_bn(layer))
    plain = tl.scratch_model(3, 32, alpha=0.25, augment=False)
    assert not any(isinstance(layer, keras.Sequential) for layer in plain.layers)

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (24, 32, 32, 3)).astype("float32")  # noise: nothing to learn
    y = rng.integers(0, 3, 24)
    x_val = rng.uniform(0, 255, (12, 32, 32, 3)).astype(
        "float32"
    )  # other noise: nothing carries over
    y_val = rng.integers(0, 3, 12)
    _, history, reason = tl.train_from_scratch(
        x,
        y,
        validation_data=(x_val, y_val),
        num_classes=3,
        img_size=32,
        alpha=0.25,
        max_epochs=40,
        patience=2,
        augment=False,
    )
    assert reason == "validation stopped improving" and len(history.epoch) < 40
    _, history, reason = tl.train_from_scratch(
        x,
        y,
        validation_data=(x_val, y_val),
        num_classes=3,
        img_size=32,
        alpha=0.25,
        max_epochs=1,
        patience=2,
        augment=False,
    )
    assert reason == "reached the epoch limit"
