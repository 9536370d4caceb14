"""Course-wide settings: the fast-mode switch, seeds and project paths.

Every notebook reads fast mode through :func:`fast_mode` (one switch,
``TLCOURSE_FAST=1``) and seeds through :func:`set_seed`.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

FAST_ENV = "TLCOURSE_FAST"


def fast_mode() -> bool:
    """True when ``TLCOURSE_FAST`` is set to 1/true/yes: small data, few epochs (CI).

    Full mode (unset or 0) is what a course runs. Both teach the same thing.
    """
    value = os.environ.get(FAST_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{FAST_ENV}={value!r}: use 1 (fast, for CI) or 0 (full, for a course).")


def pick(full, fast):
    """``fast`` in fast mode, ``full`` otherwise: ``EPOCHS = pick(full=10, fast=2)``."""
    return fast if fast_mode() else full


def set_seed(seed: int = 42) -> int:
    """Seed Python, NumPy and TensorFlow/Keras in one call; returns the seed."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import keras
    except ImportError:  # numpy-only use of the package
        return seed
    keras.utils.set_random_seed(seed)
    return seed


def project_root() -> Path:
    """The folder that holds ``notebooks/``, ``tlcourse/`` and ``data/``."""
    here = Path(__file__).resolve().parents[1]
    if (here / "notebooks").is_dir():
        return here
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / "notebooks").is_dir() and (folder / "data").is_dir():
            return folder
    return cwd


def data_dir() -> Path:
    """Where provisioned data lands (``data/``, git-ignored but its README)."""
    path = Path(os.environ.get("TLCOURSE_DATA", project_root() / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_dir(*parts: str) -> Path:
    """``build/`` (executed notebooks, HTML, saved models), created on demand."""
    path = project_root().joinpath("build", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
