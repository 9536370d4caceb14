"""The lecture build (``make run``): every notebook executed in a fresh kernel, exported, summarised.

Each notebook of ``notebooks/`` runs top to bottom (nbclient, kernel ``python3``) in the mode
``TLCOURSE_FAST`` selects; the executed notebook (widget state saved) and its HTML page land in
the build folder (``build/`` in full mode, ``build-fast/`` in fast mode), then the course site
is built from them. The summary gives each notebook's status, seconds, peak memory and the
headline numbers it recorded with :func:`tlcourse.lesson.report.record`.

    python -m tlcourse.course.build [NOTEBOOK ...]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..lesson.config import build_dir, fast_mode, project_root

CELL_TIMEOUT = 1800


def notebooks(names=None) -> list[Path]:
    """The course's notebooks in order (``NN_name.ipynb``), or those whose names start with ``names``."""
    found = sorted((project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    return [p for p in found if not names or any(p.name.startswith(n) for n in names)]


def execute(path: Path, out_dir: Path) -> tuple[bool, float, str]:
    """Run one notebook in a fresh kernel; write its ``.ipynb`` and ``.html`` into ``out_dir``."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(path.parent)}})
    start, error = time.perf_counter(), ""
    try:
        client.execute()
    except Exception as exc:  # CellExecutionError, timeouts, dead kernels
        error = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
    seconds = time.perf_counter() - start
    nbformat.write(nb, out_dir / path.name)
    body, _ = HTMLExporter(embed_images=True).from_notebook_node(nb)
    (out_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
    return not error, seconds, error


def summary_table(rows, mode: str):
    """Per notebook: ok, seconds, mode and the recorded numbers, as a pandas table."""
    import pandas as pd

    return pd.DataFrame([{"notebook": name, "ok": ok, "seconds": round(seconds), "mode": mode, **results}
                         for name, ok, seconds, results in rows]).set_index("notebook")


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or None
    out_dir, mode, rows = build_dir(), "fast" if fast_mode() else "full", []
    for path in notebooks(names):
        results_file = build_dir("results") / f"{path.stem}.json"
        results_file.unlink(missing_ok=True)  # numbers from this run only
        print(f"running {path.name} ({mode} mode) ...", flush=True)
        ok, seconds, error = execute(path, out_dir)
        if error:
            print(f"  FAILED: {error}", flush=True)
        results = json.loads(results_file.read_text()) if results_file.exists() else {}
        rows.append((path.stem, ok, seconds, results))
    table = summary_table(rows, mode)
    (out_dir / "summary.json").write_text(table.reset_index().to_json(orient="records", indent=1))
    print(f"\nSummary ({mode} mode), executed notebooks in {out_dir}:\n")
    print(table.reindex(columns=["ok", "seconds", "peak_memory_mib"]).to_string())
    if not names:
        from .site import build_site
        build_site(out_dir)
    return 0 if rows and all(ok for _, ok, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
