# tlcourse: transfer learning with MobileNet.
#   make run    set up, then execute every notebook into build/ (the lecture build)
#   make test   set up, then unit tests and nbval over every notebook in fast mode
# Also: make setup (idempotent), make lab, make bench, make homework, make clean.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tlcourse-installed

# Developers and CI find the course's mini flowers archive beside the project.
SHARED_FLOWERS := $(wildcard ../shared/data/flower_photos_mini.tgz)
ifeq ($(origin TLCOURSE_FLOWERS), undefined)
ifneq ($(SHARED_FLOWERS),)
export TLCOURSE_FLOWERS := $(abspath $(SHARED_FLOWERS))
endif
endif
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup run test lab bench homework clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v 'is ignored' || true
	$(PY) -c "import tlcourse, tensorflow, keras, nbval"
	touch $@

setup: $(STAMP)
	$(PY) -m tlcourse.provision

run: setup
	$(PY) -m tlcourse.build

test: setup
	TLCOURSE_FAST=1 $(PY) -m pytest -p no:cacheprovider tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=900

lab: setup
	$(VENV)/bin/jupyter lab notebooks

bench: setup
	$(PY) benchmarks/bench_head_training.py

homework: setup
	$(PY) -m tlcourse.homework

clean:
	rm -rf build
