# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint system-deps postgres clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

system-deps:
	@scripts/system-deps

postgres:
	@scripts/start-postgres

# The main job on the built-in sample data: writes sample-dossier.pdf.
demo: system-deps $(STAMP)
	EVIDENCE="$(abspath $(BIN)/evidence)" bash sample/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check evidence migrations tests benchmarks
	$(BIN)/mypy

# The whole suite, on SQLite and on PostgreSQL (slow tests included).
test: system-deps postgres $(STAMP) lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-home sample-dossier.pdf
