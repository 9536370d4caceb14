"""The lecture build (``make run``): each notebook run in a fresh kernel in the mode ``TLCOURSE_FAST``
selects, saved with its HTML page into ``build/`` (``build-fast/``), summarised, then the course site.

    python -m tlcourse.course.build [NOTEBOOK ...]"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..lesson.config import build_dir, fast_mode, project_root


def notebooks(names=None) -> list[Path]:
    """The course's notebooks (``NN_name.ipynb``) in order; ``names``: only those starting so."""
    found = sorted((project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    return [p for p in found if not names or any(p.name.startswith(n) for n in names)]


def execute(path: Path, out_dir: Path) -> tuple[bool, float, str]:
    """Run the notebook ``path`` in a fresh kernel; save it and its HTML in ``out_dir``: (ok, s, error)."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(path.parent)}})
    start, error = time.perf_counter(), ""
    try:
        client.execute()
    except Exception as exc:  # CellExecutionError, timeouts, dead kernels
        error = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
    seconds = time.perf_counter() - start
    nbformat.write(nb, out_dir / path.name)
    (out_dir / f"{path.stem}.html").write_text(HTMLExporter(embed_images=True).from_notebook_node(nb)[0],
                                               encoding="utf-8")
    return not error, seconds, error


def main(argv=None) -> int:
    import pandas as pd
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
        rows.append({"notebook": path.stem, "ok": ok, "seconds": round(seconds), "mode": mode, **results})
    table = pd.DataFrame(rows, columns=None if rows else ["notebook", "ok", "seconds"]).set_index("notebook")
    (out_dir / "summary.json").write_text(table.reset_index().to_json(orient="records", indent=1))
    print(f"\nSummary ({mode} mode), executed notebooks in {out_dir}:\n")
    print(table.reindex(columns=["ok", "seconds", "peak_memory_mib"]).to_string())
    if not names:
        from .site import build_site
        build_site(out_dir)
    return 0 if rows and table["ok"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
