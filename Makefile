# The doors everyone uses: make run, make test, make lint, make bench.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run simulate test lint bench bench-online clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# About a minute: the quickstart fleet online against the embedded CSMS, then its summary.
run: install
	$(BIN)/fleetsim run scenarios/quickstart.yaml --report out/quickstart/report.json

# The same network offline: a week of sessions and load curves in seconds.
simulate: install
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

bench-online: install
	$(BIN)/python benchmarks/online.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
