# The two promises: `make demo` and `make test` each take a fresh Debian machine to a working
# result. Both run scripts/setup.sh first, which is quick when everything is already in place.
VENV := .venv
PY := $(VENV)/bin/python
MESHCTL := $(VENV)/bin/meshctl
PYTEST_ARGS ?=

.PHONY: setup demo test unit lint bench clean-local

setup:
	@bash scripts/setup.sh

demo: setup
	$(MESHCTL) demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -ra $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest -ra tests/unit $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup
	$(PY) -m perf

# Remove every local cluster this machine has, also after a crash.
clean-local: setup
	$(MESHCTL) local down --all
