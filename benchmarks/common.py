"""What the sweeps share: splits made by the package, records that say where they came from.

Sweeps choose on the validation photos of splits other than the course's own (seed 42, whose
test photos report the notebooks' numbers), so no choice is made on a test photo the course
reports. Records go to ``build/bench/*.jsonl``, each with the TensorFlow and Keras versions, the
git commit and the CPU model.
"""

import json
import platform
import subprocess
from pathlib import Path

import pandas as pd

from tlcourse.lesson.config import project_root

COURSE_SEED = 42
OUT = project_root() / "build" / "bench"


def split(seed: int, per_class: int = 200):
    """The flowers split ``seed`` (provisioned if missing); refuses the course's own split."""
    from tlcourse.course.flowers import make_splits

    if seed == COURSE_SEED:
        raise SystemExit(f"seed {COURSE_SEED} is the course's own split: sweep on other seeds")
    return make_splits(seed=seed, per_class=per_class)


def environment() -> dict:
    """TensorFlow and Keras versions, the git commit and the CPU model of this run."""
    import keras
    import tensorflow as tf

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=project_root(),
    ).stdout.strip()
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "commit": commit, "cpu": cpu}


def append(name: str, record: dict) -> None:
    """Add ``record`` (with :func:`environment`) as one line of ``build/bench/<name>``."""
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / name, "a") as f:
        f.write(json.dumps({**record, **environment()}) + "\n")


def records(name: str) -> pd.DataFrame:
    """Every record of ``build/bench/<name>``."""
    path = OUT / name
    lines = path.read_text().splitlines() if path.exists() else []
    return pd.DataFrame([json.loads(line) for line in lines if line.strip()])


def report(name: str, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Mean and standard deviation of ``columns`` per configuration ``by``, over all runs."""
    table = records(name).groupby(by)[columns].agg(["mean", "std", "count"]).round(3)
    print(table.to_string())
    return table
