# Conveyor: the two commands are `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Separate stamps: `make up` installs the runtime only; `make test` adds the test tools.
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install runtime up test check lint typecheck bench clean

runtime: $(RUNTIME_STAMP)

install: $(TEST_STAMP)

$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

up: runtime
	$(BIN)/conveyor up

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

check: lint typecheck

# Two test processes, one test file each at a time: most tests wait on real workers and
# servers, so two streams fit a 2-core machine (module fixtures stay in one process).
PYTEST_WORKERS ?= 2

test: check
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

bench: runtime
	$(BIN)/conveyor bench

clean:
	rm -rf $(VENV) .conveyor .mypy_cache .pytest_cache .ruff_cache
