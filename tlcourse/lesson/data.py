"""The flowers as train / validation / test folders, and the course's augmentation (03-05).

``make setup`` provisions the folders (clean images only); a lesson reads them with
``keras.utils.image_dataset_from_directory``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .config import data_dir, pick
from .errors import TLCourseError

SPLITS = ("train", "val", "test")


def split_name(seed: int, per_class: int) -> str:
    """The split folder's name under ``data/splits/``: ``seed42-n200``."""
    return f"seed{seed}-n{per_class}"


@dataclass
class Splits:
    """Where the split folders are (``root/{train,val,test}/<class>/``) and what they hold."""

    root: Path
    class_names: list
    counts: dict  # split -> class -> photos

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def val_dir(self) -> Path:
        return self.root / "val"

    @property
    def test_dir(self) -> Path:
        return self.root / "test"

    @property
    def sizes(self) -> dict:
        """Photos per split: ``{"train": 800, "val": 100, "test": 100}``."""
        return {s: sum(self.counts[s].values()) for s in SPLITS}

    def table(self):
        """Photos per class and split, with totals, as a pandas DataFrame."""
        import pandas as pd

        table = pd.DataFrame(self.counts).loc[self.class_names, list(SPLITS)]
        table["total"] = table.sum(axis=1)
        table.loc["total"] = table.sum()
        return table


def flowers_splits(per_class: int | None = None, seed: int = 42) -> Splits:
    """The provisioned flowers split.

    Per class, ``per_class`` photos cut 80/10/10 into train, validation and test (seeded,
    stratified); with the full archive in full mode the test folder also takes every photo left
    over. ``per_class`` defaults to ``pick(200, 40)``.
    """
    per_class = pick(full=200, fast=40) if per_class is None else per_class
    root = data_dir() / "splits" / split_name(seed, per_class)
    try:
        info = json.loads((root / "split.json").read_text())
    except (OSError, ValueError):
        raise TLCourseError(
            f"The flowers split {root} is missing or incomplete. Make it with `make setup` "
            f"(or `python -m tlcourse.course.provision --seed {seed} --per-class {per_class}`)."
        ) from None
    counts = {s: {c: len(names) for c, names in info["files"][s].items()} for s in SPLITS}
    return Splits(root=root, class_names=sorted(info["files"]["train"]), counts=counts)


def augmentation(seed: int = 42):
    """The lecture's data augmentation as Keras preprocessing layers, active only in training (03).

    The lecture's ``ImageDataGenerator(horizontal_flip=True, rotation_range=45,
    zoom_range=[0.8, 1.0])``: a random flip, rotation and zoom.
    """
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(45 / 360, fill_mode="nearest", seed=seed + 1),
            keras.layers.RandomZoom((-0.2, 0.0), fill_mode="nearest", seed=seed + 2),
        ],
        name="augmentation",
    )
