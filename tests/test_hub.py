"""A class on ``make hub``'s JupyterHub, end to end: students, homework and grades.

The hub (``tlcourse.course.hub``, ``deploy/hub/jupyterhub_config.py``) starts on localhost with
configurable-http-proxy, PAM logins and system accounts made for the test (an instructor and two
students, removed afterwards), handing out two notebooks: 03 (it saves a model) and 06 (graded,
seconds to autograde). Debian's chromium, driven by Playwright, logs a student in through the
nbgitpuller link and runs notebook 03 in JupyterLab; JupyterHub's REST API, nbgrader's
assignment list (the students') and formgrader (the instructor's) do the rest, as their pages
would. The homework goes round while A's notebook still runs, as in a class. Checked:

- the saved model and the notebook's outputs survive a server restart;
- release, fetch, submit (one right answer, one catalogued mistake), collect, autograde,
  feedback: each student's feedback shows the expected score;
- bad input: a second submission (the later one is graded), a deleted test cell (put back and
  graded), an edited test cell (restored), a file that is not a notebook (not graded, a plain
  message), a server killed while a cell runs (the hub notices, the restart finds the files);
- student A cannot read student B's home nor the instructor's, and no file A can read holds
  nbgrader's solution or hidden-test markers.

It needs root (system accounts), npm and chromium; without them it skips, except in CI, where it
fails. The hub's log is printed when the test fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
import requests
from course_run import exercises
from test_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, menu, need, wait_for
from wrong_answers import WRONG_ANSWERS

from tlcourse.course import homework, hub

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUN = "03_training_from_scratch"  # saves a model (fast mode: about 30 s)
GRADED = "06_depthwise_separable_cost"  # autograded in seconds
HANDED_OUT = [RUN, GRADED]
MARKERS = ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS")
# what the walk over student A's readable files skips as not text
BINARY = {
    ".so",
    ".h5",
    ".keras",
    ".jpg",
    ".jpeg",
    ".png",
    ".tgz",
    ".gz",
    ".whl",
    ".pyc",
    ".tflite",
    ".npz",
    ".npy",
    ".pb",
    ".zip",
}
READY_S = 120


def _free_port_block(size: int = 3) -> int:
    """A port with the ``size - 1`` ports after it free (the hub uses three)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + size > 65535:
            continue
        try:
            for offset in range(1, size):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return port
    raise RuntimeError("no three free ports in a row")


