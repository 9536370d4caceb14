"""What nbgrader's feedback leaves out: the hidden tests, also where a traceback would quote them.

nbgrader's ``ClearHiddenTests`` removes the hidden region from a cell's source, but a test that
failed has already printed a traceback, and IPython quotes the lines around the failing one:
the hidden tests below it. Such a traceback is cut to its last line (the error and its message).
Named in the course's nbgrader settings (``homework.NBGRADER_SETTINGS``).
"""

from nbgrader.preprocessors import ClearHiddenTests

from .homework import BEGIN_HIDDEN


class ClearHiddenTestsAndTracebacks(ClearHiddenTests):
    """nbgrader's ``ClearHiddenTests``; a cell that held hidden tests keeps only its error line."""

    def preprocess_cell(self, cell, resources, cell_index):
        held_hidden = cell.cell_type == "code" and BEGIN_HIDDEN in cell.source
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if held_hidden:
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = output.traceback[-1:]
        return cell, resources
