# Two set-up commands work on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install the package with its test extras.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench argo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m worldcover.demo --out $(or $(OUT),demo-output)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

argo: $(STAMP)
	$(BIN)/python -m worldcover.render_all argo

clean:
	rm -rf demo-output .pytest_cache build *.egg-info
