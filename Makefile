# Everything a fresh machine needs: `make demo` runs the gateway's main job, `make test`
# runs the whole suite, `make lint` type-checks and lints. Each builds its own virtual
# environment first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# The browser tests drive Debian's chromium (scripts/install-browser.sh), never a download.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: demo test lint simulate bench clean screenshots

$(BIN)/rtms-gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

demo: $(BIN)/rtms-gateway
	$(BIN)/rtms-gateway demo --keep-serving

simulate: $(BIN)/rtms-gateway
	$(BIN)/rtms-gateway simulate $(ARGS)

test: $(BIN)/rtms-gateway
	@scripts/install-browser.sh || echo "no chromium could be installed: the browser tests will be skipped"
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(BIN)/rtms-gateway
	$(BIN)/mypy --strict src
	$(BIN)/ruff check src tests bench

# The dashboard's screenshots in docs/screenshots, taken by its browser tests.
screenshots: $(BIN)/rtms-gateway
	scripts/install-browser.sh
	RTMS_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -q -p no:randomly tests/browser

bench: $(BIN)/rtms-gateway
	$(BIN)/python bench/simulator_capacity.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
