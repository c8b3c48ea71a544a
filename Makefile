# nepse-perf: every set-up step is here; `make test` and `make bench` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

.PHONY: help venv test lint unit nbval bench notebooks lab clean

help:
	@echo "make bench      create .venv, install, benchmark every backend (medium panel + real sample)"
	@echo "make test       lint + unit/property tests + every notebook under nbval (strict)"
	@echo "make notebooks  re-execute every notebook in place (same kernel as the tests)"
	@echo "make lab        JupyterLab on notebooks/"
	@echo "make clean      remove caches, Numba's compiled cache and benchmark output"

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: $(STAMP)
	$(VENV)/bin/pytest tests -q

nbval: $(STAMP)
	$(VENV)/bin/pytest $(NBVAL) notebooks -q 

test: lint unit nbval

bench: $(STAMP)
	$(VENV)/bin/nepse-perf bench --size medium --out bench-results/medium
	$(VENV)/bin/nepse-perf bench --input data/nepse/nepal-market-data --out bench-results/sample

notebooks: $(STAMP)
	cd notebooks && for nb in [0-9][0-9]_*.ipynb; do \
		echo "executing $$nb"; \
		../$(PY) -m jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 "$$nb" || exit 1; \
	done

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .pytest_cache \) -type d -print \
		| xargs rm -rf
	rm -rf .ruff_cache .hypothesis bench-results
