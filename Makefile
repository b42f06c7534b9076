# The two commands of the README: `make repro` (set up, then run the pipeline) and `make test`.
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin

.PHONY: setup repro test test-fast
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

repro: setup
	PATH="$(BIN):$$PATH" dvc repro

test: setup
	PATH="$(BIN):$$PATH" python -m pytest -q

test-fast: setup
	PATH="$(BIN):$$PATH" python -m pytest -q -m "not slow"
