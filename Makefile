# `make demo` and `make test` each set up .venv on a fresh machine first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_WORKDIR ?= workdirs/demo

.PHONY: demo test test-slow test-properties-long bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "flowjax needs Python >= 3.11, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m flowjax.main --config=configs/fm_guide/checkerboard.py:demo --workdir=$(DEMO_WORKDIR) --mode=train

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-properties-long: $(STAMP)
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q tests/properties

bench: $(STAMP)
	$(PY) experiments/benchmarks/vs_flow_matching.py

clean:
	rm -rf $(VENV) workdirs
