"""A lecture demo in a lecture slot: long computations reused from the full run (``make demo``).

Every run of the course saves the result of each long computation (training, feature extraction,
predictions on thousands of photos) in ``<build>/reuse/``, under a digest of what made it: the
computation's name and code, the recipe's parameters, the data it read, the package's version and
the mode. A lecturer's ``make demo`` sets ``TLCOURSE_REUSE`` to the full run's folder: a result
whose digest matches is loaded instead of computed, and anything changed (a parameter, a photo, a
line of the code) is computed again. Without ``TLCOURSE_REUSE`` (students, homework, tests)
everything is computed, as always; each call says in one line which happened.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
import re
import time
from pathlib import Path

import numpy as np

from .config import atomic_write, build_dir, fast_mode

REUSE_ENV = "TLCOURSE_REUSE"


def fingerprint(value) -> str:
    """A stable text for ``value`` to hash: parameters as JSON, arrays and files by content.

    A :class:`tlcourse.lesson.data.Splits` (or anything with a ``root`` holding ``split.json``)
    stands for the photos its ``split.json`` lists.
    """
    if isinstance(value, np.ndarray):
        return f"array:{value.dtype}:{value.shape}:{hashlib.sha256(value.tobytes()).hexdigest()}"
    if hasattr(value, "root") and (Path(value.root) / "split.json").is_file():
        return "split:" + hashlib.sha256((Path(value.root) / "split.json").read_bytes()).hexdigest()
    if isinstance(value, Path):
        return (
            "file:" + hashlib.sha256(value.read_bytes()).hexdigest()
            if value.is_file()
            else str(value)
        )
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{fingerprint(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(fingerprint(v) for v in value) + "]"
    return json.dumps(value, default=str)


def digest(name: str, compute, key: dict) -> str:
    """The digest a result is saved under: name, ``compute``'s source, ``key``, version, mode."""
    from .. import __version__

    target = getattr(compute, "func", compute)  # a functools.partial: the function it calls
    try:
        code = inspect.getsource(target)
    except (OSError, TypeError):  # a lambda typed at a prompt, a builtin
        code = getattr(target, "__qualname__", repr(target))
    code += repr(getattr(compute, "args", ()))
    text = "\n".join([name, code, fingerprint(key), __version__, f"fast={fast_mode()}"])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reuse(name: str, compute, **key):
    """``compute()``'s result; in a lecture demo, the full run's saved result with the same digest.

    ``name``: what is computed (``"03-scratch"``); ``key``: what the result depends on besides
    ``compute``'s code (the recipe's parameters, the data: a split, arrays, files). The result
    must pickle (arrays, numbers, dicts: ``model.get_weights()``, ``history.history``).
    """
    label = digest(name, compute, key)
    source = os.environ.get(REUSE_ENV, "").strip()
    file_name = re.sub(r"[^\w.-]+", "-", f"{name}-{label}") + ".pkl"  # "/" or spaces in a name
    saved = Path(source) / file_name if source else None
    if saved is not None and saved.is_file():
        with open(saved, "rb") as f:
            result = pickle.load(f)
        print(
            f"[{name}: reused from the full run ({saved.parent}); nothing was trained or computed]"
        )
        return result
    start = time.perf_counter()
    result = compute()
    seconds = time.perf_counter() - start
    with atomic_write(build_dir("reuse") / file_name) as tmp, open(tmp, "wb") as f:
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
    if source:
        print(
            f"[{name}: computed ({seconds:.0f} s): the full run saved no result with this recipe]"
        )
    return result
