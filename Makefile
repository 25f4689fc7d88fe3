# Two commands for a fresh machine: `make dev` runs the platform, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint typecheck imports contracts unit integration e2e bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/voiceagent dev

test: $(STAMP) lint typecheck imports contracts
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

contracts: $(STAMP)
	$(BIN)/python -m schemas.avro_schema --check
	$(BIN)/python -m schemas.topics_doc --check
	$(BIN)/python -m infra.eventlog.asyncapi --check

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/contract

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

bench: $(STAMP)
	$(BIN)/python bench/bench_audio.py

clean:
	rm -rf $(VENV) .voiceagent .mypy_cache .ruff_cache
