"""Plausible wrong answers to the autograded exercises, by the grade_id of the solution cell.

Each entry is ``(what the mistake is, code that replaces the lines between ### BEGIN SOLUTION
and ### END SOLUTION)``. ``tests/test_homework.py`` checks that every autograded exercise has
one, that its graded tests fail on each of them, and puts the first one through nbgrader's
autograde as the "plausible mistake" submission.
"""

WRONG_ANSWERS = {
}
