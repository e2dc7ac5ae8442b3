# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo serve test lint dist lock system-deps postgres clean

# Every dependency, build tools included, at the versions and hashes of requirements.lock:
# the tests and the dossier's bytes (WeasyPrint, fontTools, pydyf, pikepdf decide them)
# are the same on every machine. `make lock` refreshes the lock deliberately.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

system-deps:
	@scripts/system-deps

postgres:
	@scripts/start-postgres

# The main job on the built-in sample data: writes sample-dossier.pdf.
demo: system-deps $(STAMP)
	EVIDENCE="$(abspath $(BIN)/evidence)" bash sample/demo.sh

# The legal desk on the sample data: prints the address and a login, serves until Ctrl-C.
serve: system-deps $(STAMP)
	EVIDENCE="$(abspath $(BIN)/evidence)" bash sample/serve.sh

lint: $(STAMP)
	$(BIN)/ruff check evidence migrations tests benchmarks
	$(BIN)/mypy

# The whole suite, on SQLite and on PostgreSQL: -m "" runs the slow tests too (plain pytest
# leaves them out, see pyproject.toml). -n auto: one pytest worker per core (pytest-xdist), the
# slow tests handed out first (tests/conftest.py); --dist loadgroup keeps the tests of one
# xdist_group (those sharing the built wheel) on one worker. Plain pytest runs in one process.
test: system-deps postgres $(STAMP) lint
	$(BIN)/python -m pytest -m "" -n auto --dist loadgroup

# The sdist and the wheel in dist/ (the wheel is built from the sdist, as `python -m build`
# does; scripts/dist calls setuptools' build hooks itself: `build` is not in the lock).
dist: $(STAMP)
	$(BIN)/python scripts/dist dist

# Upgrade: resolve every dependency afresh (newest releases within pyproject.toml's ranges),
# rewrite requirements.lock with hashes, reinstall and run the whole suite on it.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet pip-tools
	.lock-venv/bin/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe \
	    --no-emit-index-url --no-emit-find-links --strip-extras --extra test \
	    -o requirements.lock pyproject.toml requirements-build.in
	rm -rf .lock-venv $(VENV)
	$(MAKE) test

clean:
	rm -rf $(VENV) demo-home sample-dossier.pdf build dist
