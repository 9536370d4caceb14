"""The lecture build (``make run``): execute every notebook, export HTML, summarise.

Each notebook in ``notebooks/`` runs top to bottom in a fresh ``python3``
kernel (nbclient), in the mode ``TLCOURSE_FAST`` selects. The executed
notebook and a self-contained HTML page (images embedded, widget state
saved) land in ``build/``, with ``build/index.html`` linking them in order.
The summary prints, per notebook, ok or failed, its seconds, its peak memory
and the headline numbers it recorded with :func:`tlcourse.report.record`.

    python -m tlcourse.build [NOTEBOOK ...]
"""
from __future__ import annotations

import html
import json
import sys
import time
from pathlib import Path

from .config import build_dir, fast_mode, project_root
from .report import load_results

CELL_TIMEOUT = 1800


def notebooks(names=None) -> list[Path]:
    """The course's notebooks in order (``NN_name.ipynb``), or those named."""
    folder = project_root() / "notebooks"
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if names:
        found = [p for p in found if any(p.name.startswith(n) or p.stem == n for n in names)]
    return found


def execute(path: Path, out_dir: Path) -> tuple[bool, float, str]:
    """Run one notebook in a fresh kernel; write ``.ipynb`` and ``.html`` to ``out_dir``."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            store_widget_state=True)
    start = time.perf_counter()
    error = ""
    try:
        client.execute()
    except Exception as exc:  # CellExecutionError, timeouts, dead kernels
        error = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
    seconds = time.perf_counter() - start
    nbformat.write(nb, out_dir / path.name)
    exporter = HTMLExporter(embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    (out_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
    return not error, seconds, error


def _headline(results: dict) -> str:
    items = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
             for k, v in results.items() if k != "peak_memory_mib" and not isinstance(v, (list, dict))]
    return ", ".join(items)


def write_index(rows, out_dir: Path, mode: str) -> Path:
    """``build/index.html``: the notebooks in order, with their headline numbers."""
    lines = ["<!doctype html><meta charset='utf-8'><title>tlcourse: lecture build</title>",
             "<h1>Transfer learning with MobileNet</h1>",
             f"<p>Executed in {mode} mode.</p><table border=1 cellpadding=4>",
             "<tr><th>notebook</th><th>status</th><th>seconds</th><th>peak MiB</th><th>headline numbers</th></tr>"]
    for name, ok, seconds, results in rows:
        lines.append(f"<tr><td><a href='{name}.html'>{html.escape(name)}</a></td>"
                     f"<td>{'ok' if ok else 'FAILED'}</td><td>{seconds:.0f}</td>"
                     f"<td>{results.get('peak_memory_mib', '')}</td>"
                     f"<td>{html.escape(_headline(results))}</td></tr>")
    lines.append("</table>")
    path = out_dir / "index.html"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or None
    out_dir = build_dir()
    mode = "fast" if fast_mode() else "full"
    rows = []
    for path in notebooks(names):
        results_file = build_dir("results") / f"{path.stem}.json"
        results_file.unlink(missing_ok=True)  # numbers from this run only
        print(f"running {path.name} ({mode} mode) ...", flush=True)
        ok, seconds, error = execute(path, out_dir)
        if error:
            print(f"  FAILED: {error}", flush=True)
        rows.append((path.stem, ok, seconds, load_results(path.stem)))
    index = write_index(rows, out_dir, mode)
    (out_dir / "summary.json").write_text(json.dumps(
        [{"notebook": n, "ok": ok, "seconds": round(s, 1), "results": r} for n, ok, s, r in rows],
        indent=2))
    print(f"\nSummary ({mode} mode); executed notebooks and HTML in {out_dir}, index {index}")
    print(f"{'notebook':34s} {'status':6s} {'seconds':>7s} {'peak MiB':>8s}  headline numbers")
    for name, ok, seconds, results in rows:
        print(f"{name:34s} {'ok' if ok else 'FAILED':6s} {seconds:7.0f} "
              f"{results.get('peak_memory_mib', ''):>8}  {_headline(results)}")
    return 0 if rows and all(ok for _, ok, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
