# Everything a fresh machine needs: `make test` and `make demo` create .venv and install on first use.
# The dev venv installs with constraints/dev.txt (a known-good set, `pip freeze` of a working venv):
# without it pip's resolver backtracks for many minutes through the provider extras on a fresh venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
AIRFLOW_VERSION ?= 3.3.2
SANDBOX_PORT ?= 8765
DEMO_HOME := $(CURDIR)/airflow_home

.PHONY: install test check unit lint format demo bench clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check --upgrade pip
	$(PIP) install -q --disable-pip-version-check -c constraints/dev.txt \
		"apache-airflow==$(AIRFLOW_VERSION)" -e ".[test,sandbox,docs,release]"
	@touch $@

install: $(VENV)/.installed

## The whole suite: unit, sandbox contract, integration, example DAGs in real Airflow, then the
## end-to-end tests. Everything but the end-to-end tests runs on every core (pytest-xdist); the
## end-to-end tests start whole Airflow stacks and run one at a time.
test: install
	$(PY) -m pytest -n auto --ignore=tests/e2e
	$(PY) -m pytest tests/e2e

## ruff on everything; mypy --strict on the provider (settings in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check plugins dags tests bench scripts
	$(VENV)/bin/ruff format --check plugins dags tests bench scripts
	$(VENV)/bin/mypy

## The quick loop while editing (about 35 seconds): lint, then the unit, contract and docs tests
## (every snippet of the docs run, no invented links). `make test` stays the whole suite.
check: lint
	$(PY) -m pytest -q -n auto tests/unit tests/contract tests/docs

format: install
	$(VENV)/bin/ruff format plugins dags tests bench scripts
	$(VENV)/bin/ruff check --fix plugins dags tests bench scripts

## Run example_autoenhance_pipeline end to end on an embedded SQLite Airflow against the local
## sandbox (started and stopped by the script). With AUTOENHANCE_API_KEY set it uses the real
## API in development mode instead (no credits spent).
demo: install
	$(PY) scripts/demo.py

## Benchmarks against the sandbox on 127.0.0.1 (about 21 minutes on 2 cores; see bench/RESULTS.md): bulk upload, memory, waiting at
## scale, request budget, import/parse cost. Prints one table and writes bench/RESULTS.md.
bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(DEMO_HOME) output .pytest_cache

## Airflow 3.0 compatibility: the unit, integration and example-DAG tests again, on Airflow 3.0.6
## in a second venv (e2e, soak, bench and security are heavy and do not depend on the version).
## Airflow 3.0 sets no upper bound on these, but works only with the releases of its time (what
## its constraints file pins): ObjectStoragePath needs universal-pathlib 0.2, the task execution
## API needs cadwyn 5, which needs FastAPI < 0.117.
COMPAT_VENV ?= .venv-airflow30
COMPAT_AIRFLOW_VERSION ?= 3.0.6
COMPAT_PINS := "universal-pathlib<0.3" "cadwyn<6" "fastapi<0.117"

.PHONY: compat

$(COMPAT_VENV)/.installed: pyproject.toml
	@test -x $(COMPAT_VENV)/bin/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(COMPAT_VENV)/bin/pip install -q --disable-pip-version-check \
		"apache-airflow==$(COMPAT_AIRFLOW_VERSION)" $(COMPAT_PINS) -e ".[test-core,sandbox]"
	@touch $@

compat: $(COMPAT_VENV)/.installed
	$(COMPAT_VENV)/bin/python -m pytest -n auto tests/unit tests/integration tests/dags --ignore=tests/unit/test_lineage.py

## A local Airflow (api-server, scheduler, dag-processor, triggerer on SQLite in airflow_home/) plus
## the sandbox, with the example DAGs and the `autoenhance_default` connection; Ctrl-C stops it all.
AIRFLOW_PORT ?= 8080
.PHONY: airflow
airflow: install
	$(PY) scripts/airflow_local.py --port $(AIRFLOW_PORT) --sandbox-port $(SANDBOX_PORT)

## Documentation site (MkDocs, docs/ + mkdocs.yml) into site/; --strict fails on a broken link, a
## page missing from the nav or an example marker missing from dags/.
## Release artefacts: the sdist and the wheel into dist/, then `twine check --strict` on both.
.PHONY: docs dist
$(VENV)/.docs-installed: pyproject.toml $(VENV)/.installed
	$(PIP) install -q --disable-pip-version-check -c constraints/dev.txt \
		"apache-airflow==$(AIRFLOW_VERSION)" -e ".[docs,release]"
	@touch $@

docs: $(VENV)/.docs-installed
	$(VENV)/bin/mkdocs build --strict --site-dir site

dist: $(VENV)/.docs-installed
	rm -f dist/airflow_provider_autoenhance-*
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/airflow_provider_autoenhance-*
