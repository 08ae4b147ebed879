# Podium: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
# The newest supported Python installed (3.11 to 3.13): `make test` runs on whichever it is.
# (A version manager's shim that is on the PATH but not selected does not count: it must run.)
PYTHON ?= $(or $(firstword $(foreach v,3.13 3.12 3.11,\
	$(shell python$(v) -c 'import sys; print(sys.executable)' 2>/dev/null))),\
	$(error Podium needs Python 3.11, 3.12 or 3.13))
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
GEN := service/gen
GEN_STAMP := $(GEN)/.generated
PEER := .venv-peer
PEER_STAMP := $(PEER)/.installed

.PHONY: install proto run demo test test-fast soak lint bench wheel clean

install: $(STAMP) $(GEN_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

proto: $(GEN_STAMP)

$(GEN_STAMP): $(PROTOS) tools/protogen.py $(STAMP)
	$(PY) tools/protogen.py
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
	tools/buf-breaking.sh $(BIN)/buf

# make bench BENCH_ARGS='--quick' | '--growth' | '--databases sqlite' | '--section replay'
bench: install $(PEER_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The peer the replay section measures Podium against: pyproject's `bench` extra, in a
# virtualenv of its own, since it pins a librdkafka binding older than Podium's tests need.
$(PEER_STAMP): pyproject.toml $(STAMP)
	test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install --quiet --upgrade pip
	$(PEER)/bin/python -m pip install --quiet $$($(PY) -c 'import tomllib; \
		print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"])')
	touch $@

# A wheel with the generated code in it, built as a clean checkout builds it (into dist/).
wheel: install
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) $(PEER) $(GEN)/podium $(GEN_STAMP) .pytest_cache .mypy_cache .hypothesis dist build
