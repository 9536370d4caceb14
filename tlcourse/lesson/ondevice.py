"""Run a ``.tflite`` model the way a phone app does: LiteRT, batch 1, no TensorFlow (08).

A phone ships the LiteRT runtime and the ``.tflite`` file, nothing else. :func:`run_tflite`
reproduces that on this machine: it starts a fresh Python process
(``python -m tlcourse.lesson.ondevice``) that blocks TensorFlow and Keras from being imported,
loads the file with ``ai_edge_litert.interpreter.Interpreter``, classifies each photo on its own
(batch 1) and times every call. The process reports which modules it loaded, so the notebook can
show that TensorFlow was never there.

Timing: one *latency* is one photo through ``set_tensor``, ``invoke`` and ``get_tensor``, the
work an app does per camera frame. A few untimed calls come first (the first calls allocate and
warm caches). Time is wall-clock, so other programs on the machine add noise: read the median,
and the spread between the 25th and 75th percentiles.
"""

from __future__ import annotations

# Only the standard library and NumPy at module level: the worker process runs this file.
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCKED = ("tensorflow", "keras", "tf_keras")  # what a phone does not have
NOT_INSTALLED = "LiteRT is not installed"  # the worker's first line when ai_edge_litert is missing


@dataclass
class LiteRTRun:
    """What :func:`run_tflite` measured for one ``.tflite`` file at one thread count."""

    path: Path
    threads: int
    probabilities: np.ndarray  # (n_photos, n_classes), dequantised to [0, 1]
    latencies_ms: np.ndarray  # one per timed call, in milliseconds
    input_dtype: str  # "float32", or "uint8" for a full-integer model
    input_quantization: tuple  # (scale, zero point): pixel = scale * (q - zero); (0.0, 0) if float
    modules: list  # top-level packages the worker process had loaded

    @property
    def predictions(self) -> np.ndarray:
        """The predicted class of each photo."""
        return self.probabilities.argmax(axis=1)

    @property
    def tensorflow_loaded(self) -> bool:
        return any(name in self.modules for name in BLOCKED)


def run_tflite(
    model_path,
    images,
    threads: int = 1,
    runs: int | None = None,
    warmup: int = 3,
    timeout: float = 600,
) -> LiteRTRun:
    """Classify ``images`` one at a time with LiteRT in a process without TensorFlow.

    ``images``: an array ``(n, height, width, 3)`` of raw pixels (0-255, bytes or floats), as the
    course's models take them. A full-integer model (uint8 input) gets them quantised with its
    input's scale and zero point, ``q = round(pixel / scale + zero)``, clipped to 0-255; its uint8
    outputs come back dequantised to probabilities. Every photo is classified once, in order, and
    ``runs`` calls are timed (default: one per photo; more cycle through the photos again) after
    ``warmup`` untimed ones, on ``threads`` interpreter threads.
    """
    from .errors import TLCourseError

    path = Path(model_path)
    if not path.is_file():
        raise TLCourseError(f"No model file at {path}: export it first (notebook 08).")
    images = np.asarray(images)  # bytes stay bytes: a few thousand photos fit in memory
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            "images must be a non-empty batch (n, height, width, channels), "
            f"got shape {images.shape}"
        )
    runs = len(images) if runs is None else int(runs)
    config = {
        "model": str(path.resolve()),
        "threads": int(threads),
        "runs": runs,
        "warmup": int(warmup),
    }
    with tempfile.TemporaryDirectory(prefix="litert-") as tmp:
        request = Path(tmp) / "request.npz"
        result = Path(tmp) / "result.npz"
        np.savez(request, images=images, config=json.dumps(config))
        command = [sys.executable, "-m", __name__, str(request), str(result)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise TLCourseError(
                f"LiteRT did not finish {path.name} within {timeout:.0f} s."
            ) from None
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["(no message)"]
            if lines[0].startswith(NOT_INSTALLED):
                raise TLCourseError(
                    f"{lines[0]} in this environment ({sys.executable}): "
                    "`pip install ai-edge-litert`, then run again."
                )
            raise TLCourseError(f"LiteRT could not run {path}: {lines[-1]}")
        with np.load(result) as out:
            info = json.loads(str(out["info"]))
            return LiteRTRun(
                path=path,
                threads=int(threads),
                probabilities=out["probabilities"],
                latencies_ms=out["latencies_ms"],
                input_dtype=info["input_dtype"],
                input_quantization=tuple(info["input_quantization"]),
                modules=info["modules"],
            )


# ----------------------------------------------------------------------------- the worker


def _block_tensorflow() -> None:
    """Make ``import tensorflow`` (and Keras) fail in this process, as on a phone."""
    for name in BLOCKED:
        sys.modules[name] = None  # Python's documented way to make an import raise ImportError


def _serve(request: str, result: str) -> None:
    """The worker process: run the request with LiteRT, write probabilities and latencies."""
    _block_tensorflow()
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ModuleNotFoundError as exc:
        sys.exit(f"{NOT_INSTALLED} ({exc})")

    with np.load(request) as req:
        images = req["images"]
        config = json.loads(str(req["config"]))
    interpreter = Interpreter(model_path=config["model"], num_threads=config["threads"])
    interpreter.resize_tensor_input(
        interpreter.get_input_details()[0]["index"], [1, *images.shape[1:]]
    )
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]

    def to_input(image):
        image = image.astype(np.float32)
        scale, zero = inp["quantization"]
        if np.issubdtype(inp["dtype"], np.integer):  # full-integer model: quantise the pixels
            info = np.iinfo(inp["dtype"])
            image = np.clip(np.round(image / scale + zero), info.min, info.max)
        return image[None].astype(inp["dtype"])

    def classify(image):
        interpreter.set_tensor(inp["index"], image)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])[0]

    inputs = [to_input(image) for image in images]
    for i in range(config["warmup"]):
        classify(inputs[i % len(inputs)])
    raw = []
    latencies = []
    for i in range(max(len(inputs), config["runs"])):
        start = time.perf_counter()
        y = classify(inputs[i % len(inputs)])
        if i < config["runs"]:
            latencies.append((time.perf_counter() - start) * 1000)
        if i < len(inputs):
            raw.append(y)
    raw = np.stack(raw)
    scale, zero = out["quantization"]
    probabilities = (raw.astype(np.float32) - zero) * scale if scale else raw.astype(np.float32)
    modules = sorted(
        {
            name.split(".")[0]
            for name, m in sys.modules.items()
            if m is not None and name != __name__
        }
    )
    np.savez(
        result,
        probabilities=probabilities,
        latencies_ms=np.array(latencies),
        info=json.dumps(
            {
                "input_dtype": np.dtype(inp["dtype"]).name,
                "modules": modules,
                "input_quantization": [float(inp["quantization"][0]), int(inp["quantization"][1])],
            }
        ),
    )


if __name__ == "__main__":  # the worker: python -m tlcourse.lesson.ondevice REQUEST RESULT
    _block_tensorflow()
    _serve(sys.argv[1], sys.argv[2])
