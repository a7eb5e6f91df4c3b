# dualgen — the two commands of the README, and the setup they share.
#   make study   create .venv (pinned, when missing) and run the default study: snakemake --cores all
#   make test    create .venv (when missing) and run the test suite
#   make lint    ruff check, ruff format --check, snakefmt --check and snakemake --lint (CI runs it before the tests)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
CORES  ?= all
PYTEST_ARGS ?=

.PHONY: setup study test lint report clean-results

setup: $(VENV)/.installed

# the pinned packages, then dualgen itself, editable (pyproject.toml; no build isolation: offline, with the
# setuptools pinned in the lock), so `import dualgen` works from any folder
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

study: setup
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

report: setup
	$(BIN)/snakemake --report report.html $(SNAKEMAKE_ARGS)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint
