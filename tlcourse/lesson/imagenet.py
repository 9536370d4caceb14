"""The lecture's ImageNet helpers (01-02): ``prepare_image``, its classifier, sample photos."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .config import data_dir
from .errors import TLCourseError

IMG_SIZE = 224


def prepare_image(img_path, img_size: int = IMG_SIZE) -> np.ndarray:
    """The lecture's ``prepare_image``: a photo as MobileNet's input.

    Returns an array of shape (1, size, size, 3), the pixels scaled from [0, 255] to [-1, 1] by
    ``preprocess_input``. A path that names no file, and a file that is not an image, each get
    their own plain error.
    """
    import keras
    from keras.applications.mobilenet import preprocess_input

    path = Path(img_path)
    if not path.is_file():
        raise TLCourseError(f"There is no file at {path}: check the path (and its folder).")
    try:
        img = keras.utils.load_img(path, target_size=(img_size, img_size))
    except Exception:  # PIL's UnidentifiedImageError, a truncated file, ...
        raise TLCourseError(
            f"{path.name} is not an image this course can read: use a JPEG or PNG photo."
        ) from None
    return preprocess_input(np.expand_dims(keras.utils.img_to_array(img), axis=0))


def classify(model, img_path, top: int = 5) -> list[tuple[str, str, float]]:
    """The lecture's ``mobileClassifier``:

    ``decode_predictions``' top ``top`` for one photo, as ``[(wnid, class name, probability),
    ...]``.
    """
    from keras.applications.imagenet_utils import decode_predictions

    predictions = model.predict(prepare_image(img_path), verbose=0)
    return [(w, label, float(p)) for w, label, p in decode_predictions(predictions, top=top)[0]]


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet class names ``decode_predictions`` uses, by index.

    Read from Keras's cached class index (``make setup`` puts it there; Keras downloads it where
    there is internet), hash-checked by ``keras.utils.get_file``.
    """
    import keras

    path = keras.utils.get_file(
        "imagenet_class_index.json",
        "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json",
        cache_subdir="models",
        file_hash="c2c37ea517e94d9795004a39431a14cb",
    )
    index = json.loads(Path(path).read_text())
    return [index[str(i)][1] for i in range(1000)]


def search_classes(word: str) -> list[tuple[int, str]]:
    """ImageNet classes with ``word`` as a whole word of their name (``yellow_lady's_slipper``)."""
    word = word.lower()
    return [(i, n) for i, n in enumerate(imagenet_class_names()) if word in n.lower().split("_")]


def sample_photos() -> dict[str, Path]:
    """Sample photos by name: ``{name: path}``.

    Photos that ship inside installed packages (scikit-image, scikit-learn, matplotlib), and the
    20 labelled ImageNet photos provisioning takes from foolbox (``foolbox_NN``).
    """
    import matplotlib.cbook
    import skimage.data
    import sklearn.datasets

    # the photos installed with scikit-image (skimage.data_dir may point at a download cache)
    skdata = Path(skimage.data.__file__).parent
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
    for photo in labelled_photos():
        photos[f"foolbox_{photo.stem.split('_')[1]}"] = photo
    return photos


def labelled_photos() -> list[Path]:
    """20 ImageNet validation photos named ``imagenet_NN_LABEL.jpg`` (LABEL: the true class)."""
    photos = sorted((data_dir() / "samples" / "foolbox").glob("imagenet_*.jpg"))
    if len(photos) != 20:
        folder = data_dir() / "samples" / "foolbox"
        raise TLCourseError(
            f"Expected 20 labelled photos in {folder}, found {len(photos)}: run `make setup`."
        )
    return photos


def true_label(photo) -> int:
    """The ImageNet class in a labelled photo's name (``imagenet_03_990.jpg`` -> 990)."""
    return int(re.match(r"imagenet_\d\d_(\d+)\.jpg$", Path(photo).name).group(1))
