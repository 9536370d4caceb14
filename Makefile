# tlcourse: transfer learning with MobileNet.
#   make run    set up, then execute every notebook into build/ and make the course site
#   make test   set up, then unit tests and nbval over every notebook in fast mode
# Also: make setup (idempotent), make site, make lab, make lab-student, make homework,
# make bench, make clean.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tlcourse-installed
# Jupyter refuses to run as root unless told; many containers run as root.
LAB    := $(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root,)

# Developers and CI find the course's mini flowers archive beside the project.
SHARED_FLOWERS := $(wildcard ../shared/data/flower_photos_mini.tgz)
ifeq ($(origin TLCOURSE_FLOWERS), undefined)
ifneq ($(SHARED_FLOWERS),)
export TLCOURSE_FLOWERS := $(abspath $(SHARED_FLOWERS))
endif
endif

.PHONY: setup run site test lab lab-student bench homework clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v 'is ignored' || true
	$(PY) -c "import tlcourse, nbval"
	touch $@

setup: $(STAMP)
	$(PY) -m tlcourse.course.provision

run: setup
	$(PY) -m tlcourse.course.build

site: setup
	$(PY) -m tlcourse.course.site

test: setup
	TLCOURSE_FAST=1 $(PY) -m pytest -p no:cacheprovider tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=900

lab: setup
	$(LAB) notebooks

lab-student: homework
	$(LAB) build/release

bench: setup
	$(PY) benchmarks/bench_head_training.py

homework: setup
	$(PY) -m tlcourse.course.homework

clean:
	rm -rf build build-fast
