"""The fast-mode switch, seeds, where files live, and TensorFlow set up quietly (every notebook)."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

FAST_ENV = "TLCOURSE_FAST"


def fast_mode() -> bool:
    """True when ``TLCOURSE_FAST`` is 1/true/yes: small data, few epochs (CI); else full mode."""
    value = os.environ.get(FAST_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{FAST_ENV}={value!r}: use 1 (fast, for CI) or 0 (full, for a course).")


def quiet_tensorflow() -> None:
    """Import TensorFlow once, quietly, before a notebook's own ``import keras``.

    TensorFlow 2.21 writes C++ start-up lines (oneDNN, CUDA probing) to file descriptor 2 whatever
    ``TF_CPP_MIN_LOG_LEVEL`` says, and a notebook shows them in red: they are muted while it loads
    and probes its devices. Its Python logger is set to show errors only, and Keras's warning that
    ``fit``'s default ``shuffle=True`` is ignored for a ``tf.data.Dataset`` (which shuffles itself)
    is filtered. Errors still show. ``tl.<name>`` calls this before loading any lesson module.
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with native_stderr_muted():
            import tensorflow as tf

            tf.config.list_physical_devices()
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings(
        "ignore", message=r"`shuffle=True` was passed, but will be ignored", module="keras"
    )


def pick(full, fast):
    """``fast`` in fast mode, ``full`` otherwise: ``EPOCHS = pick(full=10, fast=2)``."""
    return fast if fast_mode() else full


def set_seed(seed: int = 42) -> int:
    """Seed Python, NumPy and Keras (hence TensorFlow) in one call; returns the seed."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    import keras

    keras.utils.set_random_seed(seed)
    return seed


def project_root() -> Path:
    """The folder holding ``notebooks/`` and ``data/``.

    That is the checkout the package was installed from (editable), else the nearest folder at
    or above the current one that holds both (a non-editable install, run from the course's
    folder), else the current folder.
    """
    here = Path(__file__).resolve().parents[2]
    if (here / "notebooks").is_dir():
        return here
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / "notebooks").is_dir() and (folder / "data").is_dir():
            return folder
    return cwd


def data_dir() -> Path:
    """Provisioned data (``data/``, or ``TLCOURSE_DATA``)."""
    path = Path(os.environ.get("TLCOURSE_DATA") or project_root() / "data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_dir(*parts: str) -> Path:
    """Where this run writes:

    ``build/`` in full mode, ``build-fast/`` in fast mode, or ``TLCOURSE_BUILD`` (tests, a hub's
    home folder).

    A fast run never overwrites the lecture build. ``parts``: a folder inside it, created.
    """
    override = os.environ.get("TLCOURSE_BUILD")
    root = (
        Path(override) if override else project_root() / ("build-fast" if fast_mode() else "build")
    )
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_write(dest):
    """Yield a temporary path beside ``dest`` (same suffix) to write to.

    It becomes ``dest`` only if the block finishes, so a crash never leaves a half-written file
    where it will be trusted.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{dest.stem}.", suffix=f".part{dest.suffix}", dir=dest.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def native_stderr_muted():
    """Mute what compiled code writes to file descriptor 2 inside the block.

    That is TensorFlow's C++ start-up lines and the TFLite converter's progress; Python exceptions
    still show, printed after the block.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
