"""What a student sees: every notebook in JupyterLab's UI in a real browser, and the course site.

Debian's ``chromium`` (``/usr/bin/chromium``), driven by Playwright's Python API (no browser
download), opens JupyterLab on the notebooks as the session's ``course_run`` executed them
(fast mode, ``TLCOURSE_BUILD`` = that run's build folder). For each notebook it checks:

- no error and no stderr output (the red boxes a student sees), counted per notebook;
- in a notebook with widgets, the cells up to its last widget run again in the page (Run All
  Above Selected Cell, then that cell): every widget renders as a widget, not as text, and one
  interaction per widget (a dropdown choice, a slider step, ...) changes its output.

``make test-all`` (``--full``) also runs every source notebook through Run > Run All Cells in
the page, as before the shared run existed; a notebook that reads an earlier one's model (08
reads 05's) is given it from the course run, whichever worker ran the earlier notebook.

A last test builds the course site from the same run and opens its pages offline: images
shown, saved widget views rendered, no error or stderr output, nothing fetched from the
internet.

Screenshots and ``summary.json`` go to ``<tmp>/browser/`` (the path is printed). Selected with
``pytest -m browser``, left out with ``-m "not browser"``. Without chromium or Playwright the
tests skip, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}

SERVER_START_S = 90  # JupyterLab up and answering
KERNEL_START_S = 120  # a kernel idle after the notebook opens
NOTEBOOK_RUN_S = 600  # Run All Cells, one notebook (fast mode: 10-60 s today)
WIDGET_UPDATE_S = 60  # a widget's output after one interaction

STDERR_SELECTOR = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
# How a widget looks when the browser could not render it: its Python repr or Lab's error.
WIDGET_AS_TEXT = re.compile(
    r"Error displaying widget|^\s*[A-Z]\w*\((children|value|options|"
    r"description|layout)=",
    re.MULTILINE,
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip when something the browser test needs is missing; fail instead in CI."""
    if not condition:
        (pytest.fail if in_ci() else pytest.skip)(reason)


