"""Homework with nbgrader (``make homework``).

The exercises' markers checked, and nbgrader's API driven on a course folder (``<build>/nbgrader``),
one assignment per notebook.

python -m tlcourse.course.homework               # student versions into <build>/release/
python -m tlcourse.course.homework autograde     # grade <build>/nbgrader/submitted/, feedback
python -m tlcourse.course.homework student-repo  # the class's repository, <build>/student-repo/
"""

import atexit
import copy
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..lesson.config import atomic_write, build_dir
from ..lesson.errors import TLCourseError
from .build import notebooks as source_notebooks

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MARKERS = {BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN}
_REGION = (
    r"^([ \t]*)### BEGIN ({})[ \t]*$.*?^[ \t]*### END \2[ \t]*$"  # re.M | re.S; group 1: the indent
)


def nbgrader_meta(cell) -> dict:
    """The nbgrader metadata of ``cell`` (empty for a cell that is not an exercise)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def graded_cells(nb) -> list:
    """The graded cells of ``nb`` (``grade: true``)."""
    return [c for c in nb.cells if nbgrader_meta(c).get("grade")]


def check_notebook(nb, name: str = "notebook") -> list[str]:
    """Problems with the exercises of ``nb`` (called ``name`` in them); empty when all is well.

    nbgrader's own preprocessors, as ``generate_assignment`` runs them, check the cell metadata
    (schema version, grade ids, points, duplicates), the solution and hidden-test markers (each
    region closed, each inside a solution or graded cell). Two course rules follow: a graded cell
    is worth some points, and every notebook has at least one graded exercise.
    """
    from nbgrader.nbgraderformat import MetadataValidator
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    def metadata(nb, resources):  # what generate_assignment's CheckCellMetadata runs
        MetadataValidator().validate_nb(nb)

    steps = {
        "metadata": metadata,
        "solutions": ClearSolutions().preprocess,
        "hidden tests": ClearHiddenTests().preprocess,
    }
    problems = []
    for what, step in steps.items():
        try:
            step(copy.deepcopy(nb), {})
        except Exception as exc:  # nbgrader's ValidationError, RuntimeError, ValueError
            problems.append(f"{name}, {what}: {exc}")
    for i, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        points = meta.get("points")
        if meta.get("grade") and not (isinstance(points, (int, float)) and points > 0):
            problems.append(f"{name} cell {i}: a graded cell without positive points")
    if not graded_cells(nb):
        problems.append(f"{name}: no graded exercise")
    return problems


@functools.cache
def _kernel_sockets() -> Path:
    """A folder for this process's grading kernels' sockets, removed when the process ends."""
    folder = tempfile.mkdtemp(prefix="nbgrader-kernels-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return Path(folder)


COURSE_ID = "tlcourse"

# The course's nbgrader settings: its course folder's nbgrader_config.py (make homework, the hub's
# instructor). Feedback leaves the hidden tests out (tracebacks too): they stay hidden for the next
# class.
NBGRADER_SETTINGS = {
    "CourseDirectory": {
        "course_id": COURSE_ID,
        "ignore": [".ipynb_checkpoints", "*.pyc", "__pycache__"],
    },
    "ClearSolutions": {"code_stub": {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}},
    "ExecutePreprocessor": {"timeout": 1800},
    # a test cell the student deleted is put back (with a note) and graded
    "OverwriteCells": {"add_missing_cells": True},
    # the grader never waits on one poll for a reply already there (tlcourse.course.grading)
    "AsyncKernelManager": {"client_factory": "tlcourse.course.grading.GradingKernelClient"},
    "GenerateFeedback": {
        "preprocessors": [
            "nbgrader.preprocessors.GetGrades",
            "tlcourse.course.feedback.ClearHiddenTestsAndTracebacks",
            "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
        ]
    },
}


# settings whose value is a class, written as its dotted name
CLASS_VALUED = {"client_factory"}


def _with_classes(settings: dict) -> dict:
    """``settings`` with each ``preprocessors`` list's dotted names imported (nbgrader: classes)."""
    from traitlets.utils.importstring import import_item

    return {
        section: {
            key: [import_item(name) for name in value]
            if key == "preprocessors"
            else import_item(value)
            if key in CLASS_VALUED
            else value
            for key, value in items.items()
        }
        for section, items in settings.items()
    }


