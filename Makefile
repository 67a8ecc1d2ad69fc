# ReShare <-> WMS Circulation bridge. `make run` starts the bridge on the embedded sandbox; `make test` runs
# every test suite. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
REGION ?= eu-west-1
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= $(REGION)

# sam build needs a Python matching the Lambda runtime (3.12) on PATH: find one (PATH, then pyenv).
PY312_DIR = $(shell for p in "$$(pyenv root 2>/dev/null)"/versions/3.12*/bin "$$HOME"/.pyenv/versions/3.12*/bin \
	  $$(dirname "$$(command -v python3.12 2>/dev/null)" 2>/dev/null) /usr/local/bin /usr/bin; do \
	  [ -x "$$p/python3.12" ] && "$$p/python3.12" -c "import sys" 2>/dev/null && { echo $$p; break; }; done)

.PHONY: setup test check lint typecheck validate build run demo bench clean

$(STAMP): requirements-dev.txt layers/domain/requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

setup: $(STAMP) ## create .venv with every dependency (idempotent)

test: setup ## run every test suite (unit, integration, template, e2e)
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

validate: setup
	$(BIN)/sam validate --lint --region $(REGION)

check: lint typecheck validate test ## the one gate: ruff, mypy, sam validate --lint, tests

build: setup ## sam build (finds a Python 3.12 for the python3.12 runtime)
	@[ -n "$(PY312_DIR)" ] || { echo "sam build needs python3.12 on PATH (or under pyenv)"; exit 1; }
	PATH="$(PY312_DIR):$$PATH" $(BIN)/sam build --cached --parallel

run: setup ## start the whole bridge on one machine (moto + ReShare and WMS simulators + local gateway)
	$(BIN)/python -m sandbox up

bench: setup ## run the benchmarks and rewrite bench/RESULTS.md
	$(BIN)/python -m bench

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
