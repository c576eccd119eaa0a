# Two set-up commands work on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install the package with its test extras,
# runtime dependencies pinned by constraints.txt (the versions the image runs).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# the stand-in for python:3.11-slim-bookworm (image registries cannot be reached here)
IMAGE_BASE_STANDIN := localhost/worldcover-base:bookworm
IMAGE_BASE ?= $(IMAGE_BASE_STANDIN)
IMAGE      ?= localhost/worldcover:$(VERSION)
# extra `podman build` options (labels, --no-cache, ...)
IMAGE_BUILD_ARGS ?=

# test-fast: the quick loop (no end-to-end runs, no image build), under 3 minutes
.PHONY: demo test test-fast lint install web chromium bench notebooks argo lock image image-base clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The web map's Leaflet (`worldcover mosaic serve`): from the npm registry, pinned by package-lock.json,
# vendored into the ignored node_modules/ that the server serves (never a CDN).
WEB     := worldcover/mosaic/web
LEAFLET := $(WEB)/node_modules/leaflet/dist/leaflet.js

$(LEAFLET): $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

web: $(LEAFLET)

# Debian's Chromium for the web map's browser test (apt-get when missing); where it cannot be
# installed the suite still runs and that test fails, saying why.
chromium:
	@scripts/setup-chromium.sh || echo "make: chromium set-up failed; tests/test_mosaic_serve.py will fail" >&2

install: $(STAMP) $(LEAFLET)

demo: $(STAMP) $(LEAFLET)
	$(BIN)/python -m worldcover.demo --out $(or $(OUT),demo-output)

# The suite runs on TEST_WORKERS processes (pytest-xdist), one test file per worker at a time (--dist loadfile:
# module fixtures are built once); serially, half of the 2-core machine stays idle while a test waits on a
# subprocess, podman or a single-threaded step. TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=15

test: $(STAMP) $(LEAFLET) chromium
	$(PYTEST)

test-fast: $(STAMP) $(LEAFLET) chromium
	$(PYTEST) -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# notebooks: each notebooks/NN_*.py (jupytext py:percent) executed in a fresh kernel into build/notebooks/*.ipynb,
# with its wall time; the simulated archive and outputs they share are cached in build/notebook-cache/.
# WORLDCOVER_NB_SIZE=tiny runs the small configuration of tests/test_notebooks.py (default: normal).
notebooks: $(STAMP)
	$(BIN)/python scripts/run_notebooks.py --out build/notebooks

# lint: ruff (rules in pyproject [tool.ruff]) and mypy on the package ([tool.mypy]); the same hooks run
# from .pre-commit-config.yaml. `ruff format` is not enforced: the code is not formatted that way (yet).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

argo: $(STAMP)
	$(BIN)/worldcover campaign render-golden

# constraints.txt: the runtime dependencies pinned to the versions installed in .venv.
# To upgrade: `.venv/bin/pip install -U PKG` (or edit pyproject.toml and
# `.venv/bin/pip install -e '.[dev]'` without -c), run the tests, then `make lock`.
lock: $(STAMP)
	$(BIN)/python scripts/lock.py --out constraints.txt

# The image every Argo pod runs (Containerfile), built with podman from IMAGE_BASE.
image-base:
	scripts/build-base-image.sh $(IMAGE_BASE_STANDIN)

image: $(if $(filter $(IMAGE_BASE_STANDIN),$(IMAGE_BASE)),image-base)
	podman build --network=host -v /etc/ssl/certs:/etc/ssl/certs:ro \
	    --build-arg BASE=$(IMAGE_BASE) --label org.opencontainers.image.version=$(VERSION) \
	    $(IMAGE_BUILD_ARGS) -t $(IMAGE) .

clean:
	rm -rf demo-output .pytest_cache build *.egg-info
