"""A JupyterHub for a class on one machine (``make hub``): a lab server, a workshop, a small class.

JupyterHub (PyPI) with its proxy, configurable-http-proxy (npm), run as root: the instructor and
each student are system users, logged in with their system password (PAM), each server runs as
its user in the user's home. Everything lives in one folder, ``--root`` (default
``/srv/tlcourse-hub``)::

    state/      the hub's database, cookie secret, settings and proxy (root only)
    shared/     read-only for everyone: the students' Python environment (venv/), the class's
                repository (tlcourse/, nbgitpuller pulls it), the weights (keras/), the photos
                (data/), the students' Jupyter settings (jupyter-student/)
    exchange/   nbgrader's exchange: release, submit, collect, feedback (the permissions nbgrader
                documents: everyone writes, nobody deletes what is not theirs)

The homes are the system's (``/home/<name>``, each readable by its owner only). The instructor's
home holds the course folder with the source notebooks and the gradebook; no student can read it,
and nothing under ``shared/`` or ``exchange/`` holds a solution or a hidden test (checked).

    python -m tlcourse.course.hub setup [--root R] [--instructor NAME]   # idempotent
    python -m tlcourse.course.hub add-students alice bob                 # prints their passwords
    python -m tlcourse.course.hub start [--port 8000]                    # setup, then the hub
    python -m tlcourse.course.hub link [NOTEBOOK]                        # the link to hand out
"""

import argparse
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from ..lesson.config import atomic_write, data_dir, fast_mode, project_root
from ..lesson.errors import TLCourseError
from . import homework
from .build import notebooks as source_notebooks
from .provision import lab_settings

DEFAULT_ROOT = Path("/srv/tlcourse-hub")
DEFAULT_PORT = 8000
# the names a class's accounts may have (useradd's own rule, lower case)
_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}")
# what a student's JupyterLab leaves out: nbgrader's instructor tools
INSTRUCTOR_EXTENSIONS = {
    "server": ["nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list"],
    "lab": [
        "@jupyter/nbgrader:formgrader",
        "@jupyter/nbgrader:create-assignment",
        "@jupyter/nbgrader:course-list",
    ],
}


class Layout:
    """The folders of a hub rooted at ``root``."""

    def __init__(self, root=DEFAULT_ROOT):
        self.root = Path(root).resolve()
        self.state = self.root / "state"
        self.shared = self.root / "shared"
        self.venv = self.shared / "venv"
        self.repo = self.shared / "tlcourse"
        self.keras = self.shared / "keras"
        self.data = self.shared / "data"
        self.student_config = self.shared / "jupyter-student"
        self.gitconfig = self.shared / "gitconfig"
        self.exchange = self.root / "exchange"
        self.proxy = self.state / "proxy"
        self.settings = self.state / "settings.json"

    def read_settings(self) -> dict:
        if not self.settings.is_file():
            raise TLCourseError(
                f"No hub is set up in {self.root}: run `make hub` (or "
                f"`python -m tlcourse.course.hub setup --root {self.root}`) first."
            )
        return json.loads(self.settings.read_text())


def _run(*command, **kwargs) -> str:
    """Run ``command``; its output, or a TLCourseError saying what failed."""
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, check=False, **kwargs
    )
    if result.returncode:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise TLCourseError(f"`{' '.join(map(str, command))}` failed:\n  " + "\n  ".join(detail))
    return result.stdout


def _require_root() -> None:
    if os.geteuid() != 0:
        raise TLCourseError(
            "The hub makes system accounts and starts servers as them: run it as root "
            "(`sudo make hub`)."
        )
    missing = [
        tool for tool in ("npm", "node", "git", "useradd", "chpasswd") if not shutil.which(tool)
    ]
    if missing:
        raise TLCourseError(
            f"The hub needs {', '.join(missing)}: `apt-get install nodejs npm git passwd`."
        )


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_members(group: str) -> set[str]:
    try:
        return set(grp.getgrnam(group).gr_mem)
    except KeyError:
        return set()


def add_user(name: str, group: str | None = None) -> str:
    """Make system account ``name`` (a home only it can read; in ``group``); its new password.

    An account of that name that exists already is only given a new password if it belongs to
    ``group`` (or, with no group, is the instructor's): the hub never takes over other accounts.
    """
    if not _NAME.fullmatch(name):
        raise TLCourseError(
            f"{name!r} cannot be an account name: lower-case letters, digits, - and _, "
            "starting with a letter, at most 31 characters."
        )
    if user_exists(name):
        if group and name not in _group_members(group):
            raise TLCourseError(
                f"An account {name!r} exists on this machine and is not in {group!r}: "
                "choose another name."
            )
    else:
        _run(
            "useradd",
            "--create-home",
            "--shell",
            "/bin/bash",
            *(["--groups", group] if group else []),
            name,
        )
    home = Path(pwd.getpwnam(name).pw_dir)
    home.chmod(0o700)
    password = secrets.token_urlsafe(9)
    _run("chpasswd", input=f"{name}:{password}\n")
    return password


