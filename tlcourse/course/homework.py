"""Homework with nbgrader, end to end (``make homework``).

The source notebooks carry exercises in nbgrader's format: solutions between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` in solution cells (code, or markdown answers
graded by hand with a rubric), autograded test cells of asserts with hidden tests between
``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``, and nbgrader's cell metadata. This
module checks the markers (:func:`check_notebook`) and drives nbgrader's own API on a course
folder (``<build>/nbgrader``: ``source/``, ``release/``, ``submitted/``, ``autograded/``,
``feedback/`` and the gradebook ``gradebook.db``), one assignment per notebook:
:func:`generate` (student versions), :func:`submit`, :func:`autograde` (hidden tests put back
and run), :func:`generate_feedback` and :func:`scores` (read from the gradebook).

    python -m tlcourse.course.homework             # student versions into <build>/release/
    python -m tlcourse.course.homework autograde   # grade <build>/nbgrader/submitted/, feedback
"""
from __future__ import annotations

import os
import re
import shutil
import sys
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


def _api(root: Path):
    """nbgrader's API on the course folder ``root`` (its config also written to
    ``root/nbgrader_config.py``, so the ``nbgrader`` command works there too)."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    root.mkdir(parents=True, exist_ok=True)
    settings = {"CourseDirectory.course_id": "tlcourse",
                "CourseDirectory.ignore": [".ipynb_checkpoints", "*.pyc", "__pycache__"],
                "ClearSolutions.code_stub": {"python": "# YOUR CODE HERE\nraise NotImplementedError()"},
                "ExecutePreprocessor.timeout": 1800}
    (root / "nbgrader_config.py").write_text("c = get_config()  # noqa\n" + "".join(
        f"c.{key} = {value!r}\n" for key, value in settings.items()))
    config = Config()
    for key, value in settings.items():
        section, name = key.split(".")
        setattr(config[section], name, value)
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    # nbgrader runs the `alembic` command of its own environment to set up its gradebook
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    return NbGraderAPI(config=config)


def _run(step: str, result: dict) -> None:
    if not result["success"]:
        raise RuntimeError(f"nbgrader {step} failed:\n{result.get('error') or result.get('log')}")


def generate(root: Path, notebooks=None) -> list[Path]:
    """Copy each notebook with exercises to ``root/source/<stem>/`` and run nbgrader's
    ``generate_assignment``: solutions replaced by stubs, hidden tests removed, outputs cleared,
    graded cells locked. Returns the student notebooks (``root/release/<stem>/<stem>.ipynb``)."""
    import nbformat

    api, released = _api(root), []
    for nb_path in map(Path, notebooks or source_notebooks()):
        nb = nbformat.read(nb_path, as_version=4)
        if not graded_cells(nb):
            continue
        problems = check_notebook(nb, nb_path.name)
        if problems:
            raise ValueError("; ".join(problems))
        (root / "source" / nb_path.stem).mkdir(parents=True, exist_ok=True)
        shutil.copy(nb_path, root / "source" / nb_path.stem / nb_path.name)
        _run(f"generate_assignment {nb_path.stem}", api.generate_assignment(nb_path.stem))
        released.append(root / "release" / nb_path.stem / nb_path.name)
    return released


def fill(student_nb, source_nb, answers=None):
    """A submission: the student version with every solution cell answered as the source
    answers it, except ``answers[grade_id]`` (code or text) put between the solution markers."""
    import copy

    source = {nbgrader_meta(c).get("grade_id"): c for c in source_nb.cells}
    nb = copy.deepcopy(student_nb)
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution") and gid in source:
            text = source[gid].source
            if gid in (answers or {}):
                lines, out, inside = text.splitlines(), [], False
                for line in lines:
                    if line.strip() == BEGIN_SOLUTION:
                        inside = True
                        indent = line[: len(line) - len(line.lstrip())]
                        out += [indent + a for a in answers[gid].splitlines()]
                    elif line.strip() == END_SOLUTION:
                        inside = False
                    elif not inside:
                        out.append(line)
                text = "\n".join(out)
            cell.source = "\n".join(line for line in text.splitlines()
                                    if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION))
    return nb


def submit(root: Path, assignment: str, student: str, nb) -> Path:
    """Put a notebook where ``nbgrader collect`` would: ``submitted/<student>/<assignment>/``."""
    import nbformat

    folder = root / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{assignment}.ipynb")
    (folder / "timestamp.txt").write_text(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    return folder / f"{assignment}.ipynb"


def autograde(root: Path, assignment: str, student: str) -> None:
    """nbgrader ``autograde``: hidden tests restored, the notebook run, scores into the gradebook."""
    _run(f"autograde {assignment} {student}", _api(root).autograde(assignment, student))


def generate_feedback(root: Path, assignment: str, student: str) -> Path:
    """nbgrader ``generate_feedback``: the graded notebook as HTML, in ``feedback/``."""
    _run(f"generate_feedback {assignment} {student}", _api(root).generate_feedback(assignment, student))
    return root / "feedback" / student / assignment / f"{assignment}.html"


def scores(root: Path):
    """Per submission and graded cell: the autograded score and the maximum, from the gradebook,
    as a pandas table (cells that need manual grading have ``needs_manual_grade`` set)."""
    import pandas as pd
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        rows = [{"assignment": a.name, "student": s.student.id, "cell": g.name,
                 "score": g.score, "max_score": g.max_score, "needs_manual_grade": g.needs_manual_grade}
                for a in gb.assignments for s in a.submissions for n in s.notebooks for g in n.grades]
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    import nbformat

    args = argv if argv is not None else sys.argv[1:]
    root, start = build_dir("nbgrader"), time.perf_counter()
    if args[:1] == ["autograde"]:
        for folder in sorted((root / "submitted").glob("*/*")):
            autograde(root, folder.name, folder.parent.name)
            print(f"  feedback: {generate_feedback(root, folder.name, folder.parent.name)}")
        table = scores(root).groupby(["assignment", "student"])[["score", "max_score"]].sum()
        print(table.to_string())
        return 0
    print("Generating homework with nbgrader")
    for student in generate(root):
        dest = build_dir("release") / student.parent.name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(student.parent, dest)
        instructor = nbformat.read(root / "source" / student.parent.name / student.name, as_version=4)
        for cell in instructor.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(instructor, build_dir("instructor") / student.name)
        print(f"  {student.stem:34s} {len(graded_cells(instructor))} graded cell(s)")
    print(f"Student versions in {build_dir('release')}, instructor versions in "
          f"{build_dir('instructor')}, course folder {root} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