class Hub:
    """The running hub: its address, accounts and REST API."""

    def __init__(self, layout: hub.Layout, port: int, passwords: dict, instructor: str, log: Path):
        self.layout, self.url, self.passwords = layout, f"http://127.0.0.1:{port}", passwords
        self.instructor, self.log = instructor, log
        self.tokens: dict[str, str] = {}

    def token(self, name: str) -> str:
        """An API token for ``name``, asked for with the account's password (JupyterHub's API)."""
        if name not in self.tokens:
            r = requests.post(
                f"{self.url}/hub/api/users/{name}/tokens",
                json={"auth": {"username": name, "password": self.passwords[name]}},
                timeout=30,
            )
            assert r.status_code == 201, f"token for {name}: {r.status_code} {r.text[:300]}"
            self.tokens[name] = r.json()["token"]
        return self.tokens[name]

    def hub_api(self, method: str, path: str, name: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.token(name)}"}
        return requests.request(
            method, f"{self.url}/hub/api/{path}", headers=headers, timeout=60, **kwargs
        )

    def server(self, method: str, name: str, path: str, **kwargs) -> requests.Response:
        """A request to ``name``'s own server, through the proxy, with ``name``'s token."""
        headers = {"Authorization": f"token {self.token(name)}"}
        return requests.request(
            method, f"{self.url}/user/{name}/{path}", headers=headers, timeout=300, **kwargs
        )

    def ready(self, name: str) -> dict:
        """``name``'s server, started if it is not running, once it answers."""
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            model = self.hub_api("GET", f"users/{name}", name).json()
            server = model.get("servers", {}).get("", {})
            if server.get("ready"):
                return server
            if not server:
                r = self.hub_api("POST", f"users/{name}/server", name)
                assert r.status_code in (201, 202, 400), f"start {name}: {r.status_code} {r.text}"
            time.sleep(1)
        pytest.fail(f"{name}'s server was not ready within {READY_S} s")

    def stop(self, name: str) -> None:
        r = self.hub_api("DELETE", f"users/{name}/server", name)
        assert r.status_code in (202, 204), f"stop {name}: {r.status_code} {r.text}"
        deadline = time.monotonic() + 60
        while self.hub_api("GET", f"users/{name}", name).json().get("servers"):
            assert time.monotonic() < deadline, f"{name}'s server did not stop"
            time.sleep(0.5)

    def contents(self, name: str, path: str) -> dict:
        r = self.server("GET", name, f"api/contents/{path}")
        assert r.status_code == 200, f"{name} reads {path}: {r.status_code} {r.text[:200]}"
        return r.json()

    def put_notebook(self, name: str, path: str, nb) -> None:
        body = {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(nb))}
        r = self.server("PUT", name, f"api/contents/{path}", json=body)
        assert r.status_code in (200, 201), f"{name} saves {path}: {r.status_code} {r.text[:200]}"

    def assignments(self, name: str, action: str) -> dict:
        """nbgrader's assignment list, as its Fetch, Submit and Fetch Feedback buttons do."""
        data = {"assignment_id": GRADED, "course_id": homework.COURSE_ID}
        r = self.server("POST", name, f"assignments/{action}", data=data)
        assert r.status_code == 200, f"{name} {action}: {r.status_code} {r.text[:300]}"
        return r.json()

    def formgrader(self, path: str) -> dict:
        """The instructor's formgrader API, as its buttons call it."""
        r = self.server("POST", self.instructor, f"formgrader/api/{path}")
        assert r.status_code == 200, f"formgrader {path}: {r.status_code} {r.text[:300]}"
        return r.json()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def as_user(name: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", name, "--", *command], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def class_hub(tmp_path_factory):
    need(os.geteuid() == 0, "the hub test makes system accounts: run it as root")
    need(bool(shutil.which("npm")), "npm not found: apt-get install -y npm")
    need(Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: apt-get install -y chromium")
    tag = f"{os.getpid() % 100000:05d}"
    instructor, students = f"tlc{tag}i", [f"tlc{tag}a", f"tlc{tag}b"]
    group = f"tlc{tag}s"
    # the hub's folder must be reachable by every account: not under pytest's private tmp
    root = Path("/tmp") / f"tlcourse-hub-{tag}"
    port = _free_port_block()
    log = tmp_path_factory.mktemp("hub") / "jupyterhub.log"
    proc = None
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TLCOURSE_BUILD", str(tmp_path_factory.mktemp("hub-build")))
            started = time.monotonic()
            layout = hub.setup(
                root,
                instructor=instructor,
                group=group,
                notebooks=[PROJECT_ROOT / "notebooks" / f"{n}.ipynb" for n in HANDED_OUT],
                port=port,
                ip="127.0.0.1",
                fast=True,
            )
            passwords = {name: hub.add_user(name, group) for name in students}
            passwords[instructor] = hub.add_user(instructor)
            print(f"hub setup: {time.monotonic() - started:.1f} s")
        with log.open("w") as out:
            proc = subprocess.Popen(
                hub.command(layout),
                cwd=layout.state,
                env=hub.environment(layout),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        the_hub = Hub(layout, port, passwords, instructor, log)
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{the_hub.url}/hub/api/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, f"the hub stopped:\n{the_hub.log_tail()}"
            assert time.monotonic() < deadline, f"the hub did not answer:\n{the_hub.log_tail()}"
            time.sleep(0.5)
        yield the_hub
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the hub stops every server it started
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for name in (*students, instructor):
            hub.remove_user(name)
        subprocess.run(["groupdel", group], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    need(Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _source(stem: str):
    return nbformat.read(PROJECT_ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)


def _points(cells, code_only: bool = True) -> float:
    """The points of the graded ``cells`` (``code_only``: those the autograder scores)."""
    return float(
        sum(
            homework.nbgrader_meta(c)["points"]
            for c in cells
            if homework.nbgrader_meta(c).get("grade") and (c.cell_type == "code" or not code_only)
        )
    )


def _feedback_score(the_hub: Hub, name: str) -> tuple[float, float]:
    """The score in ``name``'s fetched feedback, as the page shows it ("Score: 5.0 / 8.0")."""
    folder = f"{GRADED}/feedback"
    [stamp] = [e["path"] for e in the_hub.contents(name, folder)["content"]]
    page = the_hub.server("GET", name, f"files/{stamp}/{GRADED}.html").text
    assert not [m for m in MARKERS if m in page], f"{name}'s feedback shows nbgrader's markers"
    text = re.sub(r"<[^>]+>", " ", page)
    match = re.search(r"Score:\s*([\d.]+)\s*/\s*([\d.]+)", text)
    assert match, f"no score in {name}'s feedback"
    return float(match[1]), float(match[2])


@pytest.mark.browser
@pytest.mark.long
def test_a_class_on_the_hub(class_hub: Hub, browser):
    """Students, homework and grades through the hub, nothing lost, no answer in reach."""
    a, b = [n for n in class_hub.passwords if n != class_hub.instructor]
    running = {}
    steps = [
        # while A's notebook runs (a minute and more), the class goes on: homework, B joins
        (
            "A starts notebook 03",
            lambda: running.update(page=_student_starts_a_notebook(class_hub, browser, a)),
        ),
        ("the instructor adds B to the hub", lambda: _add_to_hub(class_hub, b)),
        ("homework round trip", lambda: _homework_round_trip(class_hub, a, b)),
        (
            "A's notebook 03 done, saved, restarted",
            lambda: _student_finishes_the_notebook(class_hub, running["page"], a),
        ),
        ("B's server killed", lambda: _server_killed_mid_run(class_hub, b)),
        ("what A can read", lambda: _nothing_to_read(class_hub, a, b)),
        ("the idle culler", lambda: _idle_culler_runs(class_hub)),
    ]
    try:
        for what, step in steps:
            start = time.monotonic()
            step()
            print(f"hub test: {what}: {time.monotonic() - start:.1f} s")
    except BaseException:
        print(f"the hub's log (last lines):\n{class_hub.log_tail()}")
        raise


def follow_link(the_hub: Hub, browser, name: str):
    """``name`` follows the nbgitpuller link (to notebook 03) and logs in; the page, in Lab."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(hub.link(the_hub.layout, RUN, host=the_hub.url))
    page.fill("#username_input", name)
    page.fill("#password_input", the_hub.passwords[name])
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{name}/lab/tree/tlcourse/notebooks/{RUN}.ipynb*", timeout=180_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
    return page


def _outputs(nb: dict) -> int:
    return sum(len(c.get("outputs", [])) for c in nb["cells"] if c["cell_type"] == "code")


def _student_starts_a_notebook(the_hub: Hub, browser, name: str):
    """The nbgitpuller link, a login, notebook 03 answered and started with Run All Cells."""
    notebook = f"tlcourse/notebooks/{RUN}.ipynb"
    page = follow_link(the_hub, browser, name)
    try:
        # the student answers the exercises (as the source does), then runs every cell
        pulled = nbformat.from_dict(the_hub.contents(name, notebook)["content"])
        the_hub.put_notebook(name, notebook, homework.fill(pulled, _source(RUN)))
        page.goto(f"{the_hub.url}/user/{name}/lab/workspaces/hub/tree/{notebook}?reset")
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
        wait_for(page, lambda s: s["status"] == "idle", 120, "the kernel to start")
        menu(page, "Run", "Run All Cells")
    except BaseException:
        page.close()
        raise
    return page


def _student_finishes_the_notebook(the_hub: Hub, page, name: str) -> None:
    """Notebook 03 runs to its end and is saved; a restart of the server loses nothing."""
    notebook = f"tlcourse/notebooks/{RUN}.ipynb"
    try:
        state = wait_for(
            page,
            lambda s: s["status"] == "idle" and not any("*" in p for p in s["prompts"]),
            600,
            "notebook 03 to run",
        )
        not_run = [i + 1 for i, p in enumerate(state["prompts"]) if not re.search(r"\d", p)]
        if not_run:
            page.screenshot(path=str(the_hub.log.parent / "03-not-run.png"), full_page=True)
        assert not not_run, f"code cells {not_run} did not run: {state['texts'][-3:]}"
        menu(page, "File", "Save Notebook")
        deadline = time.monotonic() + 60
        while True:
            r = the_hub.server("GET", name, f"api/contents/{notebook}")
            # a read can meet the save half-way (the server answered 400, an empty file): again
            if r.status_code == 200 and _outputs(before := r.json()["content"]):
                break
            assert time.monotonic() < deadline, (
                f"JupyterLab did not save the outputs in 60 s: {r.status_code} {r.text[:200]}"
            )
            page.wait_for_timeout(500)
    finally:
        page.close()

    models = "tlcourse-build/models"
    saved = {e["name"] for e in the_hub.contents(name, models)["content"]}
    assert any(n.startswith("03") and n.endswith(".keras") for n in saved), saved

    the_hub.stop(name)
    the_hub.ready(name)
    assert {e["name"] for e in the_hub.contents(name, models)["content"]} == saved
    assert the_hub.contents(name, notebook)["content"]["cells"] == before["cells"]


def _add_to_hub(the_hub: Hub, name: str) -> None:
    """The instructor adds a student to the hub, as the admin page does (B has not logged in)."""
    r = the_hub.hub_api("POST", f"users/{name}", the_hub.instructor)
    assert r.status_code == 201, f"add {name}: {r.status_code} {r.text[:200]}"


def _homework_round_trip(the_hub: Hub, a: str, b: str) -> None:
    """Release, fetch, submit, collect, autograde, feedback; and the bad submissions."""
    teacher = the_hub.instructor
    the_hub.ready(teacher)
    assert the_hub.formgrader(f"assignment/{GRADED}/assign")["success"]
    assert the_hub.formgrader(f"assignment/{GRADED}/release")["success"]

    source = _source(GRADED)
    mistaken, mistaken_tests = next(
        (s, t)
        for s, t in exercises(source)
        if WRONG_ANSWERS.get(homework.nbgrader_meta(s)["grade_id"])
    )
    gid = homework.nbgrader_meta(mistaken)["grade_id"]
    total = _points(source.cells)
    path = f"{GRADED}/{GRADED}.ipynb"
    fetched = {}
    for name in (a, b):
        the_hub.ready(name)
        the_hub.assignments(name, "fetch")
        fetched[name] = nbformat.from_dict(the_hub.contents(name, path)["content"])

    # A: right, with a test cell of another exercise deleted (nbgrader puts it back)
    right = homework.fill(fetched[a], source)
    deleted = next(
        c for s, t in exercises(right) if homework.nbgrader_meta(s)["grade_id"] != gid for c in t
    )
    right.cells.remove(deleted)
    the_hub.put_notebook(a, path, right)
    the_hub.assignments(a, "submit")

    # B: first right, then (the submission that counts) the mistake with its test edited away
    the_hub.put_notebook(b, path, homework.fill(fetched[b], source))
    the_hub.assignments(b, "submit")
    time.sleep(1.1)  # nbgrader tells submissions apart by their timestamps
    mistake = homework.fill(fetched[b], source, {gid: WRONG_ANSWERS[gid][0][1]})
    test_ids = {homework.nbgrader_meta(t)["grade_id"] for t in mistaken_tests}
    for cell in mistake.cells:
        if homework.nbgrader_meta(cell).get("grade_id") in test_ids:
            cell.source = "assert True  # the student's edit"
    the_hub.put_notebook(b, path, mistake)
    the_hub.assignments(b, "submit")

    assert the_hub.formgrader(f"assignment/{GRADED}/collect")["success"]
    for name in (a, b):
        result = the_hub.formgrader(f"submission/{GRADED}/{name}/autograde")
        assert result["success"], result.get("error") or result.get("log")
        assert the_hub.formgrader(f"assignment/{GRADED}/{name}/generate_feedback")["success"]
        assert the_hub.formgrader(f"assignment/{GRADED}/{name}/release_feedback")["success"]
    expected = {a: total, b: total - _points(mistaken_tests)}
    for name in (a, b):
        the_hub.assignments(name, "fetch_feedback")
        # the written answers wait for the instructor's hand: they count in the maximum only
        maximum = _points(source.cells, code_only=False)
        assert _feedback_score(the_hub, name) == (expected[name], maximum), name

    # A file that is not a notebook, submitted in the notebook's place: not graded, and why
    the_hub.server(
        "PUT",
        b,
        f"api/contents/{path}",
        json={"type": "file", "format": "text", "content": "my answers are in my head"},
    )
    the_hub.assignments(b, "submit")
    assert the_hub.formgrader(f"assignment/{GRADED}/collect")["success"]
    result = the_hub.formgrader(f"submission/{GRADED}/{b}/autograde")
    assert not result["success"]
    message = f"{result.get('log', '')}\n{result.get('error', '')}"
    assert f"{GRADED}.ipynb" in message and "JSON" in message, message[-600:]


def _server_killed_mid_run(the_hub: Hub, name: str) -> None:
    """A server killed while its kernel computes: the hub notices; the restart finds the files."""
    the_hub.ready(name)
    before = {e["name"] for e in the_hub.contents(name, GRADED)["content"]}
    kernel = the_hub.server("POST", name, "api/kernels", json={"name": "python3"}).json()
    _execute(the_hub, name, kernel["id"], "import time\nwhile True: time.sleep(1)")
    pids = subprocess.run(
        ["pgrep", "-u", name, "-f", "jupyterhub-singleuser"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert pids, f"no server process of {name}"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    # the hub polls its servers (every 10 s): it records this one stopped...
    deadline = time.monotonic() + 60
    while servers := the_hub.hub_api("GET", f"users/{name}", name).json().get("servers"):
        assert time.monotonic() < deadline, f"the hub still lists {name}'s killed server: {servers}"
        time.sleep(1)
    # ...and tells the student's page so, instead of an error from the proxy
    r = the_hub.server("GET", name, "api/status")
    assert r.status_code == 424 and "no longer running" in r.text and "Restart" in r.text, r.text
    the_hub.ready(name)
    assert {e["name"] for e in the_hub.contents(name, GRADED)["content"]} == before


def _idle_culler_runs(the_hub: Hub) -> None:
    """jupyterhub-idle-culler runs as the hub's service, with the class's timeout (an hour)."""
    services = the_hub.hub_api("GET", "services", the_hub.instructor).json()
    culler = services["idle-culler"]
    assert "--timeout=3600" in culler["command"] and culler["pid"], culler
    os.kill(culler["pid"], 0)  # alive


def _execute(the_hub: Hub, name: str, kernel_id: str, code: str) -> None:
    """Send ``code`` to a kernel of ``name``'s server over its websocket (as a page does)."""
    import uuid

    import websocket

    ws = websocket.create_connection(
        f"{the_hub.url.replace('http', 'ws')}/user/{name}/api/kernels/{kernel_id}/channels",
        header=[f"Authorization: token {the_hub.token(name)}"],
        timeout=30,
    )
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": name,
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                },
                "channel": "shell",
            }
        )
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the kernel says it is busy with it
        msg = json.loads(ws.recv())
        ours = msg.get("parent_header", {}).get("msg_id") == msg_id
        if ours and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "busy":
            break
    ws.close()


def _nothing_to_read(the_hub: Hub, a: str, b: str) -> None:
    """Student A cannot read B's home nor the instructor's; no file A can read gives answers."""
    for other in (b, the_hub.instructor):
        home = Path(os.path.expanduser(f"~{other}"))
        assert as_user(a, "ls", str(home)).returncode != 0, f"{a} can list {home}"
    course = (
        Path(os.path.expanduser(f"~{the_hub.instructor}"))
        / "course"
        / "source"
        / GRADED
        / f"{GRADED}.ipynb"
    )
    assert course.is_file()
    assert as_user(a, "cat", str(course)).returncode != 0, f"{a} can read {course}"

    # Every file A can read, as A's own `find` lists them. Packages installed from PyPI are
    # public (nbgrader's code and test notebooks hold its markers); the course's package is read.
    roots = [
        r
        for r in (str(the_hub.layout.root), "/home", "/srv", "/tmp", "/var/tmp")
        if Path(r).exists()
    ]
    listed = as_user(a, "find", *roots, "-type", "f", "-readable").stdout.splitlines()
    readable = [
        Path(p)
        for p in listed
        if not p.startswith(str(PROJECT_ROOT))
        and ("/site-packages/" not in p or "/site-packages/tlcourse/" in p)
        and Path(p).suffix not in BINARY
    ]
    assert any(p.name == f"{GRADED}.ipynb" for p in readable)  # A's own copy, at least
    sources = [PROJECT_ROOT / "notebooks" / f"{n}.ipynb" for n in HANDED_OUT]
    leaks = homework.answers_in(Path("/"), sources=sources, files=readable)
    # A's own answers are A's (A answered right): only the markers and other people's files count
    leaks = [x for x in leaks if "markers" in x or not x.startswith(os.path.expanduser(f"~{a}"))]
    assert not leaks, f"{a} can read answers in: {leaks[:10]} ({len(readable)} files read)"


# Bad input to the hub's own commands: plain messages, nothing changed.


def test_setup_needs_root(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(hub.TLCourseError, match="run it as root"):
        hub.setup(tmp_path / "hub")
    assert not (tmp_path / "hub").exists()


def test_account_names_are_checked():
    for bad in ("Alice", "1bob", "a b", "x" * 40, "../etc"):
        with pytest.raises(hub.TLCourseError, match="cannot be an account name"):
            hub.add_user(bad, "tlcourse-students")


def test_an_account_outside_the_class_is_not_taken_over():
    """``add-students root`` must not reset root's password: root is not in the class's group."""
    with pytest.raises(hub.TLCourseError, match="exists on this machine and is not in"):
        hub.add_user("root", "tlcourse-students-nonexistent")


def test_commands_on_a_hub_not_set_up(tmp_path, capsys):
    assert hub.main(["--root", str(tmp_path), "link"]) == 1
    assert "No hub is set up in" in capsys.readouterr().err


def test_the_link_pulls_the_class_repository(tmp_path):
    layout = hub.Layout(tmp_path)
    layout.state.mkdir()
    layout.settings.write_text(json.dumps({"ip": "", "port": 8000}))
    link = hub.link(layout, RUN)
    assert link.startswith("http://localhost:8000/hub/user-redirect/git-pull?")
    query = dict(p.split("=", 1) for p in link.split("?", 1)[1].split("&"))
    assert requests.utils.unquote(query["repo"]) == layout.repo.as_uri()
    assert requests.utils.unquote(query["urlpath"]) == f"lab/tree/tlcourse/notebooks/{RUN}.ipynb"
    assert query["targetpath"] == "tlcourse"
