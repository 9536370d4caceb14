"""Benchmark: 1, 2 and 4 students running notebook 04 at the same time on one machine.

Sizing for ``make hub``. Sets up a hub's shared folder (tlcourse.course.hub.setup) in a
temporary root with four student accounts, then, for each class size, has that many students
execute notebook 04 (the student version answered, as nbgrader's ``fill`` does) at the same time,
each as their own account, with the environment their server gives its kernels
(``hub.server_environment``), through ``jupyter nbconvert --execute``. Prints per student the
wall time and the kernel's peak memory (the largest resident set of the student's processes,
from the kernel's rusage), and the machine's peak memory in use over the run.

    sudo .venv/bin/python benchmarks/bench_hub_load.py            # fast mode (TLCOURSE_FAST=1)
    sudo .venv/bin/python benchmarks/bench_hub_load.py --full     # the course's full settings

Needs root (it makes and removes the accounts). The servers themselves (about 0.13 GiB each)
are not started; the kernels are what a class's load is. Numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import nbformat

from tlcourse.course import homework, hub
from tlcourse.lesson.config import project_root

NOTEBOOK = "04_head_replacement"
SIZES = (1, 2, 4)


def used_mib() -> float:
    """Memory in use on the machine (MemTotal - MemAvailable), MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    kib = int(fields["MemTotal"].split()[0]) - int(fields["MemAvailable"].split()[0])
    return kib / 1024


def run_student(layout: hub.Layout, name: str, fast: bool, result: dict) -> None:
    home = Path(pwd.getpwnam(name).pw_dir)
    env = {"HOME": str(home), "USER": name, **hub.server_environment(layout, home, fast)}
    start = time.monotonic()
    proc = subprocess.Popen(
        [
            "runuser",
            "-u",
            name,
            "--",
            "env",
            *(f"{k}={v}" for k, v in env.items()),
            str(layout.venv / "bin" / "jupyter"),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=3600",
            "--output",
            f"{NOTEBOOK}.run.ipynb",
            f"{NOTEBOOK}.ipynb",
        ],
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    result.update(
        name=name,
        seconds=time.monotonic() - start,
        peak_mib=usage.ru_maxrss / 1024,
        ok=proc.returncode == 0,
        error=proc.stderr.read().decode(errors="replace")[-500:] if proc.returncode else "",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="full settings, not fast mode")
    fast = not parser.parse_args().full
    if os.geteuid() != 0:
        raise SystemExit("Run as root: it makes student accounts (sudo .venv/bin/python ...).")
    tag = f"{os.getpid() % 100000:05d}"
    group, students = f"tlb{tag}s", [f"tlb{tag}{i}" for i in range(max(SIZES))]
    root = Path(tempfile.mkdtemp(prefix="tlcourse-hub-bench-", dir="/tmp"))
    source = project_root() / "notebooks" / f"{NOTEBOOK}.ipynb"
    try:
        with tempfile.TemporaryDirectory() as build:
            os.environ["TLCOURSE_BUILD"] = build
            layout = hub.setup(root, f"tlb{tag}i", group, notebooks=[source], fast=fast)
        released = nbformat.read(layout.repo / "notebooks" / source.name, as_version=4)
        answered = homework.fill(released, nbformat.read(source, as_version=4))
        for name in students:
            hub.add_user(name, group)
            home = Path(pwd.getpwnam(name).pw_dir)
            nbformat.write(answered, home / source.name)
            shutil.chown(home / source.name, name, name)
        print(f"\nNotebook {NOTEBOOK}, {'fast' if fast else 'full'} mode, {os.cpu_count()} cores")
        header = ("students", "wall per student (s)", "kernel peak (MiB)", "machine peak (MiB)")
        print(f"{header[0]:>8}  {header[1]:>24}  {header[2]:>22}  {header[3]}")
        for size in SIZES:
            results = [{} for _ in range(size)]
            baseline, peak, done = used_mib(), [used_mib()], threading.Event()

            def sample(peak=peak, done=done):
                while not done.wait(0.5):
                    peak[0] = max(peak[0], used_mib())

            sampler = threading.Thread(target=sample)
            sampler.start()
            threads = [
                threading.Thread(target=run_student, args=(layout, name, fast, result))
                for name, result in zip(students[:size], results)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            done.set()
            sampler.join()
            failed = [r for r in results if not r["ok"]]
            if failed:
                raise SystemExit(f"{failed[0]['name']} failed: {failed[0]['error']}")
            walls = ", ".join(f"{r['seconds']:.0f}" for r in results)
            peaks = ", ".join(f"{r['peak_mib']:.0f}" for r in results)
            print(f"{size:>8}  {walls:>24}  {peaks:>22}  {peak[0] - baseline:.0f} above idle")
    finally:
        for name in [*students, f"tlb{tag}i"]:
            hub.remove_user(name)
        subprocess.run(["groupdel", group], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
