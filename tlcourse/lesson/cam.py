"""Class activation maps (Zhou et al. 2016): where a classifier finds a class in a photo (02, 05).

After global average pooling and one linear layer (MobileNet's head, 04's) a class score is the mean
over positions of CAM_c(x, y) = sum_k w_kc A_k(x, y): the map is exact.
"""

from __future__ import annotations

import keras
import matplotlib.pyplot as plt
import numpy as np

from .errors import TLCourseError
from .plots import show_image

_PASS = (keras.layers.Dropout, keras.layers.Reshape, keras.layers.Flatten)


def cam_parts(model):
    """The pieces of a class activation map: ``(features, kernel, bias)``.

    ``model`` must end in GlobalAveragePooling2D, (Dropout), one Dense or 1x1 Conv2D. ``features``
    is a model giving (feature map, the model's output); ``kernel`` the classifier's weights as
    (channels, classes); ``bias`` its biases (classes,).
    """
    layers = model.layers
    gaps = [
        i
        for i, layer in enumerate(layers)
        if isinstance(layer, keras.layers.GlobalAveragePooling2D)
    ]
    after = layers[gaps[-1] + 1 :] if gaps else []
    head = next((i for i, layer in enumerate(after) if layer.weights), None)
    if (
        head is None
        or not isinstance(after[head], (keras.layers.Dense, keras.layers.Conv2D))
        or not all(isinstance(layer, _PASS) for layer in after[:head])
        or any(layer.weights for layer in after[head + 1 :])
    ):
        raise TLCourseError(
            f"Model {model.name!r} has no GlobalAveragePooling2D followed by one Dense "
            "(or 1x1 Conv2D) layer, so its class activation maps are not defined."
        )
    layer = after[head]
    kernel = keras.ops.convert_to_numpy(layer.kernel).reshape(-1, layer.kernel.shape[-1])
    bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else np.zeros(kernel.shape[1])
    return keras.Model(model.input, [layers[gaps[-1]].input, model.output]), kernel, bias


def class_activation_maps(model, images, classes=None, upsample: bool = True):
    """``(maps, classes, probabilities)`` for a batch of ``images`` (as the model takes them).

    ``classes``: one class index per image, or one for all (default: each image's top-1). ``maps``:
    (N, H, W) in logit units, bilinearly upsampled to the image size (``upsample=False``: the
    feature map's size, whose mean is the class logit minus its bias). ``probabilities``: (N, C).
    """
    features, kernel, _ = cam_parts(model)
    images = np.asarray(images, dtype="float32")
    fmaps, outputs = [], []
    for start in range(0, len(images), 32):
        fmap, output = features(images[start : start + 32], training=False)
        fmaps.append(keras.ops.convert_to_numpy(fmap))
        outputs.append(keras.ops.convert_to_numpy(output))
    fmap = np.concatenate(fmaps)
    probs = np.concatenate(outputs).reshape(len(images), -1)
    classes = probs.argmax(axis=1) if classes is None else np.broadcast_to(classes, len(images))
    maps = np.einsum("nhwk,kn->nhw", fmap, kernel[:, classes])
    if upsample:
        maps = keras.ops.image.resize(maps[..., None], images.shape[1:3])
        maps = keras.ops.convert_to_numpy(maps)[..., 0]
    return maps, np.asarray(classes), probs


def show_cam(image, cam, label: str, probability: float, ax=None, alpha: float = 0.5):
    """A photo with its class activation map over it (bright.

    Evidence for ``label``), titled with the class and its probability. Returns the Figure.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.4))
    show_image(image, f"{label.replace('_', ' ')} ({probability:.0%})", ax=ax)
    height, width = np.asarray(image).shape[:2]
    ax.imshow(
        cam, cmap="inferno", alpha=alpha, extent=(0, width, height, 0), interpolation="bilinear"
    )
    return ax.figure
