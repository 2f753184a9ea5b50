# workbench: `make serve` runs the service, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROD_STAMP := $(VENV)/.installed-prod

.PHONY: install install-prod lock serve test test-sqlite test-postgres lint demo bench bench-quick clean

# Dependencies come from the lock files only (hashes checked), the build backend too
# (requirements-build.txt: the project is built without build isolation, so pip fetches nothing
# unlocked); the project itself is installed editable without resolving anything.
# `make install-prod` leaves the dev tools out.
install: $(STAMP)

$(STAMP): requirements-dev.txt requirements-build.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.txt \
		-r requirements-build.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP) $(PROD_STAMP)

install-prod: $(PROD_STAMP)

$(PROD_STAMP): requirements.txt requirements-build.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.txt \
		-r requirements-build.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(PROD_STAMP)

# Refresh the lock files on purpose (newest releases allowed by pyproject.toml), then
# `make install` and `make lint test` before committing them.
lock: install
	$(BIN)/uv pip compile pyproject.toml -o requirements.txt --upgrade --generate-hashes \
		--python-version 3.11 --quiet
	$(BIN)/uv pip compile pyproject.toml -c requirements.txt -o requirements-dev.txt --extra dev \
		--generate-hashes --python-version 3.11 --quiet
	sed -n 's/^requires = \["\(.*\)"\]$$/\1/p' pyproject.toml | $(BIN)/uv pip compile - \
		-o requirements-build.txt --generate-hashes --python-version 3.11 --quiet

serve: install-prod
	$(BIN)/workbench migrate
	$(BIN)/workbench serve

demo: install-prod
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
