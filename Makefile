# rotasign: `make run` starts the local stack, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: test lint typecheck pytest run bootstrap tick bench system-deps clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

system-deps:
	@./scripts/system-deps.sh

test: system-deps $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
