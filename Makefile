# Podium: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
GEN := service/gen
GEN_STAMP := $(GEN)/.generated

.PHONY: install proto run demo test test-fast soak lint bench clean

install: $(STAMP) $(GEN_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

proto: $(GEN_STAMP)

# protoc writes `from podium.v1 import x_pb2`; the sed rewrites that prefix so the generated
# modules live inside the `service` package (service.gen.podium...).
$(GEN_STAMP): $(PROTOS) $(STAMP)
	rm -rf $(GEN)/podium
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$(GEN) --pyi_out=$(GEN) \
		--grpc_python_out=$(GEN) --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
		--mypy_grpc_out=$(GEN) $(PROTOS)
	find $(GEN)/podium -name '*.py*' -exec sed -i -E \
		's/^(from|import) podium\./\1 service.gen.podium./' {} +
	find $(GEN)/podium -type d -exec touch {}/__init__.py \;
	touch $@

run: install
	$(BIN)/podium run-local

# With `make run` serving in another terminal: a small world through Kafka, then grpcurl commands.
demo: install
	$(BIN)/podium demo

test: lint
	$(BIN)/python -m tests.services_up
	$(BIN)/pytest -q

# The long fault-tolerance runs (tests/e2e/test_fault_tolerance.py): about 25 minutes.
soak: install
	$(BIN)/python -m tests.services_up
	$(BIN)/pytest -q -m soak

test-fast: install
	$(BIN)/pytest -q tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/vulture
	cd protos && ../$(BIN)/buf lint

# make bench BENCH_ARGS='--quick' | '--growth' | '--databases sqlite'
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(GEN)/podium $(GEN_STAMP) .pytest_cache .mypy_cache .hypothesis
