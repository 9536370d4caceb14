"""Notebook 08's route to a phone.

Export a Keras model three ways (float32, dynamic-range int8 weights, full-integer int8), run each
file with LiteRT in a process without TensorFlow, and check it predicts what the Keras model
predicts.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlcourse.lesson import config, ondevice
from tlcourse.lesson.errors import TLCourseError

SIZE, CLASSES = 32, 3


def colour_photos(n: int, seed: int):
    """Raw-pixel images (0-255) whose class is their dominant colour channel."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    images = rng.uniform(0, 120, (n, SIZE, SIZE, 3))
    images[np.arange(n), :, :, labels] += rng.uniform(80, 135, (n, 1, 1))
    return images.astype("float32"), labels


@pytest.fixture(scope="module")
def tiny_model():
    """The course's model in miniature.

    Raw pixels -> Rescaling -> a small convolutional base (a standard convolution, then a
    depthwise-separable block with BatchNorm and ReLU6, as in MobileNet) -> pooling -> dropout ->
    softmax; trained to tell the colours apart.
    """
    keras.utils.set_random_seed(0)
    layers = keras.layers
    base = keras.Sequential(
        [
            layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(6.0),
            layers.DepthwiseConv2D(3, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(6.0),
            layers.Conv2D(64, 1, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(6.0),
        ],
        name="base",
    )
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(CLASSES, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    images, labels = colour_photos(512, seed=1)
    model.fit(images, labels, epochs=8, batch_size=32, verbose=0)
    return model, images


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    """The three exports, written exactly as notebook 08 writes them."""
    model, train_images = tiny_model
    folder = tmp_path_factory.mktemp("tflite")

    def representative():
        for image in train_images[:32]:
            yield [image[None]]

    options = {
        "float32": {},
        "dynamic": {"optimizations": [tf.lite.Optimize.DEFAULT]},
        "int8": {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "representative_dataset": representative,
            "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
            "inference_input_type": tf.uint8,
            "inference_output_type": tf.uint8,
        },
    }
    paths = {}
    for name, kwargs in options.items():
        paths[name] = folder / f"tiny_{name}.tflite"
        model.export(str(paths[name]), format="litert", verbose=False, **kwargs)
    return paths


def test_float32_export_matches_keras(tiny_model, exported):
    model, _ = tiny_model
    images, labels = colour_photos(16, seed=2)
    expected = model.predict(images, verbose=0)
    assert np.mean(expected.argmax(1) == labels) >= 0.9, "the tiny model did not learn colours"
    run = ondevice.run_tflite(exported["float32"], images, threads=1)
    assert run.probabilities.shape == expected.shape
    np.testing.assert_allclose(run.probabilities, expected, atol=1e-4)
    assert run.input_dtype == "float32"


@pytest.mark.parametrize("name", ["dynamic", "int8"])
@pytest.mark.parametrize("threads", [1, 2])
def test_quantised_exports_agree_with_keras(tiny_model, exported, name, threads):
    model, _ = tiny_model
    images, _ = colour_photos(16, seed=3)
    expected = model.predict(images, verbose=0)
    run = ondevice.run_tflite(exported[name], images, threads=threads, runs=20)
    assert run.input_dtype == ("uint8" if name == "int8" else "float32")
    assert np.mean(run.predictions == expected.argmax(1)) >= 15 / 16
    assert np.abs(run.probabilities - expected).max() < 0.1  # int8 output steps are 1/256
    assert run.latencies_ms.shape == (20,) and np.all(run.latencies_ms > 0)


def test_quantised_files_hold_int8_weights(exported):
    from ai_edge_litert.interpreter import Interpreter

    def int8_tensors(path):
        interpreter = Interpreter(model_path=str(path))
        return sum(t["dtype"] == np.int8 for t in interpreter.get_tensor_details())

    assert int8_tensors(exported["float32"]) == 0
    assert int8_tensors(exported["dynamic"]) >= 1  # the 32x64 pointwise kernel
    assert int8_tensors(exported["int8"]) > int8_tensors(exported["dynamic"])  # activations too
    assert exported["dynamic"].stat().st_size < exported["float32"].stat().st_size


def test_worker_runs_without_tensorflow(exported):
    images, _ = colour_photos(4, seed=4)
    run = ondevice.run_tflite(exported["int8"], images)
    assert {"numpy", "ai_edge_litert"} <= set(run.modules)
    assert not run.tensorflow_loaded
    assert not {"tensorflow", "keras"} & set(run.modules)


def test_tensorflow_cannot_be_imported_in_the_worker():
    import subprocess
    import sys

    code = "from tlcourse.lesson import ondevice; ondevice._block_tensorflow(); import tensorflow"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "import of tensorflow halted" in done.stderr


def test_native_stderr_muted_mutes_file_descriptor_2_and_restores_it(capfd):
    import os

    with config.native_stderr_muted():
        os.write(2, b"from C++\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_missing_and_corrupt_files_say_so(tmp_path):
    images = np.zeros((1, SIZE, SIZE, 3), "float32")
    with pytest.raises(TLCourseError, match="missing.tflite"):
        ondevice.run_tflite(tmp_path / "missing.tflite", images)
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a flatbuffer")
    with pytest.raises(TLCourseError, match="corrupt.tflite") as err:
        ondevice.run_tflite(corrupt, images)
    assert "pip install" not in str(err.value)  # a bad file is not blamed on a missing package


def test_litert_missing_from_the_environment_says_so(tmp_path, monkeypatch, exported):
    """A worker whose ai_edge_litert cannot be imported: the message names the package."""
    fake = tmp_path / "site" / "ai_edge_litert"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'ai_edge_litert'\")\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    with pytest.raises(TLCourseError, match="LiteRT is not installed.*pip install ai-edge-litert"):
        ondevice.run_tflite(exported["float32"], np.zeros((1, SIZE, SIZE, 3), "float32"))
