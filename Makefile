# Earshot developer commands. Everything runs from the project's own .venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.13 || (test -x $(HOME)/.pyenv/versions/3.13.0/bin/python && echo $(HOME)/.pyenv/versions/3.13.0/bin/python) || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
DEMO_DB ?= var/demo.sqlite3
DEMO_ENV = DATABASE_URL=sqlite:///$(DEMO_DB) SITE_URL=http://127.0.0.1:$(PORT)

.PHONY: install check test bench faults demo serve clean-demo

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 13), f"Earshot needs Python 3.13, got {sys.version.split()[0]} from $(PYTHON)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python scripts/requirements.py > $(VENV)/requirements.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -r $(VENV)/requirements.txt
	touch $(STAMP)

install: $(STAMP)

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .

test: check
	$(BIN)/pytest -n 2 --dist loadfile

bench: install
	$(BIN)/pytest tests/perf -m bench -s -p no:randomly

# Kill workers, stop Redis, restart PostgreSQL, roll a restart through make serve's
# topology, restart pgbouncer, all under traffic (tests/faults); prints a table per
# fault and appends them to tests/faults/artifacts/results.md.
faults: install
	$(BIN)/pytest tests/faults -m faults -s -p no:randomly

demo: install
	mkdir -p var
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEMO_ENV) $(BIN)/python manage.py seed_demo
	$(DEMO_ENV) $(BIN)/python manage.py serve --port $(PORT) --traffic 0.05

# The production topology on this machine (Procfile, run by honcho): pgbouncer, two
# uvicorn workers on one port, Celery workers per queue and beat, on the local
# PostgreSQL, Redis and broker (EARSHOT_BROKER=redis|rabbitmq). README "Running it
# for real" lists its environment. Ctrl-C stops everything.
serve: install
	PORT=$(PORT) $(BIN)/python scripts/serve.py

clean-demo:
	rm -f $(DEMO_DB)
