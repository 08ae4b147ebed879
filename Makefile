# Podium: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
# The newest Python installed from 3.11 on: `make test` runs on whichever it is. Looked for on
# the PATH and among pyenv's versions; a version manager's shim that is on the PATH but not
# selected does not count (it must run).
PYENV_ROOT ?= $(HOME)/.pyenv
PYTHON_VERSIONS := 3.14 3.13 3.12 3.11
PYTHON ?= $(or $(firstword $(foreach v,$(PYTHON_VERSIONS),$(shell \
	for p in python$(v) $(wildcard $(PYENV_ROOT)/versions/$(v).*/bin/python$(v)); do \
	$$p -c 'import sys; print(sys.executable)' 2>/dev/null && break; done))),\
	$(error Podium needs Python 3.11 or newer))
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
CLIENT := client
GEN_STAMP := $(CLIENT)/.generated
PEER := .venv-peer
PEER_STAMP := $(PEER)/.installed
LOCKS := requirements/dev.txt requirements/runtime.txt requirements/build.txt requirements/bench-peer.txt requirements/client.txt
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# Workers of `make test`, `make test-fast` and `make soak` (pytest-xdist): the suite mostly
# waits (brokers, processes, polls), so more workers than cores pay; each worker starts its
# own broker and makes its own databases. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 8
PYTEST := $(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal
# The tests keep the bytecode Python compiles of the project's modules (in __pycache__, which
# git ignores) even where the environment says not to: each `podium` process a test starts
# would compile them all again.
test test-fast soak: export PYTHONDONTWRITEBYTECODE :=
# The container tool: docker, or anything that reads the same arguments (podman).
CONTAINER ?= docker

.PHONY: install proto run demo test test-fast soak lint lock bench wheel client clients-test image image-test clean

install: $(STAMP) $(GEN_STAMP)

# Every package from the lock (pinned, hashes checked), then the client (the generated package
# `podium`) and Podium itself, editable, with the build requirements the lock brought (nothing
# is fetched unpinned).
$(STAMP): pyproject.toml $(CLIENT)/pyproject.toml requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e ./$(CLIENT) -e .
	touch $@

# The lock files again from pyproject.toml, keeping every pin that still fits;
# `make lock LOCK_ARGS=--upgrade` takes the newest versions instead.
lock:
	test -x $(BIN)/uv || $(MAKE) install
	$(PY) tools/lock.py $(LOCK_ARGS)

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
	$(PYTEST)

# The long fault-tolerance runs (tests/e2e/test_fault_tolerance.py) and every property test
# with its full count of examples (the hypothesis profile `soak`: tests/profiles.py).
soak: install
	$(BIN)/python -m tests.services_up
	$(PYTEST) -m 'soak or hypothesis' --hypothesis-profile soak

# The unit tests and the integration tests on SQLite: no PostgreSQL, no broker needed.
test-fast: install
	$(PYTEST) -m 'not soak and not image and not clients and not postgresql' tests/unit tests/integration

lint: install
	$(PY) tools/lock.py --check
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
$(PEER_STAMP): requirements/bench-peer.txt $(STAMP)
	test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install --quiet --require-hashes -r requirements/bench-peer.txt
	touch $@

# Podium's wheel and the client's (the generated code is in the client's, which Podium's
# requires), built as a clean checkout builds them (into dist/).
wheel: client
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .

# The client wheel alone (podium-client: the package `podium` and `podium_client`), into dist/.
client: install
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist ./$(CLIENT)

# The code of buf.gen.yaml (Go and Java) generated and compiled with docs/clients.md's
# examples, the Go one run against a live podium serve, on Debian's toolchains
# (tools/client-toolchains.sh installs what is missing): left out of `make test`.
clients-test: install
	tools/client-toolchains.sh
	$(BIN)/python -m tests.services_up
	$(BIN)/pytest -q -m clients tests/clients

# The image (Containerfile): podium:<version> and podium:latest. BUILDAH_FORMAT makes podium
# keep the HEALTHCHECK (its default image format has none); docker ignores it.
image:
	BUILDAH_FORMAT=docker $(CONTAINER) build -f Containerfile -t podium:$(VERSION) -t podium:latest .

# The image against this machine's PostgreSQL and a local broker the test starts: SERVING,
# a grpcurl call from the host, SIGTERM within the drain, a non-root user; prints its size.
# Several minutes (it builds the image first): left out of `make test`, for CI to run.
image-test: install image
	$(BIN)/python -m tests.services_up
	PODIUM_IMAGE=podium:$(VERSION) CONTAINER='$(CONTAINER)' $(BIN)/pytest -q -s -m image tests/image

clean:
	rm -rf $(VENV) $(PEER) $(CLIENT)/podium $(GEN_STAMP) gen .pytest_cache .mypy_cache .hypothesis dist build