@pytest.fixture(scope="module")
def playwright_browser():
    """Debian's chromium, headless, launched by Playwright from its executable path."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(
            False,
            "Playwright is not installed: pip install playwright (no browser download "
            "needed; the test drives Debian's chromium)",
        )
    need(Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: apt-get install -y chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory, request):
    """``<tmp>/browser/shots``: screenshots and the summary; the labs' folders beside it.

    The per-notebook rows collected here are printed at the end, whatever pytest captures.
    """
    folder = tmp_path_factory.mktemp("browser") / "shots"
    folder.mkdir(parents=True)
    rows: list[dict] = []
    yield folder, rows
    if not rows:
        return
    (folder / "summary.json").write_text(json.dumps(rows, indent=2))
    lines = [
        (
            f"browser test: screenshots and summary.json in {folder}, JupyterLab's logs in "
            f"{folder.parent}/*/jupyterlab.log"
        ),
        (
            f"{'notebook':34s} {'cells':>5s} {'outputs':>7s} {'stderr':>6s} {'errors':>6s} "
            f"{'widgets':>9s} {'changed':>7s} {'run s':>6s} {'total s':>7s}"
        ),
    ]
    for r in rows:
        lines.append(
            f"{r['notebook']:34s} {r['cells_run']:>2}/{r['code_cells']:<2} "
            f"{r['outputs']:>7} {r['stderr_outputs']:>6} {r['error_outputs']:>6} "
            f"{r['widgets_rendered']:>4}/{r['widgets_expected']:<4} "
            f"{r['widgets_changed']:>7} {r['run_s']:>6.1f} {r['total_s']:>7.1f}"
        )
    lines.append(f"{'total':34s} {'':>58s} {sum(r['total_s'] for r in rows):>7.1f}")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print("\n".join(lines))
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on a copy of ``notebooks/``; its REST API for clean-up."""

    def __init__(self, root: Path, build: Path, reuse: Path | None = None):
        """``reuse``: saved long computations to load (``TLCOURSE_REUSE``); none: compute all."""
        self.root, self.build = root, build
        # Kernels' Unix sockets live here: a short path (a socket's path has at most 107 bytes).
        self.runtime = tempfile.mkdtemp(prefix="lab-", dir="/tmp")
        self.port, self.token = free_port(), os.urandom(16).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "jupyterlab.log"
        jupyter = root / "jupyter"
        settings = jupyter / "lab-settings"
        # Lab 4 renders cells lazily by default; the test needs every cell in the page. No news
        # or update pop-ups (no internet here, and they would sit over the notebook).
        (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
        (
            settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        ).write_text(json.dumps({"windowingMode": "none"}))
        (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
        (
            settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        ).write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = dict(
            os.environ,
            TLCOURSE_FAST="1",
            TLCOURSE_BUILD=str(build),
            JUPYTER_CONFIG_DIR=str(jupyter / "config"),
            JUPYTER_RUNTIME_DIR=self.runtime,
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(jupyter / "workspaces"),
        )
        # The copy has no data/: notebooks find the project's provisioned data.
        env.setdefault("TLCOURSE_DATA", str(PROJECT_ROOT / "data"))
        env.pop("TLCOURSE_REUSE", None)
        if reuse is not None:
            env["TLCOURSE_REUSE"] = str(reuse)
        # ipykernel forwards what C/C++ code writes to fd 1/2 (TensorFlow's log lines) to the
        # notebook, as a student sees it, except when it finds PYTEST_CURRENT_TEST set.
        env.pop("PYTEST_CURRENT_TEST", None)
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            # kernels on Unix sockets, not TCP ports another test process could take
            "--KernelManager.transport=ipc",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                self.api("GET", "/api/status")
                return
            except (OSError, urllib.error.URLError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"JupyterLab did not start; its log:\n{self.log_tail()}")
                time.sleep(0.5)

    def api(self, method: str, path: str):
        request = urllib.request.Request(
            self.url + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions") or []:
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            shutil.rmtree(self.runtime, ignore_errors=True)

    def _stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.shutdown_kernels()
            except (OSError, urllib.error.URLError):
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def lab(shots, playwright_browser, course_run):
    """JupyterLab (this venv's) on ``<tmp>/browser/lab/notebooks``.

    That folder receives each notebook as the course run executed it; kernels build into the course
    run's folder, where 05 finds 04's model. Cells run again reuse the course run's training and
    long predictions (``tl.reuse``, as in a lecture demo): the same numbers, without the wait.
    """
    folder, _ = shots
    root = folder.parent / "lab"
    (root / "notebooks").mkdir(parents=True)
    server = Lab(root, course_run.build, reuse=course_run.build / "reuse")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fresh_lab(shots, playwright_browser):
    """JupyterLab on a copy of the source notebooks (no outputs), building into its own folder."""
    folder, _ = shots
    root = folder.parent / "fresh-lab"
    shutil.copytree(
        PROJECT_ROOT / "notebooks",
        root / "notebooks",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
    )
    server = Lab(root, root / "build")
    yield server
    server.stop()


# One look at the notebook in the page: prompts, kernel status, outputs, widgets.
NOTEBOOK_STATE_JS = """stderrSelector => {
  const nb = document.querySelector('.jp-NotebookPanel .jp-Notebook');
  const indicator = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
  const status = indicator ? indicator.getAttribute('data-status') : null;
  const dialog = document.querySelector('.jp-Dialog');
  if (!nb) return {status, prompts: [], dialog: dialog && dialog.innerText};
  const cells = [...nb.querySelectorAll('.jp-Cell')];
  const code = cells.filter(c => c.classList.contains('jp-CodeCell'));
  const prompts = code.map(c => {
    const p = c.querySelector('.jp-InputArea-prompt');
    return p ? p.textContent.trim() : '';
  });
  const outside = e => !e.parentElement.closest('.jupyter-widgets');
  const cellOf = e => cells.indexOf(e.closest('.jp-Cell')) + 1;
  const outputs = [...nb.querySelectorAll('.jp-OutputArea-child')].filter(outside);
  const stderr = [...nb.querySelectorAll(stderrSelector)].map(
      e => ({cell: cellOf(e), text: e.innerText.trim().slice(0, 600)}));
  const roots = [...nb.querySelectorAll('.jp-OutputArea-output > .jupyter-widgets')]
      .filter(outside);
  roots.forEach((e, i) => e.setAttribute('data-browser-test-widget', String(i)));
  const texts = [...nb.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText);
  return {status, prompts, codeCells: code.map(cellOf), dialog: dialog && dialog.innerText,
          outputs: outputs.length,
          stderr, widgets: roots.map(cellOf), texts,
          images: nb.querySelectorAll('.jp-OutputArea-output img').length};
}"""

# Pages of the lecture build: nbconvert's classes, and MyST-NB's (the Jupyter Book site).
SITE_STDERR_SELECTOR = f"{STDERR_SELECTOR}, .output.stderr, .output.traceback"
# Saved widget views in a page, and how many of them the widget manager rendered.
SITE_WIDGETS_JS = """() => {
  const views = document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-view+json"]').length;
  const roots = [...document.querySelectorAll('.jupyter-widgets')].filter(
      e => !e.parentElement.closest('.jupyter-widgets'));
  return [views, roots.length];
}"""

# What a widget shows, as opposed to its controls: Output areas, HTML, images.
WIDGET_OUTPUT_JS = """e => [...e.querySelectorAll(
  '.widget-output, .widget-html, .widget-htmlmath, .widget-image')].map(x => x.outerHTML)
  .join('\\n')"""


def notebook_state(page) -> dict:
    return page.evaluate(NOTEBOOK_STATE_JS, STDERR_SELECTOR)


def menu(page, top: str, item: str) -> None:
    page.click(f".lm-MenuBar-itemLabel:text-is('{top}')")
    page.click(f".lm-Menu-itemLabel:text-is('{item}')")


def wait_for(page, done, seconds: float, what: str) -> dict:
    """Poll the notebook's state until ``done(state)`` holds on three looks in a row."""
    deadline, streak = time.monotonic() + seconds, 0
    while True:
        state = notebook_state(page)
        if state.get("status") == "dead":
            pytest.fail(f"the kernel died while waiting for {what}")
        streak = streak + 1 if done(state) else 0
        if streak >= 3:
            return state
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {seconds} s waiting for {what}; kernel "
                f"{state.get('status')}, prompts {state.get('prompts')}, dialog "
                f"{state.get('dialog')!r}"
            )
        page.wait_for_timeout(500)


def block_network(page) -> list[str]:
    """Let ``page`` load only local files; return the list its blocked requests' URLs go into."""
    blocked: list[str] = []

    def offline(route):
        if route.request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    return blocked


def saved_outputs(path: Path) -> dict:
    """Output kinds in the notebook file Lab saved: errors and stderr streams, widget views."""
    nb = json.loads(path.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    return {
        "error": sum(o["output_type"] == "error" for o in outputs),
        "stderr": sum(o["output_type"] == "stream" and o.get("name") == "stderr" for o in outputs),
        "widgets": sum(WIDGET_VIEW_MIME in o.get("data", {}) for o in outputs),
    }


def interact(page, widget) -> str | None:
    """Change one control of ``widget``: a dropdown, a slider, a toggle, a checkbox, a radio.

    Returns what was done, or None when the widget has no such control.
    """
    for select in widget.locator("select:not([disabled])").all():
        options = select.locator("option").evaluate_all("os => os.map(o => o.value)")
        if len(options) > 1:
            current = select.input_value()
            choice = (
                options[(options.index(current) + 1) % len(options)]
                if current in options
                else options[0]
            )
            select.select_option(choice)
            return f"dropdown {current!r} -> {choice!r}"
    for handle in widget.locator(".noUi-handle").all():
        now, top = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemax")
        key = "ArrowLeft" if now is not None and now == top else "ArrowRight"
        handle.focus()
        handle.press(key)
        return f"slider at {now}: {key}"
    for selector, what in (
        (".widget-toggle-buttons button:not(.mod-active)", "toggle button"),
        (".widget-toggle-button", "toggle button"),
        (".widget-checkbox input", "checkbox"),
        (".widget-radio-box input:not(:checked)", "radio button"),
    ):
        controls = widget.locator(selector)
        if controls.count():
            controls.first.click()
            return what
    return None


def widget_cells(path: Path) -> list[int]:
    """Indexes of the cells whose saved outputs hold a widget view."""
    nb = json.loads(path.read_text())
    return [
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code"
        and any(WIDGET_VIEW_MIME in o.get("data", {}) for o in c.get("outputs", []))
    ]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_in_jupyterlab(notebook: Path, lab: Lab, playwright_browser, shots, course_run):
    """The executed notebook as a student opens it; its widgets run again and answer."""
    executed = course_run.get(notebook.stem).executed
    assert executed.ok, f"{notebook.stem} did not run: {executed.error}"
    shutil.copyfile(executed.path, lab.root / "notebooks" / notebook.name)
    look_at(notebook, lab, playwright_browser, shots, run="widgets")


@pytest.mark.full
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_run_all_in_jupyterlab(
    notebook: Path, fresh_lab: Lab, playwright_browser, shots, course_run
):
    """The source notebook, every cell run by Run > Run All Cells in the page.

    What it reads from an earlier notebook (08: 05's model) comes from the course run: under
    pytest-xdist the earlier notebook's own Run All may be on another worker, in another Lab.
    """
    course_run.provide_needs(notebook, fresh_lab.build)
    look_at(notebook, fresh_lab, playwright_browser, shots, run="all")


def look_at(notebook: Path, lab: Lab, playwright_browser, shots, run: str) -> None:
    """Open ``notebook`` in ``lab``; ``run="all"``:

    Run All Cells; ``run="widgets"``: run again the cells up to its last widget cell, if it has one.
    Then check outputs, widgets and interactions.
    """
    folder, rows = shots
    stem = f"{notebook.stem}{'-run-all' if run == 'all' else ''}"
    copy = lab.root / "notebooks" / notebook.name
    rerun = widget_cells(copy) if run == "widgets" else []
    page = playwright_browser.new_page(viewport=VIEWPORT)
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)[:300]))
    start = time.monotonic()
    problems: list[str] = []
    try:
        # A workspace of its own, reset, so Lab opens this notebook alone.
        page.goto(
            f"{lab.url}/lab/workspaces/{stem}/tree/notebooks/{notebook.name}"
            f"?reset&token={lab.token}"
        )
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
        wait_for(
            page,
            lambda s: s["status"] == "idle" and not s.get("dialog"),
            KERNEL_START_S,
            "the kernel to start",
        )
        opened = time.monotonic()
        sidebar = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if sidebar.count():  # fold the file browser away: more notebook in the screenshots
            sidebar.first.click()

        if run == "all":
            menu(page, "Run", "Run All Cells")
        elif rerun:
            # the last widget cell selected, the cells above it run, then it
            page.locator(".jp-Notebook .jp-Cell").nth(rerun[-1]).locator(
                ".jp-InputArea-prompt"
            ).click()
            menu(page, "Run", "Run All Above Selected Cell")
            wait_for(
                page,
                lambda s: s["status"] == "idle" and not any("*" in p for p in s["prompts"]),
                NOTEBOOK_RUN_S,
                "the cells above the last widget to run",
            )
            menu(page, "Run", "Run Selected Cell and Do not Advance")
        state = wait_for(
            page,
            lambda s: s["status"] == "idle" and not any("*" in p for p in s["prompts"]),
            NOTEBOOK_RUN_S,
            "the cells to finish",
        )
        ran = time.monotonic()
        not_run = [
            cell
            for cell, prompt in zip(state["codeCells"], state["prompts"])
            if not re.search(r"\d", prompt)
        ]
        if not_run and run == "all":
            problems.append(f"cells {not_run} did not run (Run All stops at an error)")

        # Save through the UI: the file tells errors from stderr and counts the widget views.
        before = copy.stat().st_mtime_ns
        menu(page, "File", "Save Notebook")
        deadline = time.monotonic() + 30
        saved = None
        while saved is None and time.monotonic() < deadline:
            page.wait_for_timeout(200)
            if copy.stat().st_mtime_ns == before:
                continue
            try:
                saved = saved_outputs(copy)
            except json.JSONDecodeError:  # read while the server was still writing the file
                pass
        assert saved is not None, f"JupyterLab did not save {copy.name} within 30 s"

        # The whole notebook in one picture: a viewport as tall as the notebook.
        height = page.evaluate(
            "() => { const e = document.querySelector("
            "'.jp-NotebookPanel .jp-WindowedPanel-outer'); "
            "return e ? e.scrollHeight : 0; }"
        )
        page.set_viewport_size(
            {
                "width": VIEWPORT["width"],
                "height": max(VIEWPORT["height"], min(height + 150, 30_000)),
            }
        )
        page.wait_for_timeout(500)
        page.screenshot(path=str(folder / f"{stem}.png"))
        page.set_viewport_size(VIEWPORT)

        # Widgets: rendered as widgets (the manager renders them a moment after their cell),
        # and each one answers one interaction.
        deadline = time.monotonic() + 15
        shown = notebook_state(page)
        while len(shown["widgets"]) < saved["widgets"] and time.monotonic() < deadline:
            page.wait_for_timeout(500)
            shown = notebook_state(page)
        if len(shown["widgets"]) != saved["widgets"]:
            problems.append(
                f"{saved['widgets']} widget views in the notebook, "
                f"{len(shown['widgets'])} rendered as widgets"
            )
        changed, interactions = 0, []
        for i, cell in enumerate(shown["widgets"]):
            widget = page.locator(f"[data-browser-test-widget='{i}']")
            widget.scroll_into_view_if_needed()
            widget.screenshot(path=str(folder / f"{stem}-widget{i + 1}-before.png"))
            output = widget.evaluate(WIDGET_OUTPUT_JS)
            action = interact(page, widget)
            if action is None:
                interactions.append(f"cell {cell}: no control")
                continue
            try:
                wait_for(
                    page,
                    lambda s, w=widget, old=output: (
                        s["status"] == "idle" and w.evaluate(WIDGET_OUTPUT_JS) != old
                    ),
                    WIDGET_UPDATE_S,
                    f"widget {i + 1} (cell {cell}) to answer: {action}",
                )
                changed += 1
                interactions.append(f"cell {cell}: {action}: output changed")
            except pytest.fail.Exception as exc:
                problems.append(str(exc).splitlines()[0])
                interactions.append(f"cell {cell}: {action}: output unchanged")
            widget.screenshot(path=str(folder / f"{stem}-widget{i + 1}-after.png"))
        if rerun and changed < len(rerun):
            problems.append(
                f"{len(rerun)} widget cells ran again, {changed} widgets answered an interaction"
            )

        final = notebook_state(page)  # after the interactions: their errors count too
        for text in {t for t in shown["texts"] + final["texts"] if WIDGET_AS_TEXT.search(t)}:
            problems.append(f"a widget shown as text: {text[:200]!r}")
        for out in final["stderr"]:
            problems.append(f"cell {out['cell']} stderr/error output: {out['text'][:300]!r}")
        if saved["error"] + saved["stderr"] and not final["stderr"]:
            problems.append(
                f"the saved notebook has {saved['error']} error and "
                f"{saved['stderr']} stderr outputs that the page did not show"
            )
        if not shown["outputs"]:
            problems.append("the page shows no output at all")
        rows.append(
            {
                "notebook": stem,
                "code_cells": len(state["prompts"]),
                "cells_run": len(state["prompts"]) - len(not_run),
                "outputs": shown["outputs"],
                "images": shown["images"],
                "stderr_outputs": len(final["stderr"]),
                "error_outputs": saved["error"],
                "stderr_streams_saved": saved["stderr"],
                "widgets_expected": saved["widgets"],
                "widgets_rendered": len(shown["widgets"]),
                "widgets_changed": changed,
                "interactions": interactions,
                "page_errors": page_errors,
                "open_s": round(opened - start, 1),
                "run_s": round(ran - opened, 1),
                "total_s": round(time.monotonic() - start, 1),
                "screenshot": str(folder / f"{stem}.png"),
            }
        )
        print(json.dumps(rows[-1], indent=1))
    except BaseException:
        try:
            page.screenshot(path=str(folder / f"{stem}-failure.png"))
        finally:
            print(f"screenshot {folder / f'{stem}-failure.png'}; JupyterLab's log {lab.log}")
        raise
    finally:
        page.close()
        lab.shutdown_kernels()
    assert not problems, f"{stem} in JupyterLab (screenshots in {folder}):\n  " + "\n  ".join(
        problems
    )


