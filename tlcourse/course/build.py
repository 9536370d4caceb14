"""The lecture build (``make run``).

Each notebook runs in a fresh kernel, in the mode ``TLCOURSE_FAST`` selects, and is saved with
its HTML page into ``build/`` (``build-fast/`` in fast mode). A summary table follows, then the
lecture's slides and the course site. The test suite runs the notebooks through the same
:func:`execute`.

    python -m tlcourse.course.build [NOTEBOOK ...]
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..lesson.config import build_dir, fast_mode, project_root

#: How long one notebook may run before the build gives up on it.
NOTEBOOK_TIMEOUT_S = 1800


@dataclass
class Executed:
    """What running one notebook gave: the executed notebook and how it went."""

    path: Path  # the executed notebook, as saved
    ok: bool
    seconds: float
    error: str  # the last line of the first error, or ""
    notebook: object  # the executed nbformat.NotebookNode


def notebooks(names=None) -> list[Path]:
    """The course's notebooks (``NN_name.ipynb``) in order.

    ``names``: only those whose file name starts with one of them (``["05", "08"]``).
    """
    found = sorted((project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return found
    return [path for path in found if any(path.name.startswith(name) for name in names)]


def needs(path: Path) -> list[str]:
    """The notebooks that must run before ``path``, as its metadata names them.

    A notebook that reads a model another one saved says so in its metadata,
    ``{"tlcourse": {"needs": ["04_head_replacement"]}}``, so that running it on its own (a test
    selected with ``-k``, a lecturer's single notebook) runs those first.
    """
    import nbformat

    metadata = nbformat.read(path, as_version=4).metadata
    return list(metadata.get("tlcourse", {}).get("needs", []))


def execute(
    path: Path,
    out_dir: Path,
    *,
    env: dict | None = None,
    then=None,
    html: bool = True,
    timeout: int = NOTEBOOK_TIMEOUT_S,
) -> Executed:
    """Run the notebook ``path`` top to bottom in a fresh kernel and save it in ``out_dir``.

    The notebook runs from its own folder, with widget state stored (the site and JupyterLab show
    each widget's last view). ``env``: the kernel's environment (default: this process's).
    ``then(client, notebook)``: called with the kernel still running after the last cell, for
    checks that need the live kernel (the tests' wrong answers). ``html``: also write the
    notebook as an HTML page beside it. ``timeout``: the most seconds one cell may take.
    """
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    error = ""
    start = time.perf_counter()
    # The kernel talks over Unix sockets in a folder of its own, not TCP ports: two runs side by
    # side (the test suite's workers) cannot pick the same port.
    with tempfile.TemporaryDirectory(prefix="tlcourse-kernel-") as sockets:
        kernel = KernelManager(
            kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel")
        )
        client = NotebookClient(
            notebook,
            km=kernel,
            timeout=timeout,
            kernel_name="python3",
            store_widget_state=True,
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.reset_execution_trackers()
        try:
            with client.setup_kernel(env=env if env is not None else dict(os.environ)):
                try:
                    for index, cell in enumerate(notebook.cells):
                        client.execute_cell(
                            cell, index, execution_count=client.code_cells_executed + 1
                        )
                except Exception as exc:  # CellExecutionError, timeouts, a dead kernel
                    lines = str(exc).strip().splitlines() or [type(exc).__name__]
                    error = lines[-1][:300]
                seconds = time.perf_counter() - start
                client.set_widgets_metadata()
                saved = out_dir / path.name
                nbformat.write(notebook, saved)
                executed = copy.deepcopy(
                    notebook
                )  # as saved: what ``then`` runs does not change it
                if then is not None and not error:
                    then(client, notebook)
        finally:
            if client.kc is not None:
                client.kc.stop_channels()
            if kernel.has_kernel:
                kernel.shutdown_kernel(now=True)
    if html:
        from nbconvert import HTMLExporter

        page, _ = HTMLExporter(embed_images=True).from_notebook_node(executed)
        (out_dir / f"{path.stem}.html").write_text(page, encoding="utf-8")
    return Executed(path=saved, ok=not error, seconds=seconds, error=error, notebook=executed)


def summary_row(path: Path, run: Executed, out_dir: Path) -> dict:
    """One row of the build's summary: the notebook, how it ran, and what it recorded."""
    results_file = out_dir / "results" / f"{path.stem}.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    mode = "fast" if fast_mode() else "full"
    return {
        "notebook": path.stem,
        "ok": run.ok,
        "seconds": round(run.seconds),
        "mode": mode,
        **results,
    }


def write_summary(rows: list[dict], out_dir: Path) -> None:
    """``summary.json`` in ``out_dir``: one record per notebook, as the site reads it.

    Rows of notebooks not run this time are kept from the previous summary.
    """
    path = out_dir / "summary.json"
    previous = json.loads(path.read_text()) if path.exists() else []
    ran = {row["notebook"] for row in rows}
    merged = [row for row in previous if row["notebook"] not in ran] + rows
    merged.sort(key=lambda row: row["notebook"])
    path.write_text(json.dumps(merged, indent=1, default=str))


def main(argv=None) -> int:
    import pandas as pd

    names = (argv if argv is not None else sys.argv[1:]) or None
    out_dir = build_dir()
    mode = "fast" if fast_mode() else "full"
    rows = []
    for path in notebooks(names):
        results_file = build_dir("results") / f"{path.stem}.json"
        results_file.unlink(missing_ok=True)  # numbers from this run only
        print(f"running {path.name} ({mode} mode) ...", flush=True)
        run = execute(path, out_dir)
        if run.error:
            print(f"  FAILED: {run.error}", flush=True)
        rows.append(summary_row(path, run, out_dir))
    write_summary(rows, out_dir)
    columns = ["notebook", "ok", "seconds", "peak_memory_mib"]
    table = pd.DataFrame(rows).reindex(columns=columns).set_index("notebook")
    print(f"\nSummary ({mode} mode), executed notebooks in {out_dir}:\n")
    print(table.to_string())
    if not names:
        from .site import build_site
        from .slides import build_slides

        build_slides(out_dir)
        build_site(out_dir)
    return 0 if rows and all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
