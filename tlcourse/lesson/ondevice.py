"""Run a ``.tflite`` model as a phone app does (08): LiteRT in a fresh process where TensorFlow
and Keras cannot be imported, one photo per call (``set_tensor``, ``invoke``, ``get_tensor``),
each call timed by the wall clock after a few untimed warm-up calls."""
from __future__ import annotations

# Only the standard library and NumPy at module level: the worker process loads this file.
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCKED = ("tensorflow", "keras", "tf_keras")  # what a phone does not have
_WORKER = (  # loads this file by path, so the tlcourse package (which imports Keras) is never run
    "import importlib.util, sys; "
    "spec = importlib.util.spec_from_file_location('tlcourse_ondevice_worker', sys.argv[1]); "
    "module = sys.modules[spec.name] = importlib.util.module_from_spec(spec); "
    "spec.loader.exec_module(module); "
    "module._serve(sys.argv[2], sys.argv[3])"
)


@dataclass
class LiteRTRun:
    """What :func:`run_tflite` measured for one ``.tflite`` file at one thread count."""
    path: Path
    threads: int
    probabilities: np.ndarray  # (n_photos, n_classes), dequantised to [0, 1]
    latencies_ms: np.ndarray   # one per timed call, in milliseconds
    input_dtype: str           # "float32", or "uint8" for a full-integer model
    input_quantization: tuple  # (scale, zero point): pixel = scale * (q - zero); (0.0, 0) if float
    modules: list              # top-level packages the worker process had loaded

    @property
    def predictions(self) -> np.ndarray:
        """The predicted class of each photo."""
        return self.probabilities.argmax(axis=1)

    @property
    def tensorflow_loaded(self) -> bool:
        return any(name in self.modules for name in BLOCKED)


def run_tflite(model_path, images, threads: int = 1, runs: int | None = None, warmup: int = 3,
               timeout: float = 600) -> LiteRTRun:
    """Classify ``images`` (``(n, h, w, 3)`` raw pixels, 0-255) one at a time with LiteRT in a process
    without TensorFlow; ``runs`` calls timed (default one per photo) after ``warmup`` untimed ones."""
    from .errors import TLCourseError

    path = Path(model_path)
    if not path.is_file():
        raise TLCourseError(f"No model file at {path}: export it first (notebook 08).")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch (n, height, width, channels), "
                         f"got shape {images.shape}")
    runs = len(images) if runs is None else int(runs)
    with tempfile.TemporaryDirectory(prefix="litert-") as tmp:
        request, result = Path(tmp) / "request.npz", Path(tmp) / "result.npz"
        np.savez(request, images=images, config=json.dumps(
            {"model": str(path.resolve()), "threads": int(threads), "runs": runs,
             "warmup": int(warmup)}))
        try:
            done = subprocess.run([sys.executable, "-c", _WORKER, __file__, str(request), str(result)],
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise TLCourseError(f"LiteRT did not finish {path.name} within {timeout:.0f} s.") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise TLCourseError(f"LiteRT could not run {path}: {last}\n"
                                "Is ai-edge-litert installed (`pip install ai-edge-litert`)?")
        with np.load(result) as out:
            info = json.loads(str(out["info"]))
            return LiteRTRun(path=path, threads=int(threads), probabilities=out["probabilities"],
                             latencies_ms=out["latencies_ms"], input_dtype=info["input_dtype"],
                             input_quantization=tuple(info["input_quantization"]),
                             modules=info["modules"])


# ----------------------------------------------------------------------------- the worker

def _block_tensorflow() -> None:
    """Make ``import tensorflow`` (and Keras) fail in this process, as on a phone."""
    for name in BLOCKED:
        sys.modules[name] = None  # Python's documented way to make an import raise ImportError


def _serve(request: str, result: str) -> None:
    """The worker process: run the request with LiteRT, write probabilities and latencies."""
    _block_tensorflow()
    from ai_edge_litert.interpreter import Interpreter

    with np.load(request) as req:
        images, config = req["images"], json.loads(str(req["config"]))
    interpreter = Interpreter(model_path=config["model"], num_threads=config["threads"])
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"],
                                    [1, *images.shape[1:]])
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def to_input(image):
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
    raw, latencies = [], []
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
    modules = sorted({name.split(".")[0] for name, m in sys.modules.items()
                      if m is not None and name != __name__})
    np.savez(result, probabilities=probabilities, latencies_ms=np.array(latencies),
             info=json.dumps({"input_dtype": np.dtype(inp["dtype"]).name, "modules": modules,
                              "input_quantization": [float(inp["quantization"][0]),
                                                     int(inp["quantization"][1])]}))
