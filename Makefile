# Two entry points for a fresh machine: `make run` (main job) and `make test` (the test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= mini
# `make test` executes the notebooks in this scratch project root, which shares only the pinned
# downloads and the content-addressed cache with the checkout: a test run on another machine
# trains another sample of the BiGCARP runs, and must not rewrite the stored results.
TEST_ROOT ?= $(CURDIR)/.test-root
# The second pass trains the BiGCARP runs again on another floating-point path of the same CPU
# (which switches change a training run: `python benchmarks/determinism.py --switches`).
ALT_KERNEL_PATH ?= ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41
TRAINING_NOTEBOOKS := $(wildcard notebooks/0[2-5]_*.ipynb)

.PHONY: setup run lab lint test test-unit test-notebooks test-kernel-path test-root bench

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

# The notebooks are the paper's narrative: read and rerun them in JupyterLab.
lab: setup
	$(VENV)/bin/jupyter lab notebooks/

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks notebooks
	$(VENV)/bin/ruff format --check src tests benchmarks notebooks

test: lint test-unit test-notebooks test-kernel-path

test-unit: setup
	$(PY) -m pytest -q tests

test-root:
	rm -rf $(TEST_ROOT)
	mkdir -p $(TEST_ROOT)/data $(TEST_ROOT)/results/mini data/raw data/cache
	ln -s $(CURDIR)/data/raw $(TEST_ROOT)/data/raw
	ln -s $(CURDIR)/data/cache $(TEST_ROOT)/data/cache
	cp results/mini/training_spread.csv results/mini/verdict_spread.csv $(TEST_ROOT)/results/mini/

# nbval compares the cells marked NBVAL_CHECK_OUTPUT; check-outputs holds every result table
# against the measured training spread.
test-notebooks: setup test-root
	CROSSGRAN_ROOT=$(TEST_ROOT) $(PY) -m pytest -q --nbval-lax notebooks/
	CROSSGRAN_ROOT=$(TEST_ROOT) $(VENV)/bin/crossgran check-outputs --profile mini

test-kernel-path: test-notebooks
	rm -rf $(TEST_ROOT)/data/models/mini/bigcarp_*
	env $(ALT_KERNEL_PATH) CROSSGRAN_ROOT=$(TEST_ROOT) $(PY) -m pytest -q --nbval-lax $(TRAINING_NOTEBOOKS)
	CROSSGRAN_ROOT=$(TEST_ROOT) $(VENV)/bin/crossgran check-outputs --profile mini

bench: setup
	$(PY) benchmarks/run_all.py