def remove_user(name: str) -> None:
    """Remove account ``name``, its processes and its home (a class's end, the tests)."""
    if user_exists(name):
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        _run("userdel", "--remove", name)


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for item in [path, *path.rglob("*")]:
        os.chown(item, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _readable_by_all(path: Path) -> None:
    """``path`` and everything in it owned by root, readable by all and writable by root only."""
    _run("chown", "-R", "root:root", path)
    _run("chmod", "-R", "u+rwX,go+rX,go-w", path)


def _runnable_by_all(path: Path) -> bool:
    """True if every user can run ``path``: it and each folder above it open to others."""
    path = path.resolve()
    return all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents))


def _python_for_all() -> Path:
    """A Python of this one's version that every account can run (a venv links to it).

    This one if it is (a system Python), else the system's ``pythonX.Y``: a Python installed in
    root's home (pyenv) cannot serve the students.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(getattr(sys, "_base_executable", sys.executable))
    for candidate in (base, *(Path(folder) / version for folder in ("/usr/local/bin", "/usr/bin"))):
        if candidate.exists() and _runnable_by_all(candidate):
            return candidate
    raise TLCourseError(
        f"No {version} that every account can run ({base} is not): install the system's "
        f"(`apt-get install {version}-venv`) and run this again."
    )


def _student_environment(layout: Layout) -> None:
    """The students' Python: the lock's packages, then the package from the class's repository.

    Not compiled to bytecode here (compiling every package took minutes under load, and most are
    never imported): each account keeps the bytecode of what it imports in its home
    (``PYTHONPYCACHEPREFIX``, :func:`server_environment`).
    """
    uv = [
        Path(sys.executable).parent / "uv",
        "pip",
        "install",
        "--quiet",
        "--python",
        layout.venv / "bin" / "python",
    ]
    if not (layout.venv / "bin" / "python").exists():
        _run(uv[0], "venv", "--quiet", "--python", _python_for_all(), layout.venv)
    _run(*uv, "-r", project_root() / "requirements" / "student.lock")
    _run(*uv, "--no-deps", "--reinstall-package", "tlcourse", layout.repo)
    etc = layout.venv / "etc" / "jupyter"
    homework.write_nbgrader_config(
        etc / "nbgrader_config.py",
        {
            "Exchange": {"root": str(layout.exchange)},
            "CourseDirectory": {"course_id": homework.COURSE_ID},
        },
    )
    lab_settings(layout.venv)  # JupyterLab saves widget state, as make setup sets it
    # A student's server reads these first: nbgrader's instructor tools off
    server = {
        "ServerApp": {"jpserver_extensions": dict.fromkeys(INSTRUCTOR_EXTENSIONS["server"], False)}
    }
    page = {"disabledExtensions": dict.fromkeys(INSTRUCTOR_EXTENSIONS["lab"], True)}
    for path, content in (
        (layout.student_config / "jupyter_server_config.json", server),
        (layout.student_config / "labconfig" / "page_config.json", page),
    ):
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(content, indent=2))


def _data(layout: Layout) -> None:
    """Weights, photos and splits, provisioned into ``shared/`` from the checkout's ``data/``."""
    source = data_dir()
    if source.resolve() != layout.data:
        shutil.copytree(
            source,
            layout.data,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("wheels", "*.part*"),
        )
    env = dict(os.environ, TLCOURSE_DATA=str(layout.data), KERAS_HOME=str(layout.keras))
    _run(sys.executable, "-m", "tlcourse.course.provision", env=env)


def _instructor(layout: Layout, name: str, notebooks) -> str | None:
    """The instructor's account (made if missing) and course folder, ``~<name>/course``.

    The course folder holds the source notebooks and nbgrader's config; the new account's password
    is returned in a note.
    """
    password = None if user_exists(name) else add_user(name)
    home = Path(pwd.getpwnam(name).pw_dir)
    course = home / "course"
    for path in notebooks:
        dest = course / "source" / path.stem / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():  # the instructor's edits stay
            shutil.copy(path, dest)
    homework.write_nbgrader_config(course / "nbgrader_config.py", homework.NBGRADER_SETTINGS)
    # the formgrader, started in the home, finds the course folder through this
    homework.write_nbgrader_config(
        home / ".jupyter" / "nbgrader_config.py",
        {"CourseDirectory": {"root": str(course)}},
    )
    _chown_tree(course, name)
    _chown_tree(home / ".jupyter", name)
    return f"; the instructor's password: {password}" if password else None


