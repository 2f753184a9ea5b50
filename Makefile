# workbench: `make serve` runs the service, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test test-sqlite test-postgres lint demo bench bench-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

serve: install
	$(BIN)/workbench migrate
	$(BIN)/workbench serve

demo: install
	$(BIN)/workbench migrate
	$(BIN)/workbench demo

# The whole suite, on SQLite by default; WORKBENCH_TEST_DATABASE=postgresql runs it on
# PostgreSQL (.ci/run does both). PYTEST_ARGS passes options, e.g. PYTEST_ARGS=--cov.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-sqlite: install
	WORKBENCH_TEST_DATABASE=sqlite $(BIN)/python -m pytest

test-postgres: install
	WORKBENCH_TEST_DATABASE=postgresql $(BIN)/python -m pytest

# Benchmarks against same-run baselines (issue 6, BENCHMARKS.md); by hand, never in CI.
bench: install
	$(BIN)/python -m benchmarks run

bench-quick: install
	$(BIN)/python -m benchmarks run --quick

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) workbench.db workbench.db-wal workbench.db-shm .pytest_cache
