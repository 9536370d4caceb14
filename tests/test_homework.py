"""Homework, end to end with nbgrader: markers, student versions, the catalogue of wrong
answers, and generate -> submit -> autograde -> feedback with the gradebook's scores."""
import re

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from tlcourse.course import homework
from wrong_answers import WRONG_ANSWERS

SOURCES = homework.source_notebooks()


def _read(path):
    return nbformat.read(path, as_version=4)


def _region_lines(nb, begin, end):
    """Every non-blank line (stripped) between ``begin`` and ``end`` markers in the code cells."""
    return [line for c in nb.cells if c.cell_type == "code"
            for region in homework._regions(c.source, begin, end) for line in region if line]


def public_lines(nb) -> set:
    """Every non-blank line (stripped) outside the solution and hidden-test regions."""
    lines = (line.strip() for cell in nb.cells for line in re.sub(
        homework._REGION.format("SOLUTION|HIDDEN TESTS"), "", cell.source, flags=re.M | re.S).splitlines())
    markers = (homework.BEGIN_SOLUTION, homework.END_SOLUTION, homework.BEGIN_HIDDEN, homework.END_HIDDEN)
    return {line for line in lines if line and line not in markers}


def _lines(nb):
    return {line.strip() for c in nb.cells for line in c.source.splitlines() if line.strip()}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_source_exercises_are_well_formed(path):
    nb = _read(path)
    assert homework.check_notebook(nb, path.name) == []
    assert [c for c in nb.cells if homework.nbgrader_meta(c).get("solution")], "at least one exercise"


def test_grade_ids_are_unique_across_the_course():
    ids = [homework.nbgrader_meta(c)["grade_id"] for p in SOURCES for c in _read(p).cells
           if homework.nbgrader_meta(c)]
    assert len(ids) == len(set(ids))


def test_marker_check_catches_mistakes():
    nb = nbformat.v4.new_notebook()
    meta = {"nbgrader": {"grade": True, "grade_id": "x", "locked": True, "schema_version": 3,
                         "solution": False, "task": False}}
    nb.cells = [nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n", metadata={}),
                nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\nassert x\n", metadata=meta),
                nbformat.v4.new_code_cell("assert x\n", metadata=meta)]
    problems = " | ".join(homework.check_notebook(nb, "broken"))
    assert "without '### END SOLUTION'" in problems
    assert "without '### END HIDDEN TESTS'" in problems
    assert "used twice" in problems
    assert "without positive points" in problems


def exercises(nb) -> list[tuple[object, list]]:
    """Each autograded code exercise: its solution cell and the graded test cells after it
    (up to the next solution cell)."""
    out = []
    for cell in nb.cells:
        meta = homework.nbgrader_meta(cell)
        if meta.get("solution") and cell.cell_type == "code":
            out.append((cell, []))
        elif meta.get("grade") and cell.cell_type == "code" and out:
            out[-1][1].append(cell)
    return [(sol, tests) for sol, tests in out if tests]


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
    secret = (set(_region_lines(source, homework.BEGIN_SOLUTION, homework.END_SOLUTION))
              | set(_region_lines(source, homework.BEGIN_HIDDEN, homework.END_HIDDEN)))
    # lines the notebook shows anyway (outside the solution and hidden regions) are not secrets
    leaked = (secret & _lines(student)) - public_lines(source)
    assert not leaked, f"solution or hidden-test lines survive: {sorted(leaked)[:5]}"
    text = "\n".join(c.source for c in student.cells)
    for marker in (homework.BEGIN_SOLUTION, homework.END_SOLUTION, homework.BEGIN_HIDDEN):
        assert marker not in text
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    graded = homework.graded_cells(student)
    assert len(graded) == len(homework.graded_cells(source))
    # autograded test cells are locked; written answers (graded by hand) stay editable
    assert all(homework.nbgrader_meta(c)["locked"] for c in graded if not homework.nbgrader_meta(c).get("solution"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_every_autograded_exercise_has_a_catalogued_wrong_answer(path):
    for solution, _ in exercises(_read(path)):
        gid = homework.nbgrader_meta(solution)["grade_id"]
        assert WRONG_ANSWERS.get(gid), f"{gid}: no plausible wrong answer in tests/wrong_answers.py"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_catalogued_wrong_answers_are_caught(path):
    """The notebook runs once with its solutions; then, in the same kernel, each wrong answer
    replaces its solution, and the exercise's graded tests must fail; the solution is put back."""
    from nbclient import NotebookClient

    nb = _read(path)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
        for solution, tests in exercises(nb):
            gid = homework.nbgrader_meta(solution)["grade_id"]
            original = solution.source
            for what, code in WRONG_ANSWERS.get(gid, []):
                solution.source = homework.fill(nbformat.v4.new_notebook(cells=[solution]),
                                                nbformat.v4.new_notebook(cells=[solution]),
                                                {gid: code}).cells[0].source
                client.execute_cell(solution, nb.cells.index(solution))
                caught = False
                for test in tests:
                    try:
                        client.execute_cell(test, nb.cells.index(test))
                    except CellExecutionError:
                        caught = True
                assert caught, f"{gid}: the wrong answer '{what}' passes every test"
                solution.source = original
                client.execute_cell(solution, nb.cells.index(solution))


def _points(cells) -> float:
    return float(sum(homework.nbgrader_meta(c)["points"] for c in cells
                     if c.cell_type == "code" and homework.nbgrader_meta(c).get("grade")))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_nbgrader_round_trip_solution_blank_and_a_mistake(course, path):
    """Three submissions through nbgrader's autograde and generate_feedback; the gradebook must
    give the solution full marks, the blank student version zero, and the submission with one
    catalogued mistake exactly the points of the exercises it got right."""
    root, released = course
    source, student = _read(path), _read(released[path.stem])
    mistaken = next((s, t) for s, t in exercises(source)
                    if WRONG_ANSWERS.get(homework.nbgrader_meta(s)["grade_id"]))
    gid = homework.nbgrader_meta(mistaken[0])["grade_id"]
    submissions = {"solution": homework.fill(student, source),
                   "blank": student,
                   "mistake": homework.fill(student, source, {gid: WRONG_ANSWERS[gid][0][1]})}
    total = _points(source.cells)
    expected = {"solution": total, "blank": 0.0, "mistake": total - _points(mistaken[1])}
    for who, nb in submissions.items():
        homework.submit(root, path.stem, who, nb)
        homework.autograde(root, path.stem, who)
        assert homework.generate_feedback(root, path.stem, who).is_file()
    table = homework.scores(root)
    auto = table[(table.assignment == path.stem) & ~table.needs_manual_grade]
    got = auto.groupby("student").score.sum().to_dict()
    assert got == pytest.approx(expected), got
    assert auto.groupby("student").max_score.sum().to_dict()["solution"] == pytest.approx(total)
    # in the blank version, only the graded cells fail: everything else still runs
    graded = _read(root / "autograded" / "blank" / path.stem / path.name)
    failing = [homework.nbgrader_meta(c).get("grade_id", f"cell {i}") for i, c in enumerate(graded.cells)
               if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.outputs)
               and not homework.nbgrader_meta(c).get("grade")]
    assert not failing, f"cells that fail in the student version: {failing}"