def _class_repository(layout: Layout, notebooks) -> None:
    homework.student_repo(layout.repo, notebooks=notebooks)
    # git serves the repository (root's) to each student: trusted in the students' git config
    layout.gitconfig.write_text(
        f"[safe]\n\tdirectory = {layout.repo}\n\tdirectory = {layout.repo}/.git\n"
        "[include]\n\tpath = /etc/gitconfig\n"
    )


def _shared_checked(layout: Layout, notebooks) -> None:
    _readable_by_all(layout.shared)
    leaks = homework.answers_in(layout.shared, sources=notebooks, files=_text_files(layout.shared))
    if leaks:
        raise TLCourseError("The shared folder gives answers away:\n  " + "\n  ".join(leaks[:5]))


def _group(group: str) -> None:
    try:
        grp.getgrnam(group)
    except KeyError:
        _run("groupadd", group)


def _proxy(layout: Layout) -> None:
    """configurable-http-proxy, as deploy/hub/package-lock.json pins it, in ``state/proxy``."""
    layout.proxy.mkdir(exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(project_root() / "deploy" / "hub" / name, layout.proxy / name)
    _run("npm", "ci", "--no-audit", "--no-fund", "--silent", cwd=layout.proxy)


def setup(
    root=DEFAULT_ROOT,
    instructor: str = "instructor",
    group: str = "tlcourse-students",
    notebooks=None,
    port: int = DEFAULT_PORT,
    ip: str = "",
    fast: bool | None = None,
    cull_after_s: int = 3600,
) -> Layout:
    """Set up (or bring up to date) the hub in ``root``.

    ``notebooks``: the course's notebooks to hand out (default all nine); ``fast``: the students'
    servers in fast mode (default: as ``TLCOURSE_FAST`` says here).
    """
    _require_root()
    layout = Layout(root)
    notebooks = [Path(p) for p in notebooks] if notebooks else source_notebooks()
    for folder, mode in ((layout.root, 0o755), (layout.state, 0o700), (layout.shared, 0o755)):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(mode)
    # nbgrader's exchange: everyone may write, the sticky bit keeps each entry its owner's
    layout.exchange.mkdir(exist_ok=True)
    layout.exchange.chmod(0o1777)

    print(f"Setting up the class's hub in {layout.root}")
    steps = [
        ("the class's repository (student versions)", lambda: _class_repository(layout, notebooks)),
        ("the students' Python", lambda: _student_environment(layout)),
        ("weights and photos", lambda: _data(layout)),
        (
            "the shared folder: read-only, no answer in it",
            lambda: _shared_checked(layout, notebooks),
        ),
        (
            f"the instructor {instructor!r} and ~{instructor}/course",
            lambda: _instructor(layout, instructor, notebooks),
        ),
        (f"the students' group {group!r}", lambda: _group(group)),
        ("configurable-http-proxy", lambda: _proxy(layout)),
    ]
    for what, step in steps:
        started = time.monotonic()
        note = step()
        print(f"  ok  {what} ({time.monotonic() - started:.1f} s){note or ''}")
    if _runnable_by_all(project_root() / "notebooks"):
        print(
            f"  Note: every account on this machine can read {project_root()}, solutions "
            f"included. For a class: `chmod o-rwx {project_root()}`."
        )
    settings = {
        "root": str(layout.root),
        "instructor": instructor,
        "group": group,
        "port": port,
        "ip": ip,
        "fast": fast_mode() if fast is None else fast,
        "cull_after_s": cull_after_s,
        "notebooks": [p.stem for p in notebooks],
    }
    with atomic_write(layout.settings) as tmp:
        tmp.write_text(json.dumps(settings, indent=2))
    layout.settings.chmod(0o600)
    return layout


def _text_files(folder: Path) -> list[Path]:
    """The files under ``folder`` a person reads (notebooks, code, text); no venv packages."""
    suffixes = {
        ".ipynb",
        ".py",
        ".md",
        ".txt",
        ".json",
        ".html",
        ".cfg",
        ".toml",
        ".yml",
        ".yaml",
        ".db",
    }
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in suffixes and "site-packages" not in p.parts
    ]


