# Two commands on a fresh machine: `make run` and `make test`. Everything they need is set up from here.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.installed

.PHONY: setup system-packages services sandbox-image run test test-fast bench clean

setup: system-packages $(STAMP)

system-packages:
	@scripts/install_system_packages.sh

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $(STAMP)

services: setup
	@scripts/ensure_services.sh

sandbox-image: services
	$(PY) -m grader.cli sandbox ensure-image

run: sandbox-image
	$(PY) -m scripts.run_demo

test: sandbox-image
	$(PY) -m pytest -q tests

test-fast: setup
	$(PY) -m pytest -q -m "not docker and not slow and not browser" tests

bench: sandbox-image
	$(PY) -m bench.run_all

clean:
	rm -rf .venv var