def write_nbgrader_config(path: Path, settings: dict) -> Path:
    """Write ``settings`` ({section: {key: value}}) as the nbgrader_config.py at ``path``."""

    def text(key, value):
        if key == "preprocessors":
            return "[" + ", ".join(f"import_item({name!r})" for name in value) + "]"
        if key in CLASS_VALUED:
            return f"import_item({value!r})"
        return repr(value)

    with atomic_write(path) as tmp:
        tmp.write_text(
            "from traitlets.utils.importstring import import_item\n\n"
            "c = get_config()  # noqa\n"
            + "".join(
                f"c.{section}.{key} = {text(key, value)}\n"
                for section, items in settings.items()
                for key, value in items.items()
            )
        )
    return path


def _api(root: Path):
    """nbgrader's API on the course folder ``root`` (configured as its nbgrader_config.py says)."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    root.mkdir(parents=True, exist_ok=True)
    write_nbgrader_config(root / "nbgrader_config.py", NBGRADER_SETTINGS)
    config = Config(_with_classes(NBGRADER_SETTINGS))
    # Kernels talk over Unix sockets in a folder of their own, as the course run's and the lab's
    # do, not over TCP ports picked at random: kernels started at once elsewhere on the machine
    # cannot race for the same ports. (The grader's hangs were missed wake-ups: see
    # tlcourse.course.grading.)
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(_kernel_sockets() / "kernel")
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    # nbgrader runs the `alembic` command of its own environment to set up its gradebook
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    return NbGraderAPI(config=config)


def _run(step: str, result: dict) -> None:
    """Raise a TLCourseError with nbgrader's last log lines unless its ``result`` says success."""
    if not result["success"]:
        text = (result.get("error") or result.get("log") or "no message").strip().splitlines()
        last = [line for line in text if line.strip()][-6:]
        raise TLCourseError(f"nbgrader {step} failed:\n  " + "\n  ".join(last))


def generate(root: Path, notebooks=None) -> list[Path]:
    """Run nbgrader's ``generate_assignment`` on each of ``notebooks`` with exercises.

    Returns the student versions' paths.
    """
    import nbformat

    api = _api(root)
    released = []
    for nb_path in map(Path, notebooks or source_notebooks()):
        nb = nbformat.read(nb_path, as_version=4)
        if not graded_cells(nb):
            continue
        problems = check_notebook(nb, nb_path.name)
        if problems:
            raise TLCourseError(
                "The exercises are not ready for nbgrader:\n  " + "\n  ".join(problems)
            )
        (root / "source" / nb_path.stem).mkdir(parents=True, exist_ok=True)
        shutil.copy(nb_path, root / "source" / nb_path.stem / nb_path.name)
        _run(f"generate_assignment {nb_path.stem}", api.generate_assignment(nb_path.stem))
        released.append(root / "release" / nb_path.stem / nb_path.name)
    return released


def fill(student_nb, source_nb, answers=None):
    """A submission:

    ``student_nb`` with every solution cell answered as ``source_nb`` answers it, except that
    ``answers[grade_id]`` (code or text) replaces that cell's solution.
    """
    source = {nbgrader_meta(c).get("grade_id"): c.source for c in source_nb.cells}
    nb = copy.deepcopy(student_nb)
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution") and gid in source:
            text = source[gid]
            if gid in (answers or {}):
                answer = answers[gid]

                def indented(region, answer=answer):  # the answer at the region's indentation
                    return "\n".join(region[1] + line for line in answer.splitlines())

                text = re.sub(_REGION.format("SOLUTION"), indented, text, flags=re.M | re.S)
            cell.source = "\n".join(
                line
                for line in text.splitlines()
                if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION)
            )
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
    """Run nbgrader's ``autograde``: hidden tests restored, the notebook run, scores recorded."""
    _run(f"autograde {assignment} {student}", _api(root).autograde(assignment, student))


def generate_feedback(root: Path, assignment: str, student: str) -> Path:
    """nbgrader's ``generate_feedback``: the graded notebook as HTML, in ``root/feedback/``."""
    _run(
        f"generate_feedback {assignment} {student}",
        _api(root).generate_feedback(assignment, student),
    )
    return root / "feedback" / student / assignment / f"{assignment}.html"