def server_environment(layout: Layout, home, fast: bool) -> dict:
    """The environment of a server (and its kernels) on the hub of ``layout``.

    ``home``: the user's home folder, or a function of JupyterHub's spawner giving it.
    """

    def in_home(sub: str):
        if callable(home):
            return lambda spawner: f"{home(spawner)}/{sub}"
        return f"{home}/{sub}"

    return {
        "PATH": f"{layout.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        # models and results in the home: they survive a restart and the idle culler
        "TLCOURSE_BUILD": in_home("tlcourse-build"),
        "TLCOURSE_DATA": str(layout.data),
        "KERAS_HOME": str(layout.keras),
        # git trusts the shared repository (root's) that nbgitpuller pulls
        "GIT_CONFIG_SYSTEM": str(layout.gitconfig),
        # the students cannot write into the shared environment: without a cache of their own,
        # every kernel would compile what it imports (TensorFlow: 13.5 s of CPU, 5.9 s cached)
        "PYTHONPYCACHEPREFIX": in_home(".cache/pycache"),
        # TensorFlow and OpenMP size their pools by the machine's cores, not a student's share
        "TF_NUM_INTRAOP_THREADS": "2",
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": "2",
        **({"TLCOURSE_FAST": "1"} if fast else {}),
    }


def command(layout: Layout) -> list[str]:
    """The command line that runs the hub of ``layout`` (in its state folder)."""
    config = project_root() / "deploy" / "hub" / "jupyterhub_config.py"
    return [str(Path(sys.executable).parent / "jupyterhub"), "--config", str(config)]


def environment(layout: Layout) -> dict:
    """The hub's environment: its folder, its proxy and the idle culler on the PATH."""
    path = os.pathsep.join(
        [
            str(layout.proxy / "node_modules" / ".bin"),
            str(Path(sys.executable).parent),
            os.environ.get("PATH", ""),
        ]
    )
    return dict(os.environ, TLCOURSE_HUB_ROOT=str(layout.root), PATH=path)


def link(layout: Layout, notebook: str | None = None, host: str | None = None) -> str:
    """The nbgitpuller link that gives a student the course (opening ``notebook``) and logs in."""
    settings = layout.read_settings()
    target = f"lab/tree/tlcourse/notebooks/{notebook}.ipynb" if notebook else "lab/tree/tlcourse"
    query = urllib.parse.urlencode(
        {
            "repo": layout.repo.as_uri(),
            "branch": "main",
            "targetpath": "tlcourse",
            "urlpath": target,
        }
    )
    base = host or f"http://{settings['ip'] or 'localhost'}:{settings['port']}"
    return f"{base}/hub/user-redirect/git-pull?{query}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, default=Path(os.environ.get("TLCOURSE_HUB_ROOT", DEFAULT_ROOT))
    )
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("setup", "start"):
        p = sub.add_parser(action)
        p.add_argument("--instructor", default="instructor")
        p.add_argument("--group", default="tlcourse-students", help="the students' system group")
        p.add_argument("--port", type=int, default=DEFAULT_PORT)
        p.add_argument("--ip", default="", help="the address to listen on (default: all)")
        p.add_argument("--notebooks", nargs="*", help="the notebooks to hand out (default: all)")
        p.add_argument(
            "--cull-after",
            type=int,
            default=3600,
            dest="cull_after_s",
            help="stop idle servers after this many seconds",
        )
    students = sub.add_parser("add-students")
    students.add_argument("names", nargs="+")
    remove = sub.add_parser("remove-students")
    remove.add_argument("names", nargs="+")
    pull = sub.add_parser("link")
    pull.add_argument("notebook", nargs="?")
    pull.add_argument("--host", help="the address students reach the hub at")
    args = parser.parse_args(argv)
    layout = Layout(args.root)
    try:
        if args.action in ("setup", "start"):
            picked = (
                [project_root() / "notebooks" / f"{n}.ipynb" for n in args.notebooks]
                if args.notebooks
                else None
            )
            setup(
                layout.root,
                args.instructor,
                args.group,
                picked,
                args.port,
                args.ip,
                cull_after_s=args.cull_after_s,
            )
            if args.action == "start":
                address = f"http://{args.ip or 'localhost'}:{args.port}"
                print(f"The hub: {address} (Ctrl-C stops it and every server)")
                print(f"The link for students: {link(layout)}")
                os.chdir(layout.state)
                os.execve(command(layout)[0], command(layout), environment(layout))
        elif args.action == "add-students":
            group = layout.read_settings()["group"]
            _require_root()
            print("Account        Password (hand it to the student; they log in at the hub's page)")
            for name in args.names:
                print(f"{name:14s} {add_user(name, group)}")
        elif args.action == "remove-students":
            _require_root()
            group = layout.read_settings()["group"]
            for name in args.names:
                if name not in _group_members(group):
                    raise TLCourseError(f"{name!r} is not a student of this hub ({group!r}).")
                remove_user(name)
                print(f"removed {name} and their home")
        elif args.action == "link":
            print(link(layout, args.notebook, args.host))
    except TLCourseError as exc:
        print(f"\nThe hub: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
