# Two commands on a fresh machine: `make run` and `make test`. Everything they need is set up from here.
#
#   make run    Debian packages for the sandbox (bubblewrap, debootstrap; docker.io unless an engine answers),
#               .venv with the runtime dependencies only, the Docker engine (else bubblewrap), the sandbox image,
#               then the demo on an embedded SQLite store and a filesystem broker: no PostgreSQL, no Redis.
#   make test   everything above plus the test extras (PyTorch, pytest, Playwright), Chromium, docker-compose,
#               PostgreSQL and Redis (installed from Debian and started on 127.0.0.1 when they do not answer).
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
RUNTIME_STAMP := .venv/.installed-runtime
TEST_STAMP := .venv/.installed-test
PORT ?= 8000
# Taken when make reads this file, before any recipe runs: `make run` reports its set-up time from here.
MAKE_STARTED := $(shell date +%s.%N)

.PHONY: setup run-setup system-packages run-system-packages services run-services sandbox-image run-sandbox \
        run test test-fast bench clean

setup: system-packages $(TEST_STAMP)

run-setup: run-system-packages $(RUNTIME_STAMP)

system-packages:
	@scripts/install_system_packages.sh sandbox docker servers browser compose

run-system-packages:
	@scripts/install_system_packages.sh sandbox docker-if-no-engine

$(RUNTIME_STAMP): pyproject.toml
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(TEST_STAMP): $(RUNTIME_STAMP) pyproject.toml tests/api/web/browser/package-lock.json
	$(PIP) install -q -e '.[test]'
	npm ci --no-audit --no-fund --prefix tests/api/web/browser  # axe-core for the accessibility checks
	touch $@

services: setup
	@scripts/ensure_services.sh servers docker

run-services: run-setup
	@scripts/ensure_services.sh docker-or-bwrap

sandbox-image: services
	$(PY) -m grader.cli sandbox ensure-image

run-sandbox: run-services
	$(PY) -m grader.cli sandbox ensure-image --backend auto

run: run-sandbox
	MAKE_STARTED=$(MAKE_STARTED) $(PY) -m scripts.run_demo --port $(PORT)

test: sandbox-image
	$(PY) -m pytest -q tests

test-fast: setup
	$(PY) -m pytest -q -m "not docker and not slow and not browser" tests

bench: sandbox-image
	$(PY) -m bench.run_all

clean:
	rm -rf .venv var
