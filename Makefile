# make demo: the console with a demo directory, worker and beat; make test: ruff, mypy and the whole suite.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: bootstrap demo demo-stop test lint typecheck pytest bench

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	@$(PY) -m devservers.demo up

demo-stop:
	@$(PY) -m devservers.demo down

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: bootstrap
	.venv/bin/mypy .

pytest: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# The benchmarks measure on PostgreSQL (the SQLite figures make their own database).
BENCH_DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/postgres

bench: bootstrap
	scripts/ensure_postgres.sh "$(BENCH_DATABASE_URL)"
	DATABASE_URL="$(BENCH_DATABASE_URL)" $(PY) -m benchmarks
