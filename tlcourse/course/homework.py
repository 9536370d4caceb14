"""Homework with nbgrader (``make homework``): the exercises' markers checked, and nbgrader's API
driven on a course folder (``<build>/nbgrader``), one assignment per notebook.

    python -m tlcourse.course.homework             # student versions into <build>/release/
    python -m tlcourse.course.homework autograde   # grade <build>/nbgrader/submitted/, feedback"""
import copy
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
_REGION = r"^([ \t]*)### BEGIN ({})[ \t]*$.*?^[ \t]*### END \2[ \t]*$"  # re.M | re.S; group 1: the indent


def nbgrader_meta(cell) -> dict:
    """The nbgrader metadata of ``cell`` (empty for a cell that is not an exercise)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def graded_cells(nb) -> list:
    """The graded cells of ``nb`` (``grade: true``)."""
    return [c for c in nb.cells if nbgrader_meta(c).get("grade")]


def _regions(source: str, begin: str, end: str) -> list[list[str]]:
    """The lines (stripped) between ``begin`` and ``end`` markers in ``source``; ValueError if unbalanced."""
    lines = [line.strip() for line in source.splitlines()]
    marks = [i for i, line in enumerate(lines) if line in (begin, end)]
    for k, i in enumerate(marks):
        if lines[i] != (end if k % 2 else begin):
            raise ValueError(f"nested {begin!r}" if lines[i] == begin else f"{end!r} without {begin!r}")
    if len(marks) % 2:
        raise ValueError(f"{begin!r} without {end!r}")
    return [lines[a + 1:b] for a, b in zip(marks[::2], marks[1::2])]


def check_notebook(nb, name: str = "notebook") -> list[str]:
    """Problems with the exercises of ``nb`` (called ``name`` in them); empty when all is well."""
    problems, ids = [], set()
    for i, cell in enumerate(nb.cells):
        meta, where = nbgrader_meta(cell), f"{name} cell {i}"
        found = {}
        for begin, end in ((BEGIN_SOLUTION, END_SOLUTION), (BEGIN_HIDDEN, END_HIDDEN)):
            try:
                found[begin] = _regions(cell.source, begin, end)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                found[begin] = [[]] if begin == BEGIN_SOLUTION else []  # broken solution markers count
        gid, points = meta.get("grade_id"), meta.get("points")
        valid_id = isinstance(gid, str) and bool(re.fullmatch(r"[A-Za-z0-9_-]+", gid))
        checks = {"solution markers in a cell not marked as a solution":
                  found[BEGIN_SOLUTION] and not meta.get("solution"),
                  "hidden tests in a cell that is not graded": found[BEGIN_HIDDEN] and not meta.get("grade"),
                  f"grade_id {gid!r} missing or not [A-Za-z0-9_-]": meta and not valid_id,
                  f"grade_id {gid!r} used twice": meta and valid_id and gid in ids,
                  "nbgrader schema_version must be 3": meta and meta.get("schema_version") != 3,
                  "graded cell without positive points": meta.get("grade") and not (
                      isinstance(points, (int, float)) and points > 0),
                  f"solution cell without {BEGIN_SOLUTION!r}":
                  meta.get("solution") and cell.cell_type == "code" and not found[BEGIN_SOLUTION]}
        problems += [f"{where}: {problem}" for problem, bad in checks.items() if bad]
        if meta:
            ids.add(gid)
    return problems + ([] if graded_cells(nb) else [f"{name}: no graded exercise"])


def _api(root: Path):
    """nbgrader's API on the course folder ``root`` (its config also in ``root/nbgrader_config.py``)."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config
    root.mkdir(parents=True, exist_ok=True)
    settings = {"CourseDirectory": {"course_id": "tlcourse",
                                    "ignore": [".ipynb_checkpoints", "*.pyc", "__pycache__"]},
                "ClearSolutions": {"code_stub": {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}},
                "ExecutePreprocessor": {"timeout": 1800}}
    (root / "nbgrader_config.py").write_text("c = get_config()  # noqa\n" + "".join(
        f"c.{section}.{key} = {value!r}\n" for section, items in settings.items() for key, value in
        items.items()))
    config = Config(settings)
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
    """nbgrader's ``generate_assignment`` for each of ``notebooks`` with exercises: the student versions."""
    import nbformat
    api, released = _api(root), []
    for nb_path in map(Path, notebooks or source_notebooks()):
        nb = nbformat.read(nb_path, as_version=4)
        if not graded_cells(nb):
            continue
        if problems := check_notebook(nb, nb_path.name):
            raise ValueError("; ".join(problems))
        (root / "source" / nb_path.stem).mkdir(parents=True, exist_ok=True)
        shutil.copy(nb_path, root / "source" / nb_path.stem / nb_path.name)
        _run(f"generate_assignment {nb_path.stem}", api.generate_assignment(nb_path.stem))
        released.append(root / "release" / nb_path.stem / nb_path.name)
    return released


