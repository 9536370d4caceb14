"""Plausible wrong answers to the autograded exercises, by the grade_id of the solution cell.

Each entry is ``(what the mistake is, code that replaces the lines between ### BEGIN SOLUTION
and ### END SOLUTION)``. ``tests/test_homework.py`` checks that every autograded exercise has
one, that its graded tests fail on each of them, and puts the first one through nbgrader's
autograde as the "plausible mistake" submission.
"""

WRONG_ANSWERS = {
    "nb00-new-head": [
        (
            "forgets the biases: n_features parameters per class instead of n_features + 1",
            "return total - n_features * old_classes + n_features * new_classes",
        ),
        (
            "adds the new head without taking the old one away",
            "return total + (n_features + 1) * new_classes",
        ),
    ],
    "nb01-any-array": [
        (
            "scales to [0, 1] instead of MobileNet's [-1, 1]",
            'as_rgb = PIL.Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")\n'
            "as_rgb = as_rgb.resize((img_size, img_size))\n"
            'return np.expand_dims(np.asarray(as_rgb, dtype="float32") / 255.0, axis=0)',
        ),
        (
            "keeps the alpha channel of an RGBA photo",
            'x = np.asarray(image, dtype="float32")\n'
            "if x.ndim == 2:\n"
            "    x = np.stack([x, x, x], axis=-1)\n"
            "x = keras.ops.convert_to_numpy(keras.ops.image.resize(x, (img_size, img_size)))\n"
            "return np.expand_dims(x, axis=0) / 127.5 - 1",
        ),
        (
            "leaves a greyscale photo with one channel",
            'x = np.asarray(image, dtype="float32")\n'
            "if x.ndim == 2:\n"
            "    x = x[..., np.newaxis]\n"
            "x = keras.ops.convert_to_numpy(keras.ops.image.resize(x[..., :3], (img_size, img_size)))\n"
            "return np.expand_dims(x, axis=0) / 127.5 - 1",
        ),
        (
            "ignores img_size: always 224 x 224",
            'as_rgb = PIL.Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB").resize((224, 224))\n'
            'return np.expand_dims(np.asarray(as_rgb, dtype="float32"), axis=0) / 127.5 - 1',
        ),
        (
            "forgets the batch axis",
            'as_rgb = PIL.Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")\n'
            'return np.asarray(as_rgb.resize((img_size, img_size)), dtype="float32") / 127.5 - 1',
        ),
    ],
    "nb02-nearest-centroid": [
        (
            "takes the farthest centroid (argmax) instead of the nearest",
            "classes = np.unique(y_train)\n"
            "centroids = np.stack([X_train[y_train == c].mean(axis=0) for c in classes])\n"
            "return classes[((X_test[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=-1).argmax(axis=1)]",
        ),
        (
            "the nearest training photo (1-nearest neighbour) instead of the nearest class mean",
            "squared_distances = ((X_test[:, None, :] - X_train[None, :, :]) ** 2).sum(axis=-1)\n"
            "return y_train[squared_distances.argmin(axis=1)]",
        ),
        (
            "returns the position of the nearest centroid, not its label",
            "classes = np.unique(y_train)\n"
            "centroids = np.stack([X_train[y_train == c].mean(axis=0) for c in classes])\n"
            "return ((X_test[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=-1).argmin(axis=1)",
        ),
        (
            "takes the minimum over the wrong axis (the nearest test photo of each centroid)",
            "classes = np.unique(y_train)\n"
            "centroids = np.stack([X_train[y_train == c].mean(axis=0) for c in classes])\n"
            "return classes[((X_test[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=-1).argmin(axis=0)]",
        ),
    ],
    "nb02-class-map": [
        (
            "averages the channels instead of weighting them by the class's weights",
            "return feature_map.mean(axis=-1)",
        ),
        (
            "keeps only the positive evidence (a ReLU, as Grad-CAM does)",
            "return np.maximum(feature_map @ weights[:, c], 0)",
        ),
        (
            "takes the class's row of the weights instead of its column",
            "return feature_map @ weights[c]",
        ),
        (
            "rescales the map to [0, 1] for display",
            "m = feature_map @ weights[:, c]\nreturn (m - m.min()) / (m.max() - m.min())",
        ),
    ],
    "nb06-strided-layer": [
        (
            "counts the positions of the input grid instead of the output grid",
            "d_out = -(-d_in // stride)\n"
            "standard = d_k * d_k * m * n * d_in * d_in\n"
            "separable = (d_k * d_k * m + m * n) * d_in * d_in\n"
            "return d_out, standard, separable",
        ),
        (
            "rounds the output size down: 'same' padding keeps ceil(d_in / stride)",
            "d_out = d_in // stride\n"
            "return d_out, d_k * d_k * m * n * d_out**2, (d_k * d_k * m + m * n) * d_out**2",
        ),
        (
            "no padding ('valid') instead of 'same'",
            "d_out = (d_in - d_k) // stride + 1\n"
            "return d_out, d_k * d_k * m * n * d_out**2, (d_k * d_k * m + m * n) * d_out**2",
        ),
        (
            "forgets the stride",
            "return d_in, d_k * d_k * m * n * d_in**2, (d_k * d_k * m + m * n) * d_in**2",
        ),
        (
            "the lecture's mix: depthwise on the input grid, pointwise on the output grid",
            "d_out = -(-d_in // stride)\n"
            "return d_out, d_k * d_k * m * n * d_out**2, d_k * d_k * m * d_in**2 + m * n * d_out**2",
        ),
        (
            "calls tl.costs instead of doing the arithmetic",
            "std = tl.costs.conv2d_cost((d_in, d_in, m), n, d_k, stride, 'same')\n"
            "sep = tl.costs.separable_conv2d_cost((d_in, d_in, m), n, d_k, stride, 'same')\n"
            "return std.output_shape[0], std.mult_adds, sep.mult_adds",
        ),
    ],
    "nb06-depthwise-kernel": [
        (
            "scales the whole network by D_K^2 / 9, pointwise layers included",
            "return int(rows.mult_adds.sum() * d_k * d_k // 9)",
        ),
        (
            "scales the depthwise layers by D_K / 3 (the side, not the area)",
            "dw = rows.kind == 'dw'\n"
            "return int(rows.mult_adds[~dw].sum() + rows.mult_adds[dw].sum() * d_k // 3)",
        ),
        (
            "counts the first standard 3x3 convolution as depthwise too",
            "k3 = rows.kind.isin(['dw', 'conv'])\n"
            "return int(rows.mult_adds[~k3].sum() + rows.mult_adds[k3].sum() * d_k * d_k // 9)",
        ),
    ],
    "nb08-choose-version": [
        (
            "judges accuracy by the point estimate, not the interval's lower end",
            'ok = measured[(measured["ms_1_thread"] <= max_ms) & (measured["accuracy"] >= min_accuracy)]\n'
            'return ok.sort_values(["size_mib", "ms_1_thread"]).index[0] if len(ok) else None',
        ),
        (
            "ships the fastest version instead of the smallest file",
            'ok = measured[(measured["ms_1_thread"] <= max_ms) & (measured["accuracy_low"] >= min_accuracy)]\n'
            'return ok.sort_values("ms_1_thread").index[0] if len(ok) else None',
        ),
        (
            "leaves out a version exactly on the budget (< instead of <=)",
            'ok = measured[(measured["ms_1_thread"] < max_ms) & (measured["accuracy_low"] > min_accuracy)]\n'
            'return ok.sort_values(["size_mib", "ms_1_thread"]).index[0] if len(ok) else None',
        ),
        (
            "fails when no version meets the budget instead of returning None",
            'ok = measured[(measured["ms_1_thread"] <= max_ms) & (measured["accuracy_low"] >= min_accuracy)]\n'
            'return ok.sort_values(["size_mib", "ms_1_thread"]).index[0]',
        ),
        (
            "breaks a tie in size by name order, not by speed",
            'ok = measured[(measured["ms_1_thread"] <= max_ms) & (measured["accuracy_low"] >= min_accuracy)]\n'
            'return ok.sort_values("size_mib", kind="stable").index[0] if len(ok) else None',
        ),
    ],
    "nb03-one-hot": [
        (
            "takes the one-hot width from the batch instead of num_classes",
            "return dataset.map(lambda batch, classes: (batch, keras.ops.one_hot(classes, keras.ops.max(classes) + 1)))",
        ),
        ("leaves the labels as integers", "return dataset"),
        (
            "shifts every class by one",
            "return dataset.map(lambda batch, classes: (batch, keras.ops.one_hot(classes + 1, num_classes)))",
        ),
    ],
    "nb04-block-head": [
        (
            "never freezes the base",
            'cut = keras.Model(base.input, base.get_layer(f"conv_pw_{block}_relu").output)\n'
            "inputs = keras.Input(shape=base.input.shape[1:])\n"
            "h = cut(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs), training=False)\n"
            "h = keras.layers.GlobalAveragePooling2D()(h)\n"
            'return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(h))',
        ),
        (
            "freezes only the cut part, leaving the rest of the base trainable",
            'cut = keras.Model(base.input, base.get_layer(f"conv_pw_{block}_relu").output)\n'
            "cut.trainable = False\n"
            "inputs = keras.Input(shape=base.input.shape[1:])\n"
            "h = cut(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs), training=False)\n"
            "h = keras.layers.GlobalAveragePooling2D()(h)\n"
            'return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(h))',
        ),
        (
            "cuts one block too late",
            "base.trainable = False\n"
            'cut = keras.Model(base.input, base.get_layer(f"conv_pw_{block + 1}_relu").output)\n'
            "inputs = keras.Input(shape=base.input.shape[1:])\n"
            "h = cut(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs), training=False)\n"
            "h = keras.layers.GlobalAveragePooling2D()(h)\n"
            'return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(h))',
        ),
        (
            "cuts after the block's depthwise convolution, not its pointwise one",
            "base.trainable = False\n"
            'cut = keras.Model(base.input, base.get_layer(f"conv_dw_{block}_relu").output)\n'
            "inputs = keras.Input(shape=base.input.shape[1:])\n"
            "h = cut(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs), training=False)\n"
            "h = keras.layers.GlobalAveragePooling2D()(h)\n"
            'return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(h))',
        ),
        (
            "forgets MobileNet's scaling to [-1, 1]",
            "base.trainable = False\n"
            'cut = keras.Model(base.input, base.get_layer(f"conv_pw_{block}_relu").output)\n'
            "inputs = keras.Input(shape=base.input.shape[1:])\n"
            "h = keras.layers.GlobalAveragePooling2D()(cut(inputs, training=False))\n"
            'return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(h))',
        ),
    ],
    "nb05-pointwise": [
        (
            "never sets base.trainable = True: a frozen base stays frozen",
            "for layer in base.layers:\n"
            '    is_pointwise = layer.name.startswith("conv_pw_") and isinstance(layer, keras.layers.Conv2D)\n'
            "    layer.trainable = is_pointwise and (tl.block_of(layer.name) or 0) >= block\n"
            "return tl.count_params(base.trainable_weights)",
        ),
        (
            "matches every conv_pw_ layer by name, BatchNorm included",
            "base.trainable = True\n"
            "for layer in base.layers:\n"
            '    layer.trainable = layer.name.startswith("conv_pw_") and (tl.block_of(layer.name) or 0) >= block\n'
            "return tl.count_params(base.trainable_weights)",
        ),
        (
            "off by one: only the blocks after `block`",
            "base.trainable = True\n"
            "for layer in base.layers:\n"
            '    is_pointwise = layer.name.startswith("conv_pw_") and isinstance(layer, keras.layers.Conv2D)\n'
            "    layer.trainable = is_pointwise and (tl.block_of(layer.name) or 0) > block\n"
            "return tl.count_params(base.trainable_weights)",
        ),
        (
            "unfreezes the depthwise convolutions too",
            "base.trainable = True\n"
            "for layer in base.layers:\n"
            "    is_conv = isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))\n"
            "    layer.trainable = is_conv and (tl.block_of(layer.name) or 0) >= block\n"
            "return tl.count_params(base.trainable_weights)",
        ),
        (
            "only switches layers on, never off",
            "base.trainable = True\n"
            "for layer in base.layers:\n"
            '    if layer.name.startswith("conv_pw_") and isinstance(layer, keras.layers.Conv2D) \\\n'
            "            and (tl.block_of(layer.name) or 0) >= block:\n"
            "        layer.trainable = True\n"
            "return tl.count_params(base.trainable_weights)",
        ),
    ],
    "nb07-choose-block": [
        (
            "scores each probe on the photos it was fitted to (no cross-validation): memorising wins",
            "scores = {block: make_probe().fit(X, labels).score(X, labels) for block, X in block_features.items()}\n"
            "return max(scores, key=scores.get)",
        ),
        (
            "returns the block's position among the keys, not its number",
            "scores = [cross_val_score(make_probe(), X, labels, cv=folds).mean() for X in block_features.values()]\n"
            "return int(np.argmax(scores))",
        ),
    ],
}
