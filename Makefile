# The two commands a newcomer needs: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HMS_HOME ?= $(CURDIR)/.hms
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast test-shifted lint bench lock image clean up down

install: $(STAMP)

$(STAMP): requirements/dev.lock requirements/opa.lock pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==25.3"
	# Every package pinned and its file's hash checked (requirements/README.md): tests, linters, the image's set.
	$(BIN)/pip install -q --require-hashes -r requirements/dev.lock
	$(BIN)/pip install -q --require-hashes --no-deps --ignore-requires-python -r requirements/opa.lock
	$(BIN)/pip install -q --no-deps -e .
	# dclint (a compose-file linter) and the compose-spec schema from npm.
	command -v npm >/dev/null && npm install --no-audit --no-fund --loglevel=error --prefix $(VENV)/tools/npm dclint@3.1.0 \
	  || echo "npm missing: the dclint checks of docker-compose.yaml will be skipped"
	$(BIN)/hms db upgrade
	touch $(STAMP)

demo: install
	PYTHONPATH=plugins:. $(BIN)/python scripts/demo.py

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
	PYTHONPATH=plugins:. $(BIN)/python -m devtools.airflow_stack up --home .airflow $(if $(PORT),--port $(PORT))

down:
	PYTHONPATH=plugins:. $(BIN)/python -m devtools.airflow_stack down --home .airflow

lint: install
	$(BIN)/ruff check .

# Timed commands run from bytecode, as an installed package does (pip compiles what it installs; the
# editable src/ gets none when PYTHONDONTWRITEBYTECODE is set, and every `hms` call recompiles it).
bench: install
	$(BIN)/python -m compileall -q src plugins >/dev/null
	$(BIN)/python -m bench

# Recompile the locks from requirements/*.in with hashes; uv keeps every pin it can (--upgrade-package P moves one).
lock: install
	$(BIN)/uv pip compile requirements/runtime.in --generate-hashes --python-version 3.11 --quiet -o requirements/runtime.lock
	$(BIN)/uv pip compile requirements/dev.in --generate-hashes --python-version 3.11 --quiet -o requirements/dev.lock

# The image, built for real (scripts/build-image.sh says which base it used and why).
image: install
	bash scripts/build-image.sh

clean:
	rm -rf $(VENV) .hms .pytest_cache
