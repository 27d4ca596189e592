# Two commands do everything (see README): `make run` and `make test`.
# Both create .venv from the pinned requirements.lock the first time.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
HOME_DIR ?= .retail
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: run test bench docs dashboard clean

$(STAMP): requirements.lock pyproject.toml
	@echo "setting up $(VENV) from requirements.lock (first time: about a minute)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/retail-pipeline --home $(HOME_DIR) run

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(HOME_DIR) .pytest_cache
