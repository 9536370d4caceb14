"""Homework versions of the notebooks, made by nbgrader (``make homework``).

The source notebooks in ``notebooks/`` carry graded exercises in nbgrader's
format: solution code between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
in cells marked as solutions, autograded test cells of plain asserts with
hidden tests between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``,
and nbgrader's cell metadata (grade ids, points). This module

- checks those markers (:func:`check_notebook`),
- drives nbgrader's own ``generate_assignment`` to write the student versions
  into ``build/release/<notebook>/`` (one assignment per notebook), and
- writes the instructor versions, outputs cleared, to ``build/instructor/``.

    python -m tlcourse.course.homework
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..lesson.config import build_dir
from .build import notebooks as source_notebooks

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def graded_cells(nb) -> list:
    """Autograded test cells (``grade: true`` with points)."""
    return [c for c in nb.cells if nbgrader_meta(c).get("grade")]


def solution_cells(nb) -> list:
    return [c for c in nb.cells if nbgrader_meta(c).get("solution")]


def _regions(source: str, begin: str, end: str) -> list[list[str]]:
    """The lines between each pair of markers; raises ValueError on unbalanced markers."""
    regions, current = [], None
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == begin:
            if current is not None:
                raise ValueError(f"nested {begin!r}")
            current = []
        elif stripped == end:
            if current is None:
                raise ValueError(f"{end!r} without {begin!r}")
            regions.append(current)
            current = None
        elif current is not None:
            current.append(line)
    if current is not None:
        raise ValueError(f"{begin!r} without {end!r}")
    return regions


def solution_lines(nb) -> list[str]:
    """Every non-blank line of every solution region (stripped)."""
    return [line.strip() for c in nb.cells if c.cell_type == "code"
            for region in _regions(c.source, BEGIN_SOLUTION, END_SOLUTION)
            for line in region if line.strip()]


def hidden_test_lines(nb) -> list[str]:
    return [line.strip() for c in nb.cells if c.cell_type == "code"
            for region in _regions(c.source, BEGIN_HIDDEN, END_HIDDEN)
            for line in region if line.strip()]


def public_lines(nb) -> set[str]:
    """Every non-blank line (stripped) that stands outside the solution and hidden-test regions."""
    out = set()
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped in (BEGIN_SOLUTION, BEGIN_HIDDEN):
                inside = True
            elif stripped in (END_SOLUTION, END_HIDDEN):
                inside = False
            elif stripped and not inside:
                out.add(stripped)
    return out


def check_notebook(nb, name: str = "notebook") -> list[str]:
    """Problems with a source notebook's exercises (empty list: all is well).

    Markers balanced; solution regions only in solution cells, hidden tests only
    in graded cells; every graded cell has points and a unique grade id; at
    least one exercise.
    """
    problems, ids = [], set()
    for i, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        where = f"{name} cell {i}"
        sols, hidden = [], []
        try:
            sols = _regions(cell.source, BEGIN_SOLUTION, END_SOLUTION)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            sols = [[]]  # markers are there, if broken
        try:
            hidden = _regions(cell.source, BEGIN_HIDDEN, END_HIDDEN)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
        if sols and not meta.get("solution"):
            problems.append(f"{where}: solution markers in a cell not marked as a solution")
        if hidden and not meta.get("grade"):
            problems.append(f"{where}: hidden tests in a cell that is not graded")
        if meta:
            gid = meta.get("grade_id")
            if not gid or not re.fullmatch(r"[A-Za-z0-9_-]+", gid):
                problems.append(f"{where}: grade_id {gid!r} missing or not [A-Za-z0-9_-]")
            elif gid in ids:
                problems.append(f"{where}: grade_id {gid!r} used twice")
            ids.add(gid)
            if meta.get("schema_version") != 3:
                problems.append(f"{where}: nbgrader schema_version must be 3")
        if meta.get("grade") and not (isinstance(meta.get("points"), (int, float)) and meta["points"] > 0):
            problems.append(f"{where}: graded cell without positive points")
        if meta.get("solution") and cell.cell_type == "code" and not sols:
            problems.append(f"{where}: solution cell without {BEGIN_SOLUTION!r}")
    if not graded_cells(nb):
        problems.append(f"{name}: no graded exercise")
    return problems


def _nbgrader_config(root: Path):
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = "tlcourse"
    c.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__"]
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    return c


def generate_student_versions(out_dir: Path | None = None, notebooks=None, verbose: bool = True) -> list[Path]:
    """Run nbgrader's ``generate_assignment`` on each notebook with exercises.

    Each notebook is its own assignment (``build/release/<stem>/<stem>.ipynb``):
    solutions replaced by ``# YOUR CODE HERE``, hidden tests removed, outputs
    cleared, graded cells locked and checksummed. Returns the student notebooks.
    """
    import nbformat
    from nbgrader.apps import NbGraderAPI

    out_dir = Path(out_dir) if out_dir else build_dir("release")
    notebooks = [Path(p) for p in (notebooks or source_notebooks())]
    written = []
    with tempfile.TemporaryDirectory(prefix="tlcourse-nbgrader-") as tmp:
        root = Path(tmp)
        for nb_path in notebooks:
            nb = nbformat.read(nb_path, as_version=4)
            if not graded_cells(nb):
                continue
            problems = check_notebook(nb, nb_path.name)
            if problems:
                raise ValueError("; ".join(problems))
            (root / "source" / nb_path.stem).mkdir(parents=True)
            shutil.copy(nb_path, root / "source" / nb_path.stem / nb_path.name)
        # nbgrader runs the `alembic` command of its own environment to set up its gradebook
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
        api = NbGraderAPI(config=_nbgrader_config(root))
        for folder in sorted((root / "source").iterdir()):
            result = api.generate_assignment(folder.name, force=True, create=True)
            if not result["success"]:
                raise RuntimeError(f"nbgrader generate_assignment {folder.name} failed:\n"
                                   f"{result.get('error') or result.get('log')}")
            dest = out_dir / folder.name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(root / "release" / folder.name, dest)
            written.extend(sorted(dest.glob("*.ipynb")))
            if verbose:
                print(f"  student version: {dest.relative_to(out_dir.parent)}")
    return written


def write_instructor_versions(out_dir: Path | None = None, notebooks=None) -> list[Path]:
    """The source notebooks (solutions, hidden tests) with every output cleared."""
    import nbformat

    out_dir = Path(out_dir) if out_dir else build_dir("instructor")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for nb_path in notebooks or source_notebooks():
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, out_dir / Path(nb_path).name)
        written.append(out_dir / Path(nb_path).name)
    return written


def main() -> int:
    start = time.perf_counter()
    print("Generating homework with nbgrader")
    students = generate_student_versions()
    instructors = write_instructor_versions()
    counts = {}
    import nbformat
    for path in source_notebooks():
        counts[path.stem] = len(graded_cells(nbformat.read(path, as_version=4)))
    print(f"\n{len(students)} student notebooks in build/release/, "
          f"{len(instructors)} instructor notebooks in build/instructor/ "
          f"({time.perf_counter() - start:.1f} s)")
    for name, n in counts.items():
        print(f"  {name:34s} {n} graded test cell{'s' if n != 1 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
