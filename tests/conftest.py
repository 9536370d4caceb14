"""Shared fixtures: an isolated data folder, the mini flowers archive, and one run of the course.

Every test (the notebook kernels included) writes its build output to a temporary folder:
``TLCOURSE_BUILD`` is set here, before any kernel starts, so the lecture build (``build/``) and
fast mode's ``build-fast/`` are never touched by ``make test``.

``course_run`` executes each notebook once per test session (the xdist workers share it), in fast
mode, into one temporary build folder; the checks on notebooks (errors, the outputs nbval
compares, the catalogued wrong answers, the browser, the site) all read that run.
``make test-all`` (``pytest --full``) adds the checks that execute the notebooks again on their
own (nbval, Run All in JupyterLab, nbgrader on every notebook).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TLCOURSE_BUILD", tempfile.mkdtemp(prefix="tlcourse-test-build-"))

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MINI_ARCHIVE = PROJECT_ROOT.parent / "shared" / "data" / "flower_photos_mini.tgz"

# Under pytest-xdist, the workers share the machine's cores: TensorFlow in each worker, and in
# every kernel a worker starts (they inherit this environment), runs on one thread, so that two
# of them do not fight over the same cores.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        help="also run the checks marked 'full' (make test-all), which execute notebooks again",
    )


def pytest_collection_modifyitems(config, items):
    """Without ``--full``, leave out the tests marked ``full`` (deselected, not skipped).

    The tests marked ``long`` go first: under ``--dist worksteal`` the worker given the first share
    starts them at once, and the other workers (their own shares, the notebooks run ahead, then
    what they take from that worker's queue) keep the cores busy meanwhile. Left for last, the
    hub's class test ran minutes alone on one core.
    """
    if not config.getoption("--full"):
        left_out = [item for item in items if item.get_closest_marker("full") is not None]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if item.get_closest_marker("full") is None]
    items.sort(key=lambda item: item.get_closest_marker("long") is None)  # stable: else as found


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    """A fresh ``TLCOURSE_DATA`` folder, with ``TLCOURSE_FLOWERS`` unset.

    The real ``data/`` cache is never touched.
    """
    home = tmp_path / "data_home"
    home.mkdir()
    monkeypatch.setenv("TLCOURSE_DATA", str(home))
    monkeypatch.delenv("TLCOURSE_FLOWERS", raising=False)
    return home


@pytest.fixture
def mini_archive() -> Path:
    """``../shared/data/flower_photos_mini.tgz`` (1,000 photos); skips when absent."""
    if not MINI_ARCHIVE.is_file():
        pytest.skip(f"{MINI_ARCHIVE} not found")
    return MINI_ARCHIVE


@pytest.fixture(scope="session")
def course_run(tmp_path_factory):
    """The course's notebooks, each executed once in this session (fast mode), on demand.

    ``course_run.get("05")`` runs notebook 05 (after what it needs: 04) and returns how it went;
    ``course_run.build`` is the run's build folder.
    """
    from course_run import CourseRun

    from tlcourse.course import build

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield CourseRun(tmp_path_factory.mktemp("course-run") / "build")
        return
    # every worker's temporary folder lies in this run's own one: the workers share the run
    run = CourseRun(tmp_path_factory.getbasetemp().parent / "course-run" / "build")
    if run.claim("run-ahead"):
        # The first worker to ask runs the chains ahead, each in a thread of its own from the
        # start (04, 05, 08 and 03, 07: the longest runs), then the rest last first; the tests,
        # from 00 on, meet them in the middle.
        notebooks = build.notebooks()
        chained = [p for p in notebooks if build.needs(p)]
        ends = [p.stem for p in chained if not any(p.stem in build.needs(q) for q in chained)]
        rest = [p.stem for p in reversed(notebooks) if p.stem not in ends]
        queues = [[end] for end in ends] or [[]]  # no notebook needs another: one queue
        queues[-1] += rest
        run.prefetch(*queues)
    yield run
    run.close()
