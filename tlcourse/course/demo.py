"""The lecture demo (``make demo``): every notebook run again live, its long computations reused.

After a full ``make run``, each notebook is executed again in a fresh kernel, in full mode, into
``build-demo/`` (never over ``build/``), with ``TLCOURSE_REUSE`` pointing at the full run's saved
results (:mod:`tlcourse.lesson.reuse`): training, feature extraction and long predictions are
loaded instead of computed wherever their recipe, data and code are unchanged, and every cell
still runs. Then each notebook's recorded numbers are compared with the full run's.

    python -m tlcourse.course.demo [NOTEBOOK ...]
"""

import json
import os
import sys
import time
from pathlib import Path

from ..lesson.config import FAST_ENV, project_root
from ..lesson.errors import TLCourseError
from ..lesson.reuse import REUSE_ENV

#: Recorded numbers that are measurements of this run (time, memory), not results to match.
NOT_RESULTS = ("seconds", "memory", "per_s", "cpu", "speedup")


def results_of(build: Path, stem: str) -> dict:
    """A notebook's recorded numbers in ``build``, without its time and memory measurements."""
    path = build / "results" / f"{stem}.json"
    recorded = json.loads(path.read_text()) if path.exists() else {}
    return {k: v for k, v in recorded.items() if not any(word in k for word in NOT_RESULTS)}


def differences(full: dict, demo: dict) -> list[str]:
    """The recorded numbers on which the demo and the full run differ."""
    return [
        f"{key}: full run {full.get(key)!r}, demo {demo.get(key)!r}"
        for key in sorted(set(full) | set(demo))
        if full.get(key) != demo.get(key)
    ]


def main(argv=None) -> int:
    from . import build

    names = (argv if argv is not None else sys.argv[1:]) or None
    full = project_root() / "build"
    demo = project_root() / "build-demo"
    if not (full / "reuse").is_dir() or not list((full / "results").glob("*.json")):
        raise TLCourseError(
            f"No full run in {full} to reuse: run `make run` first (once, before the lecture)."
        )
    os.environ[FAST_ENV] = "0"
    os.environ[REUSE_ENV] = str(full / "reuse")
    os.environ["TLCOURSE_BUILD"] = str(demo)
    demo.mkdir(exist_ok=True)
    rows, start = [], time.perf_counter()
    for path in build.notebooks(names):
        print(f"running {path.name} live, reusing the full run's long computations ...", flush=True)
        run = build.execute(path, demo)
        mismatches = differences(results_of(full, path.stem), results_of(demo, path.stem))
        rows.append((path.stem, run.ok, run.seconds, mismatches))
        status = "same recorded numbers as the full run" if not mismatches else "DIFFERENT numbers"
        print(f"  {'ok' if run.ok else 'FAILED: ' + run.error} in {run.seconds:.0f} s; {status}")
        for line in mismatches[:5]:
            print(f"    {line}")
    total = time.perf_counter() - start
    print(f"\nThe demo: {len(rows)} notebooks in {total:.0f} s, into {demo}")
    return 0 if rows and all(ok and not mismatches for _, ok, _, mismatches in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TLCourseError as exc:
        print(f"\nThe demo did not run: {exc}", file=sys.stderr)
        sys.exit(1)
