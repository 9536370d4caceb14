"""Class activation maps (tlcourse.lesson.cam).

A case with a known answer, and exactness on both head shapes the course uses (notebook 04's GAP +
Dense, Keras's ImageNet MobileNet top).
"""

import keras
import matplotlib
import numpy as np
import pytest

import tlcourse as tl
from tlcourse.lesson.errors import TLCourseError

matplotlib.use("Agg")


def corner_model(size=16):
    """A model whose class 0 is "red" and class 1 "blue".

    Raw RGB -> a nested 'base' whose two channels are the red and the blue of each 4x4 cell
    -> GAP -> Dropout -> Dense.
    """
    base = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(2, 4, strides=4, use_bias=False, activation="relu"),
        ],
        name="base",
    )
    kernel = np.zeros((4, 4, 3, 2), "float32")
    kernel[:, :, 0, 0] = kernel[:, :, 2, 1] = 1 / 16  # channel 0: red, channel 1: blue
    base.layers[-1].kernel.assign(kernel)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(keras.layers.Rescaling(1 / 255)(inputs)))
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Dropout(0.5)(x)))
    dense.kernel.assign(np.array([[4.0, -4.0], [-4.0, 4.0]], "float32"))
    dense.bias.assign(np.array([0.1, -0.1], "float32"))
    return model


def corner_image(size=16, patch=4):
    """Grey noise, a red patch in the top-left corner and a blue one bottom-right (0-255)."""
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 60, (size, size, 3)).astype("float32")
    image[:patch, :patch] = [255, 0, 0]
    image[-patch:, -patch:] = [0, 0, 255]
    return image


def test_the_map_finds_the_evidence_where_it_is():
    model, image = corner_model(), corner_image()
    maps, classes, probs = tl.class_activation_maps(model, image[None], classes=[0])
    assert maps.shape == (1, 16, 16) and classes.tolist() == [0]
    y, x = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert y < 4 and x < 4, f"red evidence is top-left; the map peaks at {(y, x)}"
    blue, _, _ = tl.class_activation_maps(model, image[None], classes=1)
    y, x = np.unravel_index(blue[0].argmax(), blue[0].shape)
    assert y >= 12 and x >= 12, f"blue evidence is bottom-right; the map peaks at {(y, x)}"
    flipped, classes, _ = tl.class_activation_maps(model, image[None, ::-1, ::-1])
    assert classes.tolist() == [int(probs[0].argmax())]  # default: the top-1 class
    y, x = np.unravel_index(flipped[0].argmax(), flipped[0].shape)
    assert y >= 12 and x >= 12, "the map moves with the evidence"


def he_init(model, seed=0):
    """He-normal conv kernels.

    With Keras's default init and untrained BatchNorm, MobileNet's last feature map is ~1e-18 and
    every logit would equal its bias.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if (
            isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
            and layer.name != "conv_preds"
        ):
            k = layer.kernel
            fan_in = np.prod(k.shape[:2]) * (
                1 if isinstance(layer, keras.layers.DepthwiseConv2D) else k.shape[2]
            )
            k.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), k.shape).astype("float32"))
    return model


def tiny_mobilenet_head(num_classes=3, size=96):
    """Notebook 04's shape: Rescaling -> nested MobileNet base -> GAP -> Dropout -> Dense."""
    tl.set_seed(0)
    base = he_init(
        keras.applications.MobileNet(
            weights=None, include_top=False, alpha=0.25, input_shape=(size, size, 3)
        )
    )
    inputs = keras.Input((size, size, 3))
    x = base(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs), training=False)
    x = keras.layers.Dropout(0.2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
    return strong_classifier(model, model.layers[-1])


def imagenet_shaped_mobilenet(size=96):
    """Keras's MobileNet with its ImageNet top, random weights: no download.

    The top is GAP (keepdims) -> Dropout -> 1x1 conv_preds -> Reshape -> softmax.
    """
    tl.set_seed(0)
    model = he_init(
        keras.applications.MobileNet(
            weights=None, include_top=True, alpha=0.25, input_shape=(size, size, 3), classes=4
        )
    )
    return strong_classifier(model, model.get_layer("conv_preds"))


def strong_classifier(model, layer, seed=0):
    """Large weights and distinct biases, set on ``model``'s classifier.

    The logits then depend on the features (and on every class's own weights) well beyond the
    tolerance of the test.
    """
    rng = np.random.default_rng(seed)
    layer.kernel.assign(rng.normal(0.0, 10.0, layer.kernel.shape).astype("float32"))
    layer.bias.assign(np.linspace(-1, 1, layer.bias.shape[0]).astype("float32"))
    return model


@pytest.mark.parametrize("build", [tiny_mobilenet_head, imagenet_shaped_mobilenet])
def test_the_map_averages_to_the_logit_minus_the_bias(build, tmp_path):
    model = build()
    path = tmp_path / "model.keras"
    model.save(path)
    model = keras.models.load_model(path)  # as notebooks 02 and 05 load them
    size = model.input_shape[1]
    images = np.random.default_rng(1).uniform(0, 255, (3, size, size, 3)).astype("float32")
    if "conv_preds" in [layer.name for layer in model.layers]:
        images = images / 127.5 - 1  # the ImageNet model takes preprocess_input's scale
    _, kernel, bias = tl.cam_parts(model)
    num_classes = kernel.shape[1]
    logits = (
        np.stack(
            [
                tl.class_activation_maps(model, images, classes=c, upsample=False)[0].mean(
                    axis=(1, 2)
                )
                for c in range(num_classes)
            ],
            axis=1,
        )
        + bias
    )
    probs = model.predict(images, verbose=0).reshape(len(images), -1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.softmax(logits)), probs, atol=1e-5
    )
    maps, _, _ = tl.class_activation_maps(model, images)
    assert maps.shape == (3, size, size)


def test_a_model_without_a_gap_linear_head_is_refused():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    x = keras.layers.Dense(4, activation="relu")(x)  # a hidden layer: CAM not exact
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(TLCourseError, match="GlobalAveragePooling2D"):
        tl.class_activation_maps(model, np.zeros((1, 8, 8, 3)))
    flat = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(TLCourseError, match="class activation maps"):
        tl.cam_parts(flat)


def test_show_cam_draws_the_photo_the_map_and_the_title():
    image = corner_image()
    fig = tl.show_cam(image, np.arange(49.0).reshape(7, 7), "picket_fence", 0.2913)
    ax = fig.axes[0]
    assert ax.get_title() == "picket fence (29%)"
    assert len(ax.images) == 2 and ax.images[1].get_extent() == [0, 16, 16, 0]
    matplotlib.pyplot.close(fig)
