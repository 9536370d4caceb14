"""Headline numbers: each notebook records what it measured, ``make run`` summarises.

A notebook calls ``record("01_imagenet_inference", top1=0.85)``; the numbers
land in ``build/results/<notebook>.json`` together with the kernel's peak
resident memory, and ``python -m tlcourse.build`` prints them in its summary.
"""
from __future__ import annotations

import json
import resource
import sys

from .config import build_dir


def peak_memory_mib() -> float:
    """Peak resident memory of this process (the notebook's kernel) in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def record(notebook: str, **numbers) -> dict:
    """Merge ``numbers`` into ``build/results/<notebook>.json`` and return all of them.

    Values must be JSON-serialisable (floats, ints, strings, small lists).
    The kernel's peak memory so far is added as ``peak_memory_mib``.
    """
    path = build_dir("results") / f"{notebook}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results.update(numbers)
    results["peak_memory_mib"] = round(peak_memory_mib(), 1)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True))
    tmp.replace(path)
    return results


def load_results(notebook: str) -> dict:
    """The numbers a notebook recorded (empty when it has not run)."""
    path = build_dir("results") / f"{notebook}.json"
    return json.loads(path.read_text()) if path.exists() else {}
