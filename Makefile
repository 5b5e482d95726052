# Framework0 Academy: every set-up step lives here, so two commands do everything.
#   make lab   create the environment, install, copy exercises/ into your workspace work/
#              (only files you do not have yet), open the learner JupyterLab on it
#   make test  the same environment, then every test (project tests + nbval on solutions/)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8888
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: lab start instructor test test-trust env generate check-generated lint format bench clean hub hub-proxy mutation rules

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m academy.env   # skip a 1.4 s grammar build in every process (academy/env.py)
	touch $(STAMP)

# The learner lab: f0 lab = f0 start (work/, never overwritten), then jupyter lab with
# academy/learner/lab_config.py (f0 on the terminal's PATH, no instructor tools).
lab: $(STAMP)
	$(BIN)/f0 lab -- --port=$(PORT)

start: $(STAMP)
	$(BIN)/f0 start

# The instructor's JupyterLab on the whole course: formgrader, Create Assignment, solutions/.
instructor: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) --port=$(PORT) \
	    --ServerApp.root_dir=$(CURDIR)

# The course on JupyterHub (docs/hub.md): run as root; makes the roster's local accounts.
#   make hub ROSTER=hub/roster.csv HUB_PORT=8000 HUB_STATE=/var/lib/framework0-academy-hub
ROSTER    ?= hub/roster.csv
HUB_PORT  ?= 8000
HUB_STATE ?= /var/lib/framework0-academy-hub
PROXY     := hub/node_modules/.bin/configurable-http-proxy

hub-proxy: $(PROXY)

$(PROXY): hub/package.json
	cd hub && npm install --no-audit --no-fund --silent
	touch $(PROXY)

hub: $(STAMP) $(PROXY)
	$(BIN)/python -m academy.hub --roster $(ROSTER) --port $(HUB_PORT) --state $(HUB_STATE)

test: $(STAMP) $(PROXY)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy framework0 --strict
	$(BIN)/mypy academy
	$(BIN)/python -m pytest tests -q -n 2 --dist loadgroup --durations=25
	$(BIN)/python -m pytest -q -p no:cacheprovider --nbval solutions \
	    --nbval-sanitize-with nbval_sanitize.cfg

# Every mutant of every catalogue graded with the neutering cell too (make test: module 1 and a twelfth).
test-trust: $(STAMP)
	F0_FULL_CATALOGUE=1 $(BIN)/python -m pytest tests/test_grading.py -q -n 2 -k neutering

# Every Cosmic Ray mutant of a module's reference solutions, graded by its hidden suite; writes
# autograder/mutation/$(MODULE).md (survivors, equivalents from autograder/mutation/$(MODULE).yaml).
#   make mutation MODULE=module3 [JOBS=2]
MODULE ?= module1
JOBS   ?= 2
mutation: $(STAMP)
	$(BIN)/python -m academy.course.mutation $(MODULE) --jobs $(JOBS)

# Which hidden cases check each labelled rule of the notebooks (authors).
rules: $(STAMP)
	$(BIN)/f0 rules

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
