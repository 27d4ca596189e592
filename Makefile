# Two commands do everything (see README): `make run` and `make test`.
# Both create .venv from the pinned requirements.lock the first time, with uv (pinned, installed
# into the venv by pip): the same 174 packages as pip installs from the same lock, in about 5 s
# instead of pip's 46 s (pip with --no-compile) on this 2-core machine type. If uv fails (no registry it can
# reach, say), pip does the same install. Modules are byte-compiled when first imported.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
HOME_DIR ?= .retail
# checkov (Terraform scan in `make test`) conflicts with the main set: it gets a virtualenv of its own.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cat requirements-checkov.lock | cksum | cut -d' ' -f1)
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
# This machine type sets PYTHONDONTWRITEBYTECODE=1: every process would compile each module it
# imports from source, every time. Under make, the first process to import a module writes its .pyc
# into the venv (or src/, git-ignored) and later ones read it: nothing compiles ahead of time.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-fast lint bench docs dashboard clean

UV_VERSION := 0.13.9
PIP := --quiet --disable-pip-version-check
# install-lock VENV LOCKFILE: the lock into the venv with uv, or with pip when uv fails
define install-lock
	$(1)/bin/python -m pip install $(PIP) --upgrade pip==26.3 uv==$(UV_VERSION)
	$(1)/bin/uv pip install --quiet --python $(1)/bin/python -r $(2) \
	  || { echo "uv could not install $(2); installing it with pip"; \
	       $(1)/bin/python -m pip install $(PIP) --no-compile -r $(2); }
endef

$(STAMP): requirements.lock pyproject.toml
	@echo "setting up $(VENV) from requirements.lock (first time: a few seconds with uv, about a minute with pip)"
	$(PYTHON) -m venv $(VENV)
	$(call install-lock,$(VENV),requirements.lock)
	$(BIN)/python -m pip install $(PIP) --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.lock
	@echo "setting up $(CHECKOV_VENV) from requirements-checkov.lock"
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(call install-lock,$(CHECKOV_VENV),requirements-checkov.lock)
	rm -f $(CHECKOV_VENV)/.installed-*
	touch $(CHECKOV_STAMP)

run: $(STAMP)
	$(BIN)/retail-pipeline --home $(HOME_DIR) run

# ruff (lint and format check) and mypy over the package; part of `make test`
LINT_PATHS := src tests functions scripts benchmarks dbt/entrypoint.py
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

# The suite in parallel (pytest-xdist): the tests that read one shared run go to one worker, the
# long ones are handed out first (tests/conftest.py). Most of an emulator test's time is spent
# waiting on other processes, so three workers keep two cores busy. PYTEST_WORKERS=0: serial.
PYTEST_WORKERS ?= 3
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup)

test: $(STAMP) $(CHECKOV_STAMP) lint
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# day-to-day: everything but the tests marked slow (pyproject.toml) and the emulator chains; no checkov venv
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "not slow and not emulator" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/retail-pipeline --home $(HOME_DIR) bench $(BENCH_ARGS)

docs: $(STAMP)
	$(BIN)/retail-pipeline --home $(HOME_DIR) docs

clean:
	rm -rf $(HOME_DIR) .pytest_cache