def scores(root: Path):
    """Score and maximum per submission and graded cell, from the gradebook, as a DataFrame."""
    import pandas as pd
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return pd.DataFrame(
            [
                {
                    "assignment": a.name,
                    "student": s.student.id,
                    "cell": g.name,
                    "score": g.score,
                    "max_score": g.max_score,
                    "needs_manual_grade": g.needs_manual_grade,
                }
                for a in gb.assignments
                for s in a.submissions
                for n in s.notebooks
                for g in n.grades
            ]
        )


def _autograde_all(root: Path) -> int:
    """Autograde every submission in ``root/submitted/``, each on its own.

    One that fails is reported in a line and the others are graded; returns the number that failed.
    """
    failed = 0
    for folder in sorted((root / "submitted").glob("*/*")):
        assignment, student = folder.name, folder.parent.name
        try:
            autograde(root, assignment, student)
            print(f"  feedback: {generate_feedback(root, assignment, student)}")
        except TLCourseError as exc:
            failed += 1
            print(f"  {student}, {assignment}: not graded. {exc}", file=sys.stderr)
    table = scores(root)
    if len(table):
        print(table.groupby(["assignment", "student"])[["score", "max_score"]].sum().to_string())
    return failed


def _region_lines(nb, kind: str) -> set[str]:
    """Every non-blank line (stripped) inside ``nb``'s ``kind`` regions, the markers left out.

    ``kind``: "SOLUTION" or "HIDDEN TESTS".
    """
    pattern = re.compile(_REGION.format(kind), flags=re.M | re.S)
    return {
        line.strip()
        for cell in nb.cells
        if cell.cell_type == "code"
        for region in pattern.finditer(cell.source)
        for line in region[0].splitlines()[1:-1]
        if line.strip()
    }


def public_lines(nb) -> set[str]:
    """Every non-blank line (stripped) of ``nb`` outside its solution and hidden-test regions."""
    return {
        line.strip()
        for cell in nb.cells
        for line in re.sub(
            _REGION.format("SOLUTION|HIDDEN TESTS"), "", cell.source, flags=re.M | re.S
        ).splitlines()
        if line.strip() and line.strip() not in MARKERS
    }


def secret_lines(*notebooks) -> set[str]:
    """The lines of the ``notebooks``' solutions and hidden tests that none of them shows anyway.

    Import statements are left out: ``import random`` gives no answer away.
    """
    secret = set().union(
        *(_region_lines(nb, "SOLUTION") | _region_lines(nb, "HIDDEN TESTS") for nb in notebooks)
    ) - set().union(*(public_lines(nb) for nb in notebooks))
    return {line for line in secret if not re.match(r"(import|from) \w", line)}


def answers_in(folder: Path, sources=None, files=None) -> list[str]:
    """Where a file under ``folder`` gives an answer away; empty when none does.

    An answer: a line of a solution or hidden test of the ``sources`` (default: the course's
    notebooks), nbgrader's region markers in a notebook, or a gradebook. ``files``: only these
    (paths inside ``folder``); default every file but git's own.
    """
    import nbformat

    secret = secret_lines(*(nbformat.read(p, as_version=4) for p in sources or source_notebooks()))
    folder = Path(folder)
    if files is None:
        files = [
            path
            for path in folder.rglob("*")
            if path.is_file() and ".git" not in path.relative_to(folder).parts
        ]
    found = []
    for path in sorted(files):
        if path.name == "gradebook.db":
            found.append(f"{path}: a gradebook")
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # not text: weights, images, archives
        lines = {line.strip() for line in text.splitlines()}
        if path.suffix == ".ipynb":
            cells = nbformat.reads(text, as_version=4).cells
            lines = {line.strip() for cell in cells for line in cell.source.splitlines()}
            if lines & MARKERS:
                found.append(f"{path}: nbgrader's markers {sorted(lines & MARKERS)}")
        if lines & secret:
            found.append(
                f"{path}: {len(lines & secret)} answer line(s), e.g. {sorted(lines & secret)[0]!r}"
            )
    return found


# What the class's repository holds besides the student notebooks: the package, how to install it,
# and what repo2docker builds the hub's image from.
STUDENT_REPO_FILES = (
    ".gitignore",
    "pyproject.toml",
    "environment.yml",
    "postBuild",
    "requirements/student.lock",
    "data/README.md",
)