def test_lecture_site_in_browser(course_run, playwright_browser, shots):
    """The course site built from the course run opens offline.

    Index.html, then every notebook's page, with its images, its widgets' saved views, and no error
    or stderr output.

    Requests that would leave the machine are blocked, listed, and fail the test.
    """
    course_run.all()
    build = course_run.build
    done = subprocess.run(
        [sys.executable, "-m", "tlcourse.course.site", str(build)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"the site build failed:\n{(done.stdout + done.stderr)[-3000:]}"
    index = build / "site" / "index.html"
    assert index.is_file(), f"the site build wrote no {index}"
    folder, _ = shots

    page = playwright_browser.new_page(viewport=VIEWPORT)
    blocked = block_network(page)
    problems, seen = [], []
    try:
        page.goto(index.as_uri())
        links = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
        page.screenshot(path=str(folder / "site-index.png"), full_page=True)
        for notebook in NOTEBOOKS:
            stem = notebook.stem
            targets = [link for link in links if link.split("#")[0].endswith(f"/{stem}.html")]
            if not targets:
                problems.append(f"{index} links no page for {stem}")
                continue
            page.goto(targets[0])
            page.wait_for_load_state("load")
            # Saved widget views render a moment after the page loads.
            views, rendered, deadline = 0, 0, time.monotonic() + 30
            while True:
                views, rendered = page.evaluate(SITE_WIDGETS_JS)
                if rendered >= views or time.monotonic() > deadline:
                    break
                page.wait_for_timeout(500)
            images = page.eval_on_selector_all(
                "img",
                "is => is.map(i => ({ok: i.complete && i.naturalWidth > 0, "
                "src: i.src.slice(0, 100)}))",
            )
            stderr = page.eval_on_selector_all(
                SITE_STDERR_SELECTOR, "es => es.map(e => e.innerText)"
            )
            text = page.inner_text("body")
            page.screenshot(path=str(folder / f"site-{stem}.png"), full_page=True)
            seen.append(
                f"{stem}: {len(images)} images, {views} widget views, {rendered} rendered, "
                f"{len(stderr)} stderr/error outputs"
            )
            problems += [f"{stem}: image did not load: {i['src']}" for i in images if not i["ok"]]
            problems += [f"{stem}: stderr/error output: {t[:300]!r}" for t in stderr]
            if rendered < views:
                problems.append(
                    f"{stem}: {views} saved widget views, {rendered} rendered as widgets"
                )
            problems += [
                f"{stem}: a widget shown as text: {m.group(0)!r}"
                for m in WIDGET_AS_TEXT.finditer(text)
            ]
    finally:
        page.close()
    print(
        f"site pages and screenshots in {folder}:\n  "
        + "\n  ".join(seen)
        + f"\nblocked requests {sorted(set(blocked))}"
    )
    if not any(" 0 images" not in line for line in seen):
        problems.append("no page of the site shows an image")
    problems += [f"blocked request (the site must read offline): {u}" for u in sorted(set(blocked))]
    assert not problems, f"the lecture site ({build / 'site'}):\n  " + "\n  ".join(problems)


DECK_STATE_JS = """() => ({
  ready: !!document.querySelector('.reveal.ready'),
  slides: [...document.querySelectorAll('.reveal .slides section')].filter(
      s => !s.querySelector('section')).length,
  math: document.querySelectorAll('mjx-container').length,
  rawMath: /\\$[^$\\n]{1,80}\\$/.test(document.querySelector('.reveal .slides').innerText),
  images: [...document.images].map(i => i.complete && i.naturalWidth > 0),
})"""


def test_lecture_decks_in_browser(course_run, playwright_browser, shots):
    """Every notebook's reveal.js deck, made from the course run, opens offline in Chromium.

    reveal.js loads from the build, as many slides show as the deck holds, math is typeset,
    figures are shown.
    """
    from tlcourse.course.slides import build_slides, count_slides

    course_run.all()
    slides = build_slides(course_run.build, verbose=False)
    folder, _ = shots
    problems, seen = [], []
    for notebook in NOTEBOOKS:
        deck = slides / f"{notebook.stem}.slides.html"
        expected = count_slides(deck.read_text(encoding="utf-8"))
        page = playwright_browser.new_page(viewport=VIEWPORT)
        blocked = block_network(page)
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)[:200]))
        try:
            page.goto(deck.as_uri())
            page.wait_for_selector(".reveal.ready", timeout=30_000)
            page.wait_for_timeout(1500)  # MathJax typesets after reveal.js is ready
            state = page.evaluate(DECK_STATE_JS)
            page.screenshot(path=str(folder / f"deck-{notebook.stem}.png"))
        finally:
            page.close()
        seen.append(
            f"{notebook.stem}: {state['slides']} slides, {state['math']} formulas, "
            f"{sum(state['images'])} images"
        )
        if state["slides"] != expected or expected < 4:
            problems.append(
                f"{notebook.stem}: {state['slides']} slides shown, {expected} in the deck"
            )
        if state["rawMath"] or (notebook.stem != "08_on_device" and not state["math"]):
            problems.append(f"{notebook.stem}: math not typeset ({state['math']} formulas)")
        if not all(state["images"]):
            problems.append(f"{notebook.stem}: an image did not load")
        problems += [f"{notebook.stem}: blocked request {url}" for url in blocked]
        problems += [f"{notebook.stem}: page error {error}" for error in errors]
    print("decks:\n  " + "\n  ".join(seen))
    assert not problems, "\n".join(problems)


def test_rise_presents_a_notebook_in_jupyterlab(lab, playwright_browser, shots, course_run):
    """jupyterlab-rise's slideshow of a notebook opens from the lab server, reveal.js running."""
    executed = course_run.get("06").executed
    shutil.copyfile(executed.path, lab.root / "notebooks" / executed.path.name)
    folder, _ = shots
    page = playwright_browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(f"{lab.url}/rise/notebooks/{executed.path.name}?token={lab.token}")
        page.wait_for_selector(".reveal .slides section", timeout=120_000)
        page.wait_for_timeout(1000)
        slides = page.evaluate("document.querySelectorAll('.reveal .slides section').length")
        page.screenshot(path=str(folder / "rise-06.png"))
    finally:
        page.close()
        lab.shutdown_kernels()
    assert slides >= 4, f"RISE shows {slides} slides"
