"""Headline numbers: each notebook records what it measured; ``make run`` summarises them."""

from __future__ import annotations

import json
import resource
import sys

from .config import atomic_write, build_dir


def peak_memory_mib() -> float:
    """Peak resident memory of this process (the notebook's kernel), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def record(notebook: str, **numbers):
    """Merge ``numbers`` into ``<build>/results/<notebook>.json`` with the kernel's peak memory.

    Values must be JSON-serialisable. Returns the numbers as a one-column pandas table.
    """
    import pandas as pd

    path = build_dir("results") / f"{notebook}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results.update(numbers)
    results["peak_memory_mib"] = round(peak_memory_mib(), 1)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(results, indent=2, sort_keys=True))
    shown = {k: v for k, v in results.items() if not isinstance(v, (dict, list))}
    return pd.DataFrame({"value": pd.Series(shown, dtype=object)}).rename_axis(
        f"{notebook}: recorded"
    )