STUDENT_README = """# tlcourse: transfer learning with MobileNet

The notebooks of the course, in order, in `notebooks/`: open them in JupyterLab and run them top
to bottom. Graded exercises say `# YOUR CODE HERE`; replace the line that raises
`NotImplementedError` with your answer, and run the tests in the cell below it.

Your models and results go to `$TLCOURSE_BUILD` (on a hub: `~/tlcourse-build`, kept when your
server stops). This repository is the student release of the course: it holds no solutions.
"""


def _git(folder: Path, *args: str) -> str:
    """Run git in ``folder`` (as the course's own committer); its standard output."""
    return subprocess.run(
        ["git", "-c", "user.name=tlcourse", "-c", "user.email=tlcourse@localhost", *args],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def student_repo(dest: Path, root: Path | None = None, notebooks=None) -> Path:
    """Write the class's repository into ``dest``, a git repository, and commit it.

    The student versions of the ``notebooks`` (default: the course's nine; nbgrader's release,
    course folder ``root``), the
    package and what installs it: what nbgitpuller pulls into each student's home and what the
    hub's image is built from (deploy/README.md). A later call commits the changes on top, so
    that nbgitpuller merges them. Files in ``dest`` that git does not track (``data/``'s archive
    for an offline image build) stay. Every file is checked with :func:`answers_in` first; if one
    gives an answer away, nothing is changed.
    """
    from ..lesson.config import project_root

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if (dest / ".git").is_dir():
        listed = _git(dest, "ls-files", "-z", "--others").split("\0")
        kept = [dest / name for name in listed if name]
    else:
        kept = [path for path in dest.rglob("*") if path.is_file()] if dest.is_dir() else []
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        for student in generate(root or build_dir("nbgrader"), notebooks):
            (staging / "notebooks").mkdir(exist_ok=True)
            shutil.copy(student, staging / "notebooks" / student.name)
        source = project_root()
        shutil.copytree(
            source / "tlcourse",
            staging / "tlcourse",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
        for name in STUDENT_REPO_FILES:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / name, staging / name)
        (staging / "README.md").write_text(STUDENT_README)
        leaks = answers_in(staging) + answers_in(dest, files=kept)
        if leaks:
            raise TLCourseError(
                "The student repository would give answers away; nothing was changed:\n  "
                + "\n  ".join(leaks)
            )
        for path in kept:  # the generated files win over untracked ones of the same name
            target = staging / path.relative_to(dest)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target)
        if (dest / ".git").is_dir():
            shutil.move(dest / ".git", staging / ".git")
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not (dest / ".git").is_dir():
        _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    if _git(dest, "status", "--porcelain").strip():
        _git(dest, "commit", "-q", "-m", "The student release of tlcourse")
    return dest


def _release(root: Path) -> None:
    """Write the student versions and the instructor versions (outputs cleared).

    Student versions go to ``<build>/release/``, instructor versions to ``<build>/instructor/``.
    """
    import nbformat
    from nbconvert.preprocessors import ClearOutputPreprocessor

    start = time.perf_counter()
    print("Generating homework with nbgrader")
    for student in generate(root):
        dest = build_dir("release") / student.parent.name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(student.parent, dest)
        source_path = root / "source" / student.parent.name / student.name
        instructor, _ = ClearOutputPreprocessor().preprocess(
            nbformat.read(source_path, as_version=4), {}
        )
        nbformat.write(instructor, build_dir("instructor") / student.name)
        print(f"  {student.stem:34s} {len(graded_cells(instructor))} graded cell(s)")
    print(
        f"Student versions in {build_dir('release')}, instructor versions in "
        f"{build_dir('instructor')}, course folder {root} ({time.perf_counter() - start:.1f} s)"
    )


def main(argv=None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    root = build_dir("nbgrader")
    try:
        if args[:1] == ["autograde"]:
            failed = _autograde_all(root)
            return 1 if failed else 0
        if args[:1] == ["student-repo"]:
            repo = student_repo(build_dir("student-repo"), root)
            print(f"The class's repository (student versions, no solutions): {repo}")
            return 0
        _release(root)
    except TLCourseError as exc:
        print(f"\nHomework: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
