# conntel — the two commands (README): `make demo` and `make test`; plus `make bench`.
# Every target sets up what it needs on a fresh machine: its own virtualenv
# (pinned by constraints.txt) and, for the SDK conformance tests, npm packages.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-runtime
PY_STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
NODE_DIR := tests/conformance
NODE_STAMP := $(NODE_DIR)/node_modules/.installed
DASH_DIR := tests/dashboard
DASH_STAMP := $(DASH_DIR)/node_modules/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: demo lint test bench setup clean

setup: $(PY_STAMP) $(NODE_STAMP) $(DASH_STAMP) $(CHROMIUM)

# The runtime alone (what `make demo` needs); the test extra goes on top of it.
$(RUN_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	touch $@

$(PY_STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,lint]'
	touch $@

$(BENCH_STAMP): $(PY_STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,lint,bench]'
	touch $@

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund
	touch $@

$(DASH_STAMP): $(DASH_DIR)/package.json $(DASH_DIR)/package-lock.json
	npm ci --prefix $(DASH_DIR) --no-audit --no-fund
	touch $@

# Debian's Chromium for the dashboard test (never a downloaded browser).
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

demo: $(RUN_STAMP)
	$(BIN)/conntel demo

# Lint alone: ruff's rules and format, and mypy --strict over src/ (config in pyproject.toml).
lint: $(PY_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Lint first: a tree that fails it never reaches the (slower) suite. Two pytest workers
# (pytest-xdist): the suite waits on servers and sockets more than it computes.
test: lint $(NODE_STAMP) $(DASH_STAMP) $(CHROMIUM)
	$(BIN)/pytest -n 2

# Five rounds: every ratio is a median of pairs measured seconds apart on a shared, noisy machine.
# Then retention: 60 simulated days of 200 connectors (store size), and pruning's cost (A/B pairs).
# Then the dashboard's fleet page at 5,000 connectors in Chromium, while 500 events a second arrive.
bench: $(BENCH_STAMP) $(DASH_STAMP) $(CHROMIUM)
	$(BIN)/python bench/run.py --rounds 5 --profile
	PYTHONPATH=bench $(BIN)/python bench/snapshots.py --snapshots 100000 --rounds 5
	$(BIN)/python bench/retention.py
	$(BIN)/python bench/dashboard.py

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules $(DASH_DIR)/node_modules demo.db demo.db-wal demo.db-shm demo.db-writer demo.log
