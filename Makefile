# nepse-perf: every set-up step is here; `make test` and `make bench` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STAMP_FULL := $(VENV)/.installed-full
# pyproject.toml declares every dependency; the lock pins the versions behind the stored outputs
LOCK := requirements-lock.txt
# its extras that `make test` needs (all but gpu; requirements-full.txt lists the same)
EXTRAS := test,notebooks,docs,ml,serving,engines,peers
PIP_INSTALL := $(PY) -m pip install --quiet -c $(LOCK)
comma := ,
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

.PHONY: help venv venv-full test lint unit nbval bench bench-all gpu-sweep notebooks lab site lock clean

help:
	@echo "make bench      create .venv, install, benchmark every backend (medium panel + real sample + whole market, scaling chart)"
	@echo "make test       lint + unit/property tests + every notebook under nbval (strict)"
	@echo "make notebooks  re-execute every notebook in place (same kernel as the tests)"
	@echo "make lab        JupyterLab on notebooks/"
	@echo "make site       static HTML of every notebook's stored outputs -> docs/_build/html/"
	@echo "make bench-all  small, medium, large + size sweep -> results/<machine>/ (CPU heavy)"
	@echo "make gpu-sweep  on a GPU machine: record what notebook 08 reads -> results/gpu/ (under 8 min)"
	@echo "make lock       refresh requirements-lock.txt from pyproject.toml (UPGRADE=1: newest)"
	@echo "make clean      remove caches, Numba's compiled cache and benchmark output"

# the core only (make bench): the package with its dependencies, at the locked versions
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e .
	touch $(STAMP)

# make test, the notebooks and the site need the extras too (torch, ONNX, serving, Ray, Spark)
$(STAMP_FULL): $(STAMP)
	$(PIP_INSTALL) -e ".[$(EXTRAS)]"
	touch $(STAMP_FULL)

# Re-resolve the lock (pip-tools, from PyPI): pins that still fit the ranges are kept, UPGRADE=1
# takes the newest. No hashes: torch is the local CPU build (see README). Local version labels
# (2.13.0+cpu) are stripped so the lock installs from PyPI too.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip-tools>=7.4,<8"
	$(VENV)/bin/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		--annotation-style=line $(if $(UPGRADE),--upgrade) \
		$(foreach e,$(subst $(comma), ,$(EXTRAS)),--extra $(e)) --output-file $(LOCK) pyproject.toml
	$(PY) -c "import pathlib, re; p = pathlib.Path('$(LOCK)'); \
		p.write_text(re.sub(r'(?m)^([A-Za-z0-9._-]+==[^+\s]+)\+\S+', r'\1', p.read_text()))"

venv: $(STAMP)

venv-full: $(STAMP_FULL)

lint: $(STAMP_FULL)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: $(STAMP_FULL)
	$(VENV)/bin/pytest tests -q -n 2 --dist loadfile --durations=25

nbval: $(STAMP_FULL)
	$(VENV)/bin/pytest $(NBVAL) notebooks -q --durations=25

test: lint unit nbval

bench: $(STAMP)
	$(VENV)/bin/nepse-perf bench --size medium --scaling --out bench-results/medium
	$(VENV)/bin/nepse-perf bench --input data/nepse/nepal-market-data --out bench-results/sample
	$(VENV)/bin/nepse-perf bench --input data/nepse/market --out bench-results/market

notebooks: $(STAMP_FULL)
	cd notebooks && for nb in [0-9][0-9]*_*.ipynb; do \
		echo "executing $$nb"; \
		NEPSE_PERF_RECORD_RESULTS=1 NEPSE_PERF_SERVE_S=10 NEPSE_PERF_SERVE_REPS=3 \
			../$(PY) -m jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.kernel_name=python3 "$$nb" || exit 1; \
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

# On a machine with an NVIDIA GPU (README, "Recording notebook 08's GPU measurements"): everything
# notebook 08 reads, into results/gpu/, in under 8 minutes: the panel-size sweep (6 widths up to
# 30,000 symbols x 2,500 days, CPU and gpu backends, median of 5; cut at GPU_SWEEP_S, the sizes
# done by then are saved) and the workloads (MLP training, batched covariance windows; cut at
# GPU_WORKLOADS_S). No pip install here (a GPU machine may have no network): the wheels go in
# first. Without a GPU the first command stops at once with exit status 2 and says why.
GPU_SWEEP_SYMBOLS ?= 100,300,1000,3000,10000,30000
GPU_SWEEP_S ?= 360
GPU_WORKLOADS_S ?= 90
gpu-sweep:
	@test -x $(VENV)/bin/nepse-perf || { echo "make gpu-sweep: $(VENV)/bin/nepse-perf is missing;" \
		"install the package and its GPU wheels first (README)" >&2; exit 2; }
	$(VENV)/bin/nepse-perf gpu-workloads --check
	timeout $(GPU_SWEEP_S) $(VENV)/bin/nepse-perf sweep --symbols $(GPU_SWEEP_SYMBOLS) --days 2500 \
		--backends numba_parallel,talib,gpu --repeat 5 --out results/gpu || { rc=$$?; \
		test $$rc -eq 124 || exit $$rc; echo "make gpu-sweep: the sweep reached its $(GPU_SWEEP_S) s" \
		"limit; results/gpu/sweep.json keeps the widths it finished" >&2; }
	timeout $(GPU_WORKLOADS_S) $(VENV)/bin/nepse-perf gpu-workloads --out results/gpu

clean:
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .pytest_cache \) -type d -print \
		| xargs rm -rf
	rm -rf .ruff_cache .hypothesis bench-results docs/_build docs/_generated docs/notebooks
