# nepse-perf: every set-up step is here; `make test` and `make bench` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STAMP_FULL := $(VENV)/.installed-full
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

.PHONY: help venv venv-full test lint unit nbval bench bench-all notebooks lab site clean

help:
	@echo "make bench      create .venv, install, benchmark every backend (medium panel + real sample)"
	@echo "make test       lint + unit/property tests + every notebook under nbval (strict)"
	@echo "make notebooks  re-execute every notebook in place (same kernel as the tests)"
	@echo "make lab        JupyterLab on notebooks/"
	@echo "make site       static HTML of every notebook's stored outputs -> docs/_build/html/"
	@echo "make bench-all  small, medium, large + size sweep -> results/<machine>/ (CPU heavy)"
	@echo "make clean      remove caches, Numba's compiled cache and benchmark output"

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# make test and the notebooks need the heavy extras too (torch, ONNX, serving, Ray, Spark)
$(STAMP_FULL): $(STAMP) requirements-full.txt
	$(PY) -m pip install --quiet -r requirements-full.txt
	touch $(STAMP_FULL)

venv: $(STAMP)

venv-full: $(STAMP_FULL)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: $(STAMP_FULL)
	$(VENV)/bin/pytest tests -q

nbval: $(STAMP_FULL)
	$(VENV)/bin/pytest $(NBVAL) notebooks -q 

test: lint unit nbval

bench: $(STAMP)
	$(VENV)/bin/nepse-perf bench --size medium --out bench-results/medium
	$(VENV)/bin/nepse-perf bench --input data/nepse/nepal-market-data --out bench-results/sample

notebooks: $(STAMP_FULL)
	cd notebooks && for nb in [0-9][0-9]*_*.ipynb; do \
		echo "executing $$nb"; \
		NEPSE_PERF_RECORD_RESULTS=1 ../$(PY) -m jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 "$$nb" || exit 1; \
	done

# as root (a container) JupyterLab refuses to start without --allow-root
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(STAMP_FULL)
	$(VENV)/bin/jupyter lab notebooks/ $(LAB_ARGS)

# the notebooks as stored (never executed here), offline; open docs/_build/html/index.html
site: $(STAMP_FULL)
	$(VENV)/bin/sphinx-build -b html -E -q -W --keep-going docs docs/_build/html
	@echo "site: docs/_build/html/index.html"

# the instructors' record of this machine; commit results/<machine>/, then `make site`
bench-all: $(STAMP)
	$(VENV)/bin/nepse-perf bench-all --out results

clean:
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .pytest_cache \) -type d -print \
		| xargs rm -rf
	rm -rf .ruff_cache .hypothesis bench-results docs/_build docs/_generated docs/notebooks
