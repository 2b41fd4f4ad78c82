# Two entry points for a fresh machine: `make run` (main job) and `make test` (the test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= mini

.PHONY: setup run test test-unit test-notebooks bench

setup: $(VENV)/.installed

# torch is installed first and pinned: 2.13.0 is the CPU build the project is tested with, and
# an unpinned resolver would pull a multi-GB CUDA build instead.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

run: setup
	$(VENV)/bin/crossgran run --profile $(PROFILE)

test: test-unit test-notebooks

test-unit: setup
	$(PY) -m pytest -q tests

test-notebooks: setup
	$(PY) -m pytest -q --nbval-lax notebooks/

bench: setup
	$(PY) benchmarks/run_all.py
