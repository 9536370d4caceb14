"""One run of the course's notebooks, shared by every check in a test session.

Each notebook is executed once, in fast mode, with the lecture build's own executor
(:func:`tlcourse.course.build.execute`), into one temporary build folder, so that 05 and 08 find
what 04 and 05 saved whatever ``-k`` selects. While its kernel still runs, every catalogued wrong
answer replaces its exercise's solution in turn and the exercise's graded tests run on it.

Under pytest-xdist the workers share that folder: the first worker to need a notebook runs it,
holding the notebook's lock, and records the run there (``<build>/course-run/<notebook>.pickle``);
a worker that needs it later, or while it runs, waits for the lock and reads the record. The
first worker to ask for the run also runs the notebooks ahead of its tests, in a thread of its
own for each chain (:meth:`CourseRun.prefetch`: 04, 05, 08 in one, 03, 07 in the other, both
from the start): the tests walk the notebooks from 00 on, so they meet in the middle instead of
waiting at every notebook, while another worker is in the hub's long class test.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient.exceptions import CellExecutionError
from wrong_answers import WRONG_ANSWERS

from tlcourse.course import build, homework
from tlcourse.lesson.config import atomic_write


def exercises(nb) -> list[tuple[object, list]]:
    """Each autograded code exercise of ``nb``.

    Its solution cell and the graded test cells after it (up to the next solution cell).
    """
    found = []
    for cell in nb.cells:
        meta = homework.nbgrader_meta(cell)
        if meta.get("solution") and cell.cell_type == "code":
            found.append((cell, []))
        elif meta.get("grade") and cell.cell_type == "code" and found:
            found[-1][1].append(cell)
    return [(solution, tests) for solution, tests in found if tests]


@dataclass
class WrongAnswer:
    """One catalogued wrong answer, run in the notebook's kernel: did a graded test fail?"""

    grade_id: str
    what: str
    caught: bool
    failed_tests: list = field(default_factory=list)


@dataclass
class NotebookRun:
    """One notebook of the course run: the executed notebook and what the wrong answers did."""

    stem: str
    executed: build.Executed
    wrong_answers: list[WrongAnswer]


def try_wrong_answers(client, nb) -> list[WrongAnswer]:
    """Run every catalogued wrong answer in the live kernel; return what each did.

    Each replaces its exercise's solution, the exercise's graded tests run on it, and the solution
    is put back.
    """
    tried = []
    for solution, tests in exercises(nb):
        gid = homework.nbgrader_meta(solution)["grade_id"]
        original = solution.source
        one_cell = nbformat.v4.new_notebook(cells=[solution])
        for what, code in WRONG_ANSWERS.get(gid, []):
            solution.source = homework.fill(one_cell, one_cell, {gid: code}).cells[0].source
            client.execute_cell(solution, nb.cells.index(solution))
            failed = []
            for test in tests:
                try:
                    client.execute_cell(test, nb.cells.index(test))
                except CellExecutionError:
                    failed.append(homework.nbgrader_meta(test)["grade_id"])
            tried.append(WrongAnswer(gid, what, bool(failed), failed))
            solution.source = original
            client.execute_cell(solution, nb.cells.index(solution))
    return tried


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on the file ``path`` (created if missing), across processes."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class CourseRun:
    """The notebooks executed on demand, each once, into ``build``; see the module's docstring."""

    def __init__(self, build_folder: Path):
        self.build = Path(build_folder)
        self.records = self.build / "course-run"
        self.records.mkdir(parents=True, exist_ok=True)
        self.runs: dict[str, NotebookRun] = {}
        self._ahead: list[threading.Thread] = []
        # the session's environment, read now: a notebook run ahead in a thread must not see what
        # a test running meanwhile sets with monkeypatch (TLCOURSE_DATA, TLCOURSE_BUILD ...)
        self.environ = dict(os.environ)

    def kernel_env(self) -> dict:
        """The kernels' environment.

        Fast mode, this run's build folder, and no ``PYTEST_CURRENT_TEST`` (with it, ipykernel hides
        what C++ code writes to stderr, which a student sees).
        """
        env = dict(self.environ, TLCOURSE_FAST="1", TLCOURSE_BUILD=str(self.build))
        env.pop("PYTEST_CURRENT_TEST", None)
        env.pop("TLCOURSE_REUSE", None)  # the course run computes everything
        return env

    def get(self, name: str) -> NotebookRun:
        """The run of the notebook whose name starts with ``name``, after those it needs."""
        (path,) = build.notebooks([name])
        if path.stem not in self.runs:
            for needed in build.needs(path):
                self.get(needed)
            record = self.records / f"{path.stem}.pickle"
            with locked(self.records / f"{path.stem}.lock"):
                if not record.is_file():
                    run, row = self._execute(path)
                    with atomic_write(record) as tmp:
                        tmp.write_bytes(pickle.dumps((run, row)))
                    with locked(self.records / "summary.lock"):
                        build.write_summary([row], self.build)
                self.runs[path.stem], _ = pickle.loads(record.read_bytes())
        return self.runs[path.stem]

    def provide_needs(self, path: Path, into: Path) -> None:
        """Give the build folder ``into`` what ``path`` needs, as this run saved it.

        The notebooks ``path`` needs are run here first (05 reads 04's model, 08 reads 05's), and
        this run's ``models`` and ``results`` are copied into ``into``: a kernel building there
        finds them whichever worker ran those notebooks, and whatever ``-k`` selected.
        """
        if not build.needs(path):
            return
        for needed in build.needs(path):
            self.get(needed)
        for folder in ("models", "results"):
            if (self.build / folder).is_dir():
                shutil.copytree(self.build / folder, into / folder, dirs_exist_ok=True)

    def _execute(self, path: Path) -> tuple[NotebookRun, dict]:
        """Execute ``path`` into the build, wrong answers tried; the run and its summary row."""
        wrong: list[WrongAnswer] = []

        def then(client, nb):
            wrong.extend(try_wrong_answers(client, nb))

        start = time.perf_counter()
        executed = build.execute(
            path, self.build, env=self.kernel_env(), then=then, html=False, timeout=600
        )
        row = build.summary_row(path, executed, self.build)
        row["seconds_with_wrong_answers"] = round(time.perf_counter() - start)
        return NotebookRun(path.stem, executed, wrong), row

    def claim(self, role: str) -> bool:
        """True for the first process of the session to claim ``role``, False for every other."""
        try:
            os.close(os.open(self.records / f"{role}.claimed", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return False
        return True

    def prefetch(self, *queues: list[str]) -> None:
        """Run the notebooks of each queue, in order, as :meth:`get` does: a thread per queue.

        A notebook that fails there is reported in one line; the test that needs it runs it again.
        """

        def run(names):
            for name in names:
                try:
                    self.get(name)
                except Exception as exc:  # noqa: BLE001 - reported, and retried by the test
                    print(f"course run: running {name} ahead failed: {exc}", file=sys.stderr)

        for i, names in enumerate(queues):
            thread = threading.Thread(
                target=run, args=(names,), name=f"course-run-ahead-{i}", daemon=True
            )
            thread.start()
            self._ahead.append(thread)

    def close(self) -> None:
        """Wait for the notebooks being run ahead (their kernels end with them)."""
        for thread in self._ahead:
            thread.join()

    def all(self) -> list[NotebookRun]:
        """Every notebook of the course, run."""
        return [self.get(path.stem) for path in build.notebooks()]
