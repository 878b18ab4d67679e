# Everything a fresh machine needs: `make test` and `make demo` create .venv and install on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
AIRFLOW_VERSION ?= 3.3.2
SANDBOX_PORT ?= 8765
DEMO_HOME := $(CURDIR)/airflow_home

.PHONY: install test unit lint format demo bench clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check --upgrade pip
	$(PIP) install -q --disable-pip-version-check "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test,sandbox]"
	@touch $@

install: $(VENV)/.installed

## The whole suite: unit, sandbox contract, integration, example DAGs in real Airflow.
test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check plugins dags tests bench
	$(VENV)/bin/ruff format --check plugins dags tests bench

format: install
	$(VENV)/bin/ruff format plugins dags tests bench
	$(VENV)/bin/ruff check --fix plugins dags tests bench

## Run example_autoenhance_pipeline end to end on an embedded SQLite Airflow against the local
## sandbox (started and stopped by the script). With AUTOENHANCE_API_KEY set it uses the real
## API in development mode instead (no credits spent).
demo: install
	$(PY) scripts/demo.py

clean:
	rm -rf $(DEMO_HOME) output .pytest_cache
