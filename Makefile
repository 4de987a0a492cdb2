# `make run` and `make test` each work as the first command on a fresh machine.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: setup run test test-slow test-fleet bench lint clean dist

SERVICE := services/bf42stats

# jobcorr with every extra, and the reference service, both editable.
$(STAMP): pyproject.toml $(SERVICE)/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,dev]' -e $(SERVICE)
	touch $(STAMP)

# The dashboard draws with uPlot, from the npm registry (package-lock.json pins it), copied
# into the package's static files; the built wheel carries it, so users need no node.
VENDOR := src/jobcorr/web/static/vendor
$(VENDOR)/uPlot.iife.min.js: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p $(VENDOR)
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css \
	   node_modules/uplot/LICENSE $(VENDOR)/

setup: $(STAMP) $(VENDOR)/uPlot.iife.min.js

# Wheels of jobcorr (with uPlot inside) and bf42stats, in dist/.
dist: setup
	$(PY) -m pip wheel --no-deps --wheel-dir dist . $(SERVICE)

run: setup
	$(VENV)/bin/bf42-stats serve --demo --speed 10 --host $(HOST) --port $(PORT)

test: setup
	$(PY) -m pytest -q

# Live end-to-end suites (deployed rules and dashboards, the demo incident): minutes.
test-slow: setup
	$(PY) -m pytest -q -m slow --tb=short

# The ground truth scraped live by Prometheus (15 s, 30 s) and VictoriaMetrics: ~27 min.
test-fleet: setup
	$(PY) -m pytest -q -m fleet --tb=short

bench: setup
	$(PY) benchmarks/bench_tracking.py
	$(PY) benchmarks/bench_sync.py
	$(PY) benchmarks/bench_explain.py
	$(PY) benchmarks/bench_dashboard.py

lint: setup
	$(VENV)/bin/ruff check src $(SERVICE)/src tests benchmarks
	$(VENV)/bin/ruff format --check src $(SERVICE)/src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache node_modules $(VENDOR) dist
