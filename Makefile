# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install the package only when .venv is missing or pyproject.toml changed.
# --no-cache-dir: torch's CUDA wheels are ~4 GB; a copy in pip's cache beside the ~6.3 GB venv
# filled a CI machine's disk (stop 53). A reinstall downloads again instead.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint format install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-cache-dir --upgrade pip
	$(BIN)/python -m pip install --quiet --no-cache-dir -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## The main job on an embedded default: IRP store -> scorer -> autos vs baselines on a held-out model.
demo: $(STAMP)
	$(BIN)/autosparse demo --executor process

## The whole suite (slow tests included), two workers for the machine's two cores.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/pytest -n 2 -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo_out
