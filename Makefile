# The doors everyone uses: make run, make test, make lint, make bench.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/fleetsim simulate scenarios/quickstart.yaml --days 7 --out out/quickstart

lint: install
	$(BIN)/ruff check simulator models tests benchmarks
	$(BIN)/ruff format --check simulator models tests benchmarks
	$(BIN)/mypy models simulator

test: install
	$(BIN)/ruff check simulator models tests benchmarks
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/simulate.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
