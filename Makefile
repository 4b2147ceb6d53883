# authscale: every target builds .venv itself, so a fresh clone needs only `make simulate` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

REGION ?= all
MAU ?= 200M
LOAD ?= average
PROFILE ?= seed
DURATION ?= 60
SEED ?= 1
QPS ?=
ARCH ?=
SIM_ARGS = --region $(REGION) --mau $(MAU) --load $(LOAD) --profile $(PROFILE) \
           --duration $(DURATION) --seed $(SEED) $(if $(QPS),--qps $(QPS)) $(if $(ARCH),--arch $(ARCH))

.DEFAULT_GOAL := help
.PHONY: help venv simulate cost test lint bench-sim clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create or update .venv (every other target does this itself)

simulate: $(STAMP) ## run the four-region model: REGION= MAU= LOAD= QPS= PROFILE= DURATION= SEED= ARCH=
	$(PY) -m sim $(SIM_ARGS)

test: lint ## lint, then the test suite (what CI runs)
	$(PY) -m pytest

lint: $(STAMP) ## ruff lint + format check, mypy on scenarios and sim
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

PRICING ?= seed
cost: $(STAMP) ## monthly bill: MAU= ARCH=legacy|legacy-optimised|hybrid PRICING=seed|list
	$(PY) -m sim.cost_cli --mau $(MAU) --arch $(or $(ARCH),hybrid) --pricing $(PRICING)

bench-sim: $(STAMP) ## model speed vs a bare SimPy M/M/1 loop (PEAK=1 also times LOAD=peak)
	$(PY) -m sim.bench $(if $(PEAK),--peak)

clean: ## remove .venv and generated results
	rm -rf $(VENV) results/sim results/bench results/cost
