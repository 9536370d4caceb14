"""Homework: nbgrader markers in the source notebooks, and the student versions nbgrader makes."""
import nbformat
import pytest

from tlcourse.course import homework

SOURCES = homework.source_notebooks()


def _read(path):
    return nbformat.read(path, as_version=4)


def _lines(nb):
    return {line.strip() for c in nb.cells for line in c.source.splitlines() if line.strip()}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_source_exercises_are_well_formed(path):
    nb = _read(path)
    assert homework.check_notebook(nb, path.name) == []
    assert homework.solution_cells(nb), "at least one exercise"


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


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    return {p.parent.name: p for p in homework.generate_student_versions(out, verbose=False)}


def test_every_notebook_gets_a_student_version(released):
    assert set(released) == {p.stem for p in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_student_version_hides_solutions_and_hidden_tests(released, path):
    source, student = _read(path), _read(released[path.stem])
    secret = set(homework.solution_lines(source)) | set(homework.hidden_test_lines(source))
    # lines the notebook shows anyway (outside the solution and hidden regions) are not secrets
    leaked = (secret & _lines(student)) - homework.public_lines(source)
    assert not leaked, f"solution or hidden-test lines survive: {sorted(leaked)[:5]}"
    text = "\n".join(c.source for c in student.cells)
    for marker in (homework.BEGIN_SOLUTION, homework.END_SOLUTION, homework.BEGIN_HIDDEN):
        assert marker not in text
    assert text.count("YOUR CODE HERE") >= len(homework.solution_cells(source))
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    graded = homework.graded_cells(student)
    assert len(graded) == len(homework.graded_cells(source))
    assert all(homework.nbgrader_meta(c)["locked"] for c in graded)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_student_version_runs_and_only_its_graded_tests_fail(released, path):
    """nbgrader's `validate --invert` idea: with no solution every graded test fails,
    and everything else in the notebook still runs."""
    from nbclient import NotebookClient

    nb = _read(released[path.stem])
    NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(released[path.stem].parent)}}).execute()
    failed = {i for i, c in enumerate(nb.cells) if c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.outputs)}
    graded = {i for i, c in enumerate(nb.cells) if homework.nbgrader_meta(c).get("grade")}
    assert graded <= failed, f"graded cells that pass without a solution: {sorted(graded - failed)}"
    errors = {i: next(o["ename"] for o in nb.cells[i].outputs if o.get("output_type") == "error")
              for i in failed - graded}
    assert not errors, f"cells that fail in the student version: {errors}"