def fill(student_nb, source_nb, answers=None):
    """A submission: ``student_nb`` with every solution cell answered as ``source_nb`` answers
    it, except that ``answers[grade_id]`` (code or text) replaces that cell's solution."""
    source = {nbgrader_meta(c).get("grade_id"): c.source for c in source_nb.cells}
    nb = copy.deepcopy(student_nb)
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution") and gid in source:
            text = source[gid]
            if gid in (answers or {}):
                text = re.sub(_REGION.format("SOLUTION"), lambda m: "\n".join(
                    m[1] + line for line in answers[gid].splitlines()), text, flags=re.M | re.S)
            cell.source = "\n".join(line for line in text.splitlines()
                                    if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION))
    return nb


def submit(root: Path, assignment: str, student: str, nb) -> Path:
    """Put ``nb`` where ``nbgrader collect`` would: ``root/submitted/<student>/<assignment>/``."""
    import nbformat
    folder = root / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{assignment}.ipynb")
    (folder / "timestamp.txt").write_text(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    return folder / f"{assignment}.ipynb"


def autograde(root: Path, assignment: str, student: str) -> None:
    """nbgrader's ``autograde``: hidden tests restored, the notebook run, scores into the gradebook."""
    _run(f"autograde {assignment} {student}", _api(root).autograde(assignment, student))


def generate_feedback(root: Path, assignment: str, student: str) -> Path:
    """nbgrader's ``generate_feedback``: the graded notebook as HTML, in ``root/feedback/``."""
    _run(f"generate_feedback {assignment} {student}", _api(root).generate_feedback(assignment, student))
    return root / "feedback" / student / assignment / f"{assignment}.html"


def scores(root: Path):
    """Score and maximum per submission and graded cell, from the gradebook of ``root`` (a DataFrame)."""
    import pandas as pd
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return pd.DataFrame([{"assignment": a.name, "student": s.student.id, "cell": g.name, "score": g.score,
                              "max_score": g.max_score, "needs_manual_grade": g.needs_manual_grade}
                             for a in gb.assignments for s in a.submissions for n in s.notebooks
                             for g in n.grades])


def main(argv=None) -> int:
    import nbformat
    from nbconvert.preprocessors import ClearOutputPreprocessor
    args = argv if argv is not None else sys.argv[1:]
    root, start = build_dir("nbgrader"), time.perf_counter()
    if args[:1] == ["autograde"]:
        for folder in sorted((root / "submitted").glob("*/*")):
            autograde(root, folder.name, folder.parent.name)
            print(f"  feedback: {generate_feedback(root, folder.name, folder.parent.name)}")
        print(scores(root).groupby(["assignment", "student"])[["score", "max_score"]].sum().to_string())
        return 0
    print("Generating homework with nbgrader")
    for student in generate(root):
        dest = build_dir("release") / student.parent.name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(student.parent, dest)
        source = nbformat.read(root / "source" / student.parent.name / student.name, as_version=4)
        instructor, _ = ClearOutputPreprocessor().preprocess(source, {})
        nbformat.write(instructor, build_dir("instructor") / student.name)
        print(f"  {student.stem:34s} {len(graded_cells(instructor))} graded cell(s)")
    print(f"Student versions in {build_dir('release')}, instructor versions in "
          f"{build_dir('instructor')}, course folder {root} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
