"""Every notebook, run once in fast mode (the session's ``course_run``), checked three ways.

- It runs top to bottom, and no cell shows an error or anything on stderr (the red boxes a
  student sees).
- Every cell marked ``# NBVAL_CHECK_OUTPUT`` gives the output stored in the source notebook,
  compared as ``pytest --nbval-lax`` compares it (nbval's own comparison, on the run's outputs;
  ``make test-all`` also runs nbval itself).
- Every catalogued wrong answer (``tests/wrong_answers.py``) fails at least one of its
  exercise's graded tests, run in the notebook's own kernel after the notebook.
"""

from __future__ import annotations

from types import SimpleNamespace

import nbformat
import pytest
from nbval.plugin import (
    IPyNbCell,
    coalesce_streams,
    find_comment_markers,
    find_metadata_tags,
    nocolors,
)

from tlcourse.course import build

NOTEBOOKS = build.notebooks()


class NbvalComparison:
    """nbval's output comparison (``IPyNbCell.compare_outputs``) on outputs computed elsewhere.

    Skips what ``--nbval-lax`` skips without nbdime: metadata, tracebacks, execution counts,
    images and widget model ids.
    """

    skip_compare = (
        "metadata",
        "traceback",
        "prompt_number",
        "output_type",
        "name",
        "execution_count",
        "application/vnd.jupyter.widget-view+json",
        "image/png",
        "image/jpeg",
    )
    colors = nocolors
    compare_outputs = IPyNbCell.compare_outputs
    sanitize = IPyNbCell.sanitize
    format_output_compare = IPyNbCell.format_output_compare

    def __init__(self):
        self.parent = self
        self.sanitize_patterns = {}
        self.comparison_traceback = []
        self.ihook = SimpleNamespace(pytest_assertrepr_compare=lambda **kwargs: [])
        self.config = None

    def differences(self, executed_outputs, stored_outputs) -> str:
        """Empty when nbval would pass the cell; else nbval's report of what differs."""
        self.comparison_traceback = []
        same = self.compare_outputs(
            coalesce_streams(executed_outputs), coalesce_streams(stored_outputs)
        )
        return "" if same else "\n".join(self.comparison_traceback)


def checked_cells(nb) -> list[int]:
    """Indexes of the code cells nbval checks under ``--nbval-lax`` (its own marker reading)."""
    return [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        and dict(find_comment_markers(cell.source), **dict(find_metadata_tags(cell.metadata))).get(
            "check"
        )
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_without_errors_or_stderr(path, course_run):
    run = course_run.get(path.stem).executed
    assert run.ok, f"{path.stem} stopped: {run.error}"
    shown = []
    for i, cell in enumerate(run.notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                shown.append(f"cell {i}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                shown.append(f"cell {i} stderr: {output.text[:300]!r}")
    assert not shown, "\n".join(shown)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_checked_outputs_match_the_source(path, course_run):
    source = nbformat.read(path, as_version=4)
    executed = course_run.get(path.stem).executed.notebook
    assert [c.source for c in executed.cells] == [c.source for c in source.cells]
    compare = NbvalComparison()
    problems = []
    for i in checked_cells(source):
        if source.cells[i].execution_count is None:
            problems.append(f"cell {i}: checked, but the source notebook stores no run of it")
            continue
        report = compare.differences(executed.cells[i].outputs, source.cells[i].outputs)
        if report:
            problems.append(f"cell {i} outputs differ:\n{report}")
    assert not problems, "\n\n".join(problems)


def test_the_comparison_is_nbvals():
    """A changed number in a stream fails; a different image or widget id does not."""
    stream = nbformat.v4.new_output("stream", name="stdout", text="accuracy 0.90\n")
    changed = nbformat.v4.new_output("stream", name="stdout", text="accuracy 0.91\n")
    image = nbformat.v4.new_output(
        "display_data", data={"image/png": "AAAA", "text/plain": "<Figure>"}
    )
    other_image = nbformat.v4.new_output(
        "display_data", data={"image/png": "BBBB", "text/plain": "<Figure>"}
    )
    compare = NbvalComparison()
    assert compare.differences([stream, image], [stream, other_image]) == ""
    assert "accuracy 0.9" in compare.differences([changed, image], [stream, image])
    assert compare.differences([stream], [stream, image])  # an output missing
    cell = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)")
    assert checked_cells(
        nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell("1")])
    ) == [0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_catalogued_wrong_answers_are_caught(path, course_run):
    from course_run import exercises
    from wrong_answers import WRONG_ANSWERS

    run = course_run.get(path.stem)
    assert run.executed.ok, f"{path.stem} stopped: {run.executed.error}"
    from tlcourse.course import homework

    expected = sum(
        len(WRONG_ANSWERS.get(homework.nbgrader_meta(solution)["grade_id"], []))
        for solution, _ in exercises(nbformat.read(path, as_version=4))
    )
    assert len(run.wrong_answers) == expected
    missed = [
        f"{w.grade_id}: '{w.what}' passes every test" for w in run.wrong_answers if not w.caught
    ]
    assert not missed, "\n".join(missed)
