# The two commands: `make demo` and `make test`. Both set up first; a second `make setup`
# with nothing changed only checks two stamp files.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
# The Bicep linter in a tool environment of its own (pipelines/ci/checkov-requirements.txt says why).
CHECKOV_ENV := .tools/checkov
CHECKOV_PINS := pipelines/ci/checkov-requirements.txt
# Every check fails the build; a check that does not apply is skipped in the Bicep itself, next to the
# resource, with its reason (#checkov:skip=CKV_...: why). --skip-download: offline, no Prisma Cloud calls.
CHECKOV_ARGS := -d infra --framework bicep --quiet --compact --skip-download

.PHONY: setup demo test lint unit integration e2e bench clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python -r requirements.txt -r requirements-dev.txt -e .
	@touch $@

# (order-only: uv comes from the main venv, whose reinstall need not reinstall checkov)
$(CHECKOV_ENV)/.installed: $(CHECKOV_PINS) | $(VENV)/.installed
	@test -x $(CHECKOV_ENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_ENV)
	$(BIN)/uv pip install --python $(CHECKOV_ENV)/bin/python --quiet -r $(CHECKOV_PINS)
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	$(BIN)/manymodels demo $(DEMO_ARGS)

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup $(CHECKOV_ENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	BC_SKIP_MAPPING=TRUE $(CHECKOV_ENV)/bin/checkov $(CHECKOV_ARGS)

unit: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: setup
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

e2e: setup
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

clean:
	-$(BIN)/manymodels down
	rm -rf .manymodels .pytest_cache .ruff_cache
