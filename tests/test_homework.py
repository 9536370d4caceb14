"""Homework, end to end with nbgrader.

Markers, student versions, the catalogue of wrong answers, and generate -> submit -> autograde ->
feedback with the gradebook's scores.
"""

import ast
import shutil
import subprocess
import symtable
import time

import nbformat
import pytest
from course_run import exercises
from wrong_answers import WRONG_ANSWERS

from tlcourse.course import grading, homework
from tlcourse.lesson.errors import TLCourseError

SOURCES = homework.source_notebooks()


def _read(path):
    return nbformat.read(path, as_version=4)


def _lines(nb):
    return {line.strip() for c in nb.cells for line in c.source.splitlines() if line.strip()}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_source_exercises_are_well_formed(path):
    nb = _read(path)
    assert homework.check_notebook(nb, path.name) == []
    assert [c for c in nb.cells if homework.nbgrader_meta(c).get("solution")], (
        "at least one exercise"
    )


def test_grade_ids_are_unique_across_the_course():
    ids = [
        homework.nbgrader_meta(c)["grade_id"]
        for p in SOURCES
        for c in _read(p).cells
        if homework.nbgrader_meta(c)
    ]
    assert len(ids) == len(set(ids))


def test_marker_check_catches_mistakes():
    def problems(*cells):
        return " | ".join(
            homework.check_notebook(nbformat.v4.new_notebook(cells=list(cells)), "broken")
        )

    def meta(gid, **flags):
        return {
            "nbgrader": {
                "grade": False,
                "solution": False,
                "locked": False,
                "task": False,
                "schema_version": 3,
                "grade_id": gid,
                **flags,
            }
        }

    test = meta("t", grade=True, locked=True, points=1)
    assert "no end solution statement found" in problems(
        nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n", metadata=meta("s", solution=True)),
        nbformat.v4.new_code_cell("assert x", metadata=test),
    )
    assert "Solution region detected in a non-solution cell" in problems(
        nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n"),
        nbformat.v4.new_code_cell("assert x", metadata=test),
    )
    assert "No end hidden tests statement found" in problems(
        nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\nassert x\n", metadata=test)
    )
    assert "Duplicate grade id" in problems(
        nbformat.v4.new_code_cell("assert x", metadata=test),
        nbformat.v4.new_code_cell("assert x", metadata=test),
    )
    assert "without positive points" in problems(
        nbformat.v4.new_code_cell("assert x", metadata=meta("t", grade=True, locked=True, points=0))
    )
    assert "no graded exercise" in problems(nbformat.v4.new_code_cell("x = 1"))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A temporary nbgrader course folder with every notebook generated as an assignment."""
    root = tmp_path_factory.mktemp("nbgrader-course")
    return root, {p.parent.name: p for p in homework.generate(root)}


def test_every_notebook_gets_a_student_version(course):
    assert set(course[1]) == {p.stem for p in SOURCES}
    assert (course[0] / "gradebook.db").is_file() and (course[0] / "nbgrader_config.py").is_file()


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_student_version_hides_solutions_and_hidden_tests(course, path):
    source, student = _read(path), _read(course[1][path.stem])
    # lines the notebook shows anyway (outside the solution and hidden regions) are not secrets
    secret = homework._region_lines(source, "SOLUTION") | homework._region_lines(
        source, "HIDDEN TESTS"
    )
    leaked = (secret & _lines(student)) - homework.public_lines(source)
    assert not leaked, f"solution or hidden-test lines survive: {sorted(leaked)[:5]}"
    text = "\n".join(c.source for c in student.cells)
    for marker in (homework.BEGIN_SOLUTION, homework.END_SOLUTION, homework.BEGIN_HIDDEN):
        assert marker not in text
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    graded = homework.graded_cells(student)
    assert len(graded) == len(homework.graded_cells(source))
    # autograded test cells are locked; written answers (graded by hand) stay editable
    assert all(
        homework.nbgrader_meta(c)["locked"]
        for c in graded
        if not homework.nbgrader_meta(c).get("solution")
    )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_every_autograded_exercise_has_a_catalogued_wrong_answer(path):
    for solution, _ in exercises(_read(path)):
        gid = homework.nbgrader_meta(solution)["grade_id"]
        assert WRONG_ANSWERS.get(gid), f"{gid}: no plausible wrong answer in tests/wrong_answers.py"


def _points(cells) -> float:
    return float(
        sum(
            homework.nbgrader_meta(c)["points"]
            for c in cells
            if c.cell_type == "code" and homework.nbgrader_meta(c).get("grade")
        )
    )


# nbgrader's autograde executes each submission: make test grades notebook 00 here and 06 through
# the hub's exchange (tests/test_hub.py: a right answer, a catalogued mistake, bad submissions);
# make test-all (pytest --full) every notebook here.
CHEAP = ("00_what_is_transfer_learning",)
ROUND_TRIP = [
    pytest.param(path, marks=() if path.stem in CHEAP else pytest.mark.full, id=path.stem)
    for path in SOURCES
]


@pytest.mark.parametrize("path", ROUND_TRIP)
def test_nbgrader_round_trip_solution_blank_and_a_mistake(
    course, path, course_run, tmp_path, monkeypatch
):
    """Three submissions through nbgrader's autograde and generate_feedback.

    The gradebook must give the solution full marks, the blank student version zero, and the
    submission with one catalogued mistake exactly the points of the exercises it got right.
    The grading kernels build into a folder of their own, given what the notebooks this one
    needs saved in the course run (05 reads 04's model), whichever worker ran them.
    """
    root, released = course
    grading_build = tmp_path / "build"
    grading_build.mkdir()
    course_run.provide_needs(path, grading_build)
    monkeypatch.setenv("TLCOURSE_BUILD", str(grading_build))
    source, student = _read(path), _read(released[path.stem])
    mistaken = next(
        (s, t)
        for s, t in exercises(source)
        if WRONG_ANSWERS.get(homework.nbgrader_meta(s)["grade_id"])
    )
    gid = homework.nbgrader_meta(mistaken[0])["grade_id"]
    submissions = {
        "solution": homework.fill(student, source),
        "blank": student,
        "mistake": homework.fill(student, source, {gid: WRONG_ANSWERS[gid][0][1]}),
    }
    total = _points(source.cells)
    expected = {"solution": total, "blank": 0.0, "mistake": total - _points(mistaken[1])}
    for who, nb in submissions.items():
        homework.submit(root, path.stem, who, nb)
        homework.autograde(root, path.stem, who)
        feedback = homework.generate_feedback(root, path.stem, who).read_text()
        # the hidden tests ran (scores below) but stay out of what the student is sent
        assert "BEGIN HIDDEN TESTS" not in feedback
    table = homework.scores(root)
    auto = table[(table.assignment == path.stem) & ~table.needs_manual_grade]
    got = auto.groupby("student").score.sum().to_dict()
    assert got == pytest.approx(expected), got
    assert auto.groupby("student").max_score.sum().to_dict()["solution"] == pytest.approx(total)
    # in the blank version, only the graded cells fail: everything else still runs
    graded = _read(root / "autograded" / "blank" / path.stem / path.name)
    failing = [
        homework.nbgrader_meta(c).get("grade_id", f"cell {i}")
        for i, c in enumerate(graded.cells)
        if c.cell_type == "code"
        and any(o.get("output_type") == "error" for o in c.outputs)
        and not homework.nbgrader_meta(c).get("grade")
    ]
    assert not failing, f"cells that fail in the student version: {failing}"


def _names(statement) -> tuple[set[str], set[str]]:
    """(names a top-level statement binds, module-level names it reads), from ``symtable``.

    Loop variables, comprehensions and function arguments are not reads of the notebook's names.
    """
    bound, read = set(), set()

    def visit(table, top):
        for symbol in table.get_symbols():
            name = symbol.get_name()
            if top and (symbol.is_assigned() or symbol.is_imported()):
                bound.add(name)
            elif symbol.is_referenced() and (top or symbol.is_global()):
                read.add(name)
        for child in table.get_children():
            visit(child, False)

    visit(symtable.symtable(ast.unparse(statement), "<cell>", "exec"), True)
    return bound, read - bound


def blank_breaks(nb) -> list[str]:
    """Where a blank student version would fail outside its own graded cells, read statically.

    Every name a solution cell or a graded cell binds is *broken* in a blank submission (the stub
    raises, or the function it defines does when called). A later cell that is not graded and
    reads a broken name before binding it again would fail: each such read is returned. Each
    graded test cell must read a name its own exercise breaks, or the blank would pass it.
    """
    problems, broken = [], {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = homework.nbgrader_meta(cell)
        tree = ast.parse(cell.source)
        if meta.get("solution") or meta.get("grade"):
            bound = {name for statement in tree.body for name in _names(statement)[0]}
            broken.update(dict.fromkeys(bound, meta.get("grade_id")))
            continue
        rebound = set()
        for statement in tree.body:
            bound, read = _names(statement)
            for name in sorted(read - rebound):
                if name in broken:
                    problems.append(
                        f"cell {i} reads {name!r}, which a blank {broken[name]} leaves broken"
                    )
            rebound.update(bound)
    for solution, tests in exercises(nb):
        gid = homework.nbgrader_meta(solution)["grade_id"]
        defined = {
            name for statement in ast.parse(solution.source).body for name in _names(statement)[0]
        }
        for test in tests:
            reads = {
                name for statement in ast.parse(test.source).body for name in _names(statement)[1]
            }
            if not defined & reads:
                problems.append(
                    f"{homework.nbgrader_meta(test)['grade_id']} reads nothing {gid} defines"
                )
    return problems


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_a_blank_answer_fails_only_its_own_graded_cells(path):
    assert blank_breaks(_read(path)) == []


def test_the_blank_check_sees_a_later_cell_that_needs_an_answer():
    meta = {
        "nbgrader": {
            "solution": True,
            "grade": False,
            "grade_id": "ex",
            "locked": False,
            "schema_version": 3,
        }
    }
    test_meta = {
        "nbgrader": {
            "solution": False,
            "grade": True,
            "grade_id": "ex-tests",
            "points": 1,
            "locked": True,
            "schema_version": 3,
        }
    }
    cells = [
        nbformat.v4.new_code_cell(
            "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION", metadata=meta
        ),
        nbformat.v4.new_code_cell("assert f(1) == 1", metadata=test_meta),
        nbformat.v4.new_code_cell("y = f(2)"),
        nbformat.v4.new_code_cell("f = print\nf(3)"),
    ]
    problems = blank_breaks(nbformat.v4.new_notebook(cells=cells))
    assert problems == ["cell 2 reads 'f', which a blank ex leaves broken"]


def test_autograde_problems_reach_the_instructor_as_lines_not_tracebacks(
    tmp_path, monkeypatch, capsys
):
    """A submission that is not a notebook is reported in one plain line; the others are graded."""
    # a course of its own: `autograde` grades every submission, and the module's course has many
    root = tmp_path / "nbgrader-course"
    stem = "06_depthwise_separable_cost"
    (released,) = homework.generate(root, [SOURCES[6]])
    source, student = _read(SOURCES[6]), _read(released)
    homework.submit(root, stem, "carol", homework.fill(student, source))
    broken = root / "submitted" / "dave" / stem
    broken.mkdir(parents=True)
    (broken / f"{stem}.ipynb").write_text("this is not a notebook")
    monkeypatch.setenv("TLCOURSE_BUILD", str(root.parent))
    monkeypatch.setattr(
        homework, "build_dir", lambda *parts: root.joinpath(*parts[1:]) if parts else root
    )
    assert homework.main(["autograde"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert f"dave, {stem}: not graded. nbgrader autograde {stem} dave failed" in err
    assert "carol" in out


def test_grading_kernels_channels_read_a_reply_and_give_up_at_the_timeout(tmp_path):
    """The grader's channels poll in steps of a second, whatever the cell's timeout."""
    import asyncio
    import queue

    import zmq
    import zmq.asyncio
    from jupyter_client.session import Session
    from traitlets.config.loader import PyFileConfigLoader

    # the course folder's nbgrader_config.py gives nbgrader's kernel manager the patient client
    path = homework.write_nbgrader_config(
        tmp_path / "nbgrader_config.py", homework.NBGRADER_SETTINGS
    )
    config = PyFileConfigLoader(path.name, str(tmp_path)).load_config()
    client_class = config.AsyncKernelManager.client_factory
    assert client_class is grading.GradingKernelClient
    channel_class = client_class.shell_channel_class.default_value

    async def exchange():
        context = zmq.asyncio.Context()
        kernel, grader = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
        kernel.bind("inproc://grading-test")
        grader.connect("inproc://grading-test")
        session = Session()
        channel = channel_class(grader, session)
        start = time.monotonic()
        with pytest.raises(queue.Empty):
            await channel.get_msg(timeout=1.5)
        waited = time.monotonic() - start
        session.send(kernel, "execute_reply", {"status": "ok"})
        reply = await channel.get_msg(timeout=1800)
        kernel.close(linger=0)
        grader.close(linger=0)
        context.term()
        return waited, reply

    waited, reply = asyncio.run(exchange())
    assert 1.5 <= waited < 3
    assert reply["msg_type"] == "execute_reply" and reply["content"] == {"status": "ok"}
    config = homework._api(tmp_path).config
    assert config.AsyncKernelManager.client_factory is client_class


def test_answers_in_finds_a_solution_a_hidden_test_and_a_gradebook(tmp_path):
    source = _read(SOURCES[6])
    shutil.copy(SOURCES[6], tmp_path / "copied.ipynb")
    hidden = sorted(homework._region_lines(source, "HIDDEN TESTS") - homework.public_lines(source))
    (tmp_path / "notes.py").write_text(f"# a student's notes\n    {hidden[0]}\n")
    (tmp_path / "gradebook.db").write_bytes(b"SQLite format 3\x00")
    (tmp_path / "weights.h5").write_bytes(bytes(range(256)))
    found = homework.answers_in(tmp_path, [SOURCES[6]])
    assert len(found) == 4, found
    assert "copied.ipynb: nbgrader's markers" in found[0]
    assert "copied.ipynb" in found[1] and "answer line(s)" in found[1]
    assert "gradebook.db: a gradebook" in found[2]
    assert "notes.py: 1 answer line(s)" in found[3]
    assert homework.answers_in(tmp_path / "nothing-here", [SOURCES[6]]) == []


# two notebooks stand for the nine in the class's repository (each call generates them again)
CLASS = [SOURCES[0], SOURCES[6]]


def test_the_student_repository_holds_no_answer_and_commits_each_change(tmp_path, monkeypatch):
    """What nbgitpuller pulls and the hub image is built from: the student versions, no answers."""
    root = tmp_path / "nbgrader"

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=repo, check=True, capture_output=True, text=True
        ).stdout

    repo = homework.student_repo(tmp_path / "student-repo", root, CLASS)
    assert homework.answers_in(repo) == []
    tracked = set(git("ls-files").split())
    assert {f"notebooks/{p.name}" for p in CLASS} == {n for n in tracked if n.endswith(".ipynb")}
    assert {"tlcourse/lesson/__init__.py", "README.md", *homework.STUDENT_REPO_FILES} <= tracked
    assert not {name for name in tracked if name.startswith(("tests/", "build", "deploy/"))}
    released = root / "release"
    for path in CLASS:
        assert _read(repo / "notebooks" / path.name) == _read(released / path.stem / path.name)
    # the offline image build's archive, untracked, stays; an untracked answer stops everything
    (repo / "data" / "flower_photos.tgz").write_bytes(bytes(range(256)) * 4)
    homework.student_repo(repo, root, CLASS)
    assert (repo / "data" / "flower_photos.tgz").read_bytes() == bytes(range(256)) * 4
    shutil.copy(SOURCES[6], repo / "notebooks" / "answers.ipynb")
    with pytest.raises(TLCourseError, match="answers.ipynb: nbgrader's markers"):
        homework.student_repo(repo, root, CLASS)
    assert (repo / "notebooks" / "answers.ipynb").is_file() and (repo / ".git").is_dir()
    (repo / "notebooks" / "answers.ipynb").unlink()
    # a file broken in the working tree is put back, and nothing changed makes no new commit
    (repo / "notebooks" / SOURCES[0].name).write_text("{}")
    assert homework.student_repo(repo, root, CLASS) == repo
    assert len(git("log", "--format=%H").split()) == 1
    assert _read(repo / "notebooks" / SOURCES[0].name) == _read(
        released / SOURCES[0].stem / SOURCES[0].name
    )
    # a change: one more commit, on top of the first (nbgitpuller merges it into students' copies)
    monkeypatch.setattr(homework, "STUDENT_README", homework.STUDENT_README + "\nUpdated.\n")
    homework.student_repo(repo, root, CLASS)
    assert len(git("log", "--format=%H").split()) == 2
    assert git("status", "--porcelain") == ""
    assert (repo / "README.md").read_text().endswith("Updated.\n")


def test_a_student_repository_that_would_leak_is_not_written(tmp_path, monkeypatch):
    root = tmp_path / "nbgrader"
    line = sorted(homework.secret_lines(*map(_read, SOURCES)))[0]
    monkeypatch.setattr(homework, "STUDENT_README", f"# tlcourse\n\n    {line}\n")
    with pytest.raises(TLCourseError, match="would give answers away; nothing was changed"):
        homework.student_repo(tmp_path / "student-repo", root, CLASS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbgrader"]
