# CarHub: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DEMO_ARGS ?=
# The cached venv is shared by every clone on this machine and its editable
# install points at whichever clone ran `make` last; putting this clone first
# on the path makes every Python process started from here (tests, the
# demo's agent and hass) run this clone's code.
export PYTHONPATH := $(CURDIR)

.PHONY: venv test lint typecheck test-agent test-bridge test-ha test-e2e demo bench lock clean

venv:
	@scripts/bootstrap.sh

lint: venv
	$(VENV)/bin/ruff check bridge vehicle_agent custom_components demo tests benchmarks scripts
	$(VENV)/bin/ruff format --check bridge vehicle_agent custom_components

typecheck: venv
	$(VENV)/bin/mypy bridge vehicle_agent demo

# The bridge and agent suites run without Home Assistant's pytest plugin
# (it blocks sockets and replaces the event loop policy); the integration
# suite runs with it.
test-agent: venv
	$(PY) -m pytest -p no:homeassistant -q tests/agent tests/voice

test-bridge: venv
	$(PY) -m pytest -p no:homeassistant -q tests/bridge

test-ha: venv
	$(PY) -m pytest -q tests/integration

test-e2e: venv
	$(PY) -m pytest -p no:homeassistant -q tests/e2e

test: venv
	@scripts/run_tests.sh

demo: venv
	$(PY) -m demo $(DEMO_ARGS)

bench: venv
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

# Regenerate requirements/lock.txt from requirements/base.in.
lock:
	scripts/lock.sh

clean:
	rm -f .venv
	rm -rf .mypy_cache .ruff_cache .pytest_cache
