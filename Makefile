# One entry point for developers and CI. `make test` builds its own virtualenv.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
CODE := fraud_common transaction-service/transaction_service fraud-detection-service/fraud_detection alert-service/alert_service archive-service/archive_service tools test-client.py
export PYTHONPATH := $(CURDIR):$(CURDIR)/transaction-service:$(CURDIR)/fraud-detection-service:$(CURDIR)/alert-service:$(CURDIR)/archive-service

.PHONY: venv lint test test-fast test-fault dev bench bench-backtest compose-check clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(CODE)

# The whole suite: lint, unit, integration, end-to-end, fault injection, browser.
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything except the long fault-injection tests.
test-fast: venv
	$(PY) -m pytest -m "not fault" $(PYTEST_ARGS)

# Only the fault-injection tests.
test-fault: venv
	$(PY) -m pytest -m fault $(PYTEST_ARGS)

dev: venv
	$(PY) tools/devstack.py up $(DEVSTACK_ARGS)

bench: venv
	$(PY) -m tools.bench $(BENCH_ARGS)

# The backtest's rate over simulated traffic: several runs, medians (docs/BENCHMARKS.md).
bench-backtest: venv
	$(PY) tools/bench_backtest.py $(BENCH_BACKTEST_ARGS)

compose-check:
	docker-compose --env-file $(if $(wildcard .env),.env,.env.example) -f docker-compose.yml config -q
	docker-compose --env-file $(if $(wildcard .env),.env,.env.example) -f docker-compose.prod.yml config -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache artifacts .devstack
