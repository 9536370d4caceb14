"""Shared pieces of the head and fine-tuning sweeps (benchmarks/sweep_head.py, sweep_finetune.py).

Standalone on purpose: plain Keras, scikit-learn and scipy, no ``tlcourse`` import, so the
sweeps keep working while the package changes. A *split* is a folder with ``train/``,
``val/``, ``test/`` subfolders, one subfolder per class (what ``flowers_splits`` makes);
``--splits-root`` holds one such folder per split, named ``seed<S>``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

IMAGE_SIZE = (224, 224)
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "build" / "bench"
DEFAULT_SPLITS_ROOT = Path("/tmp/sweep/splits")


# ----------------------------------------------------------------------------- data

def split_dir(splits_root, seed: int) -> Path:
    path = Path(splits_root) / f"seed{seed}"
    for part in ("train", "val", "test"):
        if not (path / part).is_dir():
            sys.exit(f"split folder {path / part} is missing: make the splits first "
                     f"(see benchmarks/README.md) or pass --splits-root")
    return path


def load_folder(folder, batch_size: int = 64):
    """All photos of a class-per-folder directory as uint8 (N, 224, 224, 3), labels, names, paths.

    Read with ``keras.utils.image_dataset_from_directory`` (bilinear resize to 224x224, no
    shuffling), exactly what the notebooks do.
    """
    import keras

    ds = keras.utils.image_dataset_from_directory(
        str(folder), image_size=IMAGE_SIZE, batch_size=batch_size, label_mode="int",
        shuffle=False, verbose=False)
    xs, ys = [], []
    for x, y in ds:
        xs.append(np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8))
        ys.append(y.numpy())
    paths = [os.path.relpath(p, folder) for p in ds.file_paths]
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64), list(ds.class_names), paths


def load_split(splits_root, seed: int):
    root = split_dir(splits_root, seed)
    out = {}
    for part in ("train", "val", "test"):
        x, y, names, paths = load_folder(root / part)
        out[part] = (x, y, paths)
        out["class_names"] = names
    return out


# ----------------------------------------------------------------------------- models

def mobilenet_base():
    import keras

    return keras.applications.MobileNet(weights="imagenet", include_top=False,
                                        input_shape=IMAGE_SIZE + (3,))


def feature_extractor(base):
    """Raw RGB 0-255 -> Rescaling to [-1, 1] -> frozen MobileNet -> 1,024-d global average."""
    import keras

    base.trainable = False
    inputs = keras.Input(IMAGE_SIZE + (3,))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="extractor")


def augmentation_layers(kind: str, seed: int):
    """Augmentation as Keras preprocessing layers (identity at inference).

    none | flip | flipzoom (flip + zoom in 0-20 %) | course (flip + rotation +-45 deg + zoom in
    0-20 %: the lecture's ImageDataGenerator(horizontal_flip, rotation_range=45,
    zoom_range=[0.8, 1.0])) | mild (flip + rotation +-10 deg + zoom in 0-20 %).
    """
    import keras

    L = keras.layers
    flip = L.RandomFlip("horizontal", seed=seed)
    if kind == "none":
        return []
    if kind == "flip":
        return [flip]
    if kind == "flipzoom":
        return [flip, L.RandomZoom((-0.2, 0.0), fill_mode="nearest", seed=seed + 2)]
    if kind == "mild":
        return [flip, L.RandomRotation(10 / 360, fill_mode="nearest", seed=seed + 1),
                L.RandomZoom((-0.2, 0.0), fill_mode="nearest", seed=seed + 2)]
    if kind == "course":
        return [flip, L.RandomRotation(45 / 360, fill_mode="nearest", seed=seed + 1),
                L.RandomZoom((-0.2, 0.0), fill_mode="nearest", seed=seed + 2)]
    raise ValueError(f"unknown augmentation {kind!r}")


# ----------------------------------------------------------------------------- statistics

def wilson(k: int, n: int, z: float = 1.959963984540054):
    """95 % Wilson interval for k successes out of n."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def mcnemar(correct_a, correct_b):
    """Exact McNemar on paired correctness vectors: (a right & b wrong, a wrong & b right, p)."""
    from scipy.stats import binomtest

    a = np.asarray(correct_a, bool)
    b = np.asarray(correct_b, bool)
    n01 = int(np.sum(a & ~b))
    n10 = int(np.sum(~a & b))
    p = 1.0 if n01 + n10 == 0 else float(binomtest(n01, n01 + n10, 0.5).pvalue)
    return n01, n10, p


def mean_sd(values):
    v = np.asarray([x for x in values if x is not None], float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


# ----------------------------------------------------------------------------- bookkeeping

def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def append_jsonl(path, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_csv(path, rows: list[dict]) -> None:
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys and not isinstance(r[k], (list, dict)):
                keys.append(k)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) so far."""
    t = os.times()
    return t.user + t.system


def load_average() -> float:
    """1-minute load average: how busy the machine was (others' jobs included)."""
    return os.getloadavg()[0]


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def argument_parser(doc: str):
    """Both sweeps' command line: ``--splits-root``, ``--out``, then one sub-command; (parser, subparsers)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--splits-root", default=str(DEFAULT_SPLITS_ROOT),
                   help="folder with seed<S>/{train,val,test} (default %(default)s)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results folder (default %(default)s)")
    return p, p.add_subparsers(dest="command", required=True)
