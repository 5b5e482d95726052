# Framework0 Academy: every set-up step lives here, so two commands do everything.
#   make lab   create the environment, install, open JupyterLab on the course
#   make test  the same environment, then every test (project tests + nbval on solutions/)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8888
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: lab test env generate check-generated lint format bench clean

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(BIN)/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=$(CURDIR) --port=$(PORT) \
	    --LabApp.default_url=/lab/tree/exercises/module1/module1_fundamentals.ipynb

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest tests -q -n 2 --dist loadgroup
	$(BIN)/python -m pytest -q -p no:cacheprovider --nbval solutions \
	    --nbval-sanitize-with nbval_sanitize.cfg

generate: $(STAMP)
	$(BIN)/f0 generate

check-generated: $(STAMP)
	$(BIN)/f0 stale

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_context.py

clean:
	rm -rf $(VENV) gradebook.db submitted autograded feedback .f0
