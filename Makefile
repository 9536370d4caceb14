# tlcourse: transfer learning with MobileNet.
#   make run       set up, then execute every notebook into build/ and make the course site
#   make test      set up, then lint, unit tests and every notebook once in fast mode (CI)
#   make test-all  make test, plus every check that executes the notebooks again
# Also: make setup (idempotent), make site, make slides, make demo, make lab, make lab-student, make homework,
# make student-repo, make hub, make hub-students, make bench, make lock, make clean.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tlcourse-installed
LOCK   := requirements/dev.lock
# Jupyter refuses to run as root unless told; many containers run as root.
LAB    := $(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root,)
# pip's notes about this machine's unused package folders are noise; its exit status is kept.
QUIET  := { grep -v 'is ignored' || true; }
PYTEST := TLCOURSE_FAST=1 $(PY) -m pytest -p no:cacheprovider --durations=15

# Developers and CI find the course's mini flowers archive beside the project.
SHARED_FLOWERS := $(wildcard ../shared/data/flower_photos_mini.tgz)
ifeq ($(origin TLCOURSE_FLOWERS), undefined)
ifneq ($(SHARED_FLOWERS),)
export TLCOURSE_FLOWERS := $(abspath $(SHARED_FLOWERS))
endif
endif

.PHONY: setup run site slides demo test test-all lint lab lab-student bench homework student-repo hub hub-students lock clean

# uv installs the lock's wheels in parallel: about 10 s where pip takes about 150 s (pip is only
# used to fetch uv). uv reads UV_INDEX_URL, not pip's configuration, for a mirror of PyPI.
# --compile-bytecode: pip's default, not uv's. Without it, where PYTHONDONTWRITEBYTECODE is set
# (this project's CI machines) or the venv is read-only (a hub's students), every process compiles
# what it imports, every time: `import tensorflow` took 13.5 s of CPU instead of 5.9 s.
UV     := $(VENV)/bin/uv pip install --python $(PY) --quiet --compile-bytecode

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q 'uv>=0.9,<0.14' 2>&1 | $(QUIET)
	$(UV) -r $(LOCK)
	$(UV) --no-deps -e '.[dev]'
	$(PY) -c "import tlcourse.course.build, nbval, nbgrader, xdist"
	touch $@

setup: $(STAMP)
	$(PY) -m tlcourse.course.provision

run: setup
	$(PY) -m tlcourse.course.build

site: setup
	$(PY) -m tlcourse.course.site

slides: setup
	$(PY) -m tlcourse.course.slides

# After make run: every notebook again, live, reusing the full run's long computations.
demo: setup
	$(PY) -m tlcourse.course.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check tlcourse benchmarks tests deploy
	$(VENV)/bin/ruff format --check tlcourse benchmarks tests deploy

# Three workers share one run of the notebooks (each executed once, by the first worker to need
# it); a worker that runs out of tests takes some from another's queue. Three on two cores: the
# hub's class test, started first, mostly waits on its hub (measured: 490 s against 526 s with two).
XDIST  := -n 3 --dist worksteal
test: setup lint
	$(PYTEST) $(XDIST) tests

test-all: setup lint
	$(PYTEST) $(XDIST) --full tests
	$(PYTEST) --nbval-lax --nbval-current-env --nbval-cell-timeout=900 notebooks

lab: setup
	$(LAB) notebooks

lab-student: homework
	$(LAB) build/release

bench: setup
	$(PY) benchmarks/bench_head_training.py

homework: setup
	$(PY) -m tlcourse.course.homework

# The class's repository, build/student-repo/ (git): the student versions and the package, no
# solution or hidden test; what nbgitpuller pulls and the hub's image is built from (deploy/).
student-repo: setup
	$(PY) -m tlcourse.course.homework student-repo

# A JupyterHub for a class on this machine, as root (README, "A class on JupyterHub"): the
# students' environment, data and the class's repository in /srv/tlcourse-hub, then the hub on
# port 8000 until Ctrl-C. Accounts: make hub-students STUDENTS="alice bob" (prints passwords).
hub: setup
	$(PY) -m tlcourse.course.hub start

hub-students: setup
	$(PY) -m tlcourse.course.hub add-students $(STUDENTS)

# The pinned versions CI and the hub image install; needs PyPI. Run after changing pyproject.toml
# (versions already locked are kept where they still fit; `UPGRADE=--upgrade` for newer ones).
COMPILE = $(VENV)/bin/uv pip compile --quiet --no-header --no-emit-package tlcourse \
          --python-version 3.11 $(UPGRADE) pyproject.toml
lock: $(STAMP)
	$(COMPILE) --extra provision --extra course --extra homework --extra test --extra jupyterhub -o $(LOCK)
	$(COMPILE) --extra provision --extra hub -o requirements/student.lock

clean:
	rm -rf build build-fast build-demo
