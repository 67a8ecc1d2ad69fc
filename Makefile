# ReShare <-> WMS Circulation bridge. `make run` starts the bridge on the embedded sandbox; `make test` runs
# every test suite. Both install what they need first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
REGION ?= eu-west-1
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= $(REGION)

# One Python: the functions' runtime, 3.12, for the venv, the tests and sam build alike. Found on PATH, then
# under pyenv; PYTHON=/path/to/python3.12 overrides.
PY312_DIR = $(shell for p in $$(dirname "$$(command -v python3.12 2>/dev/null)" 2>/dev/null) \
	  "$$(pyenv root 2>/dev/null)"/versions/3.12*/bin "$$HOME"/.pyenv/versions/3.12*/bin /usr/local/bin /usr/bin; do \
	  [ -x "$$p/python3.12" ] && "$$p/python3.12" -c "import venv, ensurepip" 2>/dev/null && { echo $$p; break; }; done)
PYTHON ?= $(if $(PY312_DIR),$(PY312_DIR)/python3.12,python3.12)
NEED_PY312 = echo "No Python 3.12 found (the Lambda runtime is python3.12). Install one, then run make again:"; \
	  echo "  Debian/Ubuntu: apt-get install python3.12 python3.12-venv"; \
	  echo "  pyenv:         pyenv install 3.12"; \
	  echo "  or:            make PYTHON=/path/to/python3.12 ..."; exit 1

.PHONY: setup python test check lint typecheck validate build run demo bench clean

python: ## print the Python 3.12 the venv is made with; fails, saying what to install, when there is none
	@"$(PYTHON)" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null || { $(NEED_PY312); }
	@echo "$(PYTHON)"

$(STAMP): requirements-dev.txt layers/domain/requirements.txt pyproject.toml
	@"$(PYTHON)" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null || { $(NEED_PY312); }
	@[ -x $(BIN)/python ] && $(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null \
	  || { rm -rf $(VENV); "$(PYTHON)" -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .  # the `illbridge` command
	@touch $(STAMP)

setup: $(STAMP) ## create .venv with every dependency (idempotent)

test: setup ## run every test suite (unit, integration, template, e2e); prints the domain layer's line coverage
	COVERAGE_CORE=sysmon $(BIN)/python -m pytest -n 2 --dist loadfile --cov=illbridge --cov-report=term

lint: setup ## ruff, and the import contract (pyproject.toml [tool.importlinter], docs/architecture.md#code-layout)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=layers/domain:. $(BIN)/lint-imports --config pyproject.toml --no-cache

typecheck: setup
	$(BIN)/mypy

validate: setup
	$(BIN)/sam validate --lint --region $(REGION)

check: lint typecheck validate test ## the one gate: ruff, import contract, mypy, sam validate --lint, tests

build: setup ## sam build (finds a Python 3.12 for the python3.12 runtime)
	PATH="$(dir $(abspath $(BIN)/python)):$$PATH" $(BIN)/sam build --cached --parallel

run: setup ## start the whole bridge on one machine (moto + ReShare and WMS simulators + local gateway)
	$(BIN)/python -m sandbox up

demo: setup ## one interlibrary loan told as staff live it, on the sandbox; exits 0 only if every step came out right
	$(BIN)/python -m sandbox demo

bench: setup ## run the benchmarks and rewrite bench/RESULTS.md
	$(BIN)/python -m bench

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
