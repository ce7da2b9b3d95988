# Everything a fresh machine needs: `make demo` runs the gateway's main job, `make test`
# runs the whole suite, `make lint` type-checks and lints. Each builds its own virtual
# environment first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint simulate bench clean

$(BIN)/rtms-gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

demo: $(BIN)/rtms-gateway
	$(BIN)/rtms-gateway demo

simulate: $(BIN)/rtms-gateway
	$(BIN)/rtms-gateway simulate $(ARGS)

test: $(BIN)/rtms-gateway
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(BIN)/rtms-gateway
	$(BIN)/mypy --strict src
	$(BIN)/ruff check src tests bench

bench: $(BIN)/rtms-gateway
	$(BIN)/python bench/simulator_capacity.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
