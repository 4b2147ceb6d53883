# authscale: every target builds .venv itself, so a fresh clone needs only `make simulate` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

REGION ?= all
MAU ?=
LOAD ?=
PROFILE ?=
DURATION ?=
SEED ?= 1
QPS ?=
ARCH ?=
SCENARIO ?=
REPLICATIONS ?=
PACE ?=
# Unset flags take the simulator's defaults, or the scenario file's with SCENARIO=.
SIM_ARGS = --region $(REGION) --seed $(SEED) $(if $(MAU),--mau $(MAU)) $(if $(LOAD),--load $(LOAD)) \
           $(if $(PROFILE),--profile $(PROFILE)) $(if $(DURATION),--duration $(DURATION)) \
           $(if $(QPS),--qps $(QPS)) $(if $(ARCH),--arch $(ARCH)) \
           $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(REPLICATIONS),--replications $(REPLICATIONS)) \
           $(if $(PACE),--pace $(PACE))

.DEFAULT_GOAL := help
.PHONY: help venv simulate scenarios server stack stop loadtest locust bench-loadgen bench-scheduler calibrate twin compare report cost test lint bench-sim bench-server clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create or update .venv (every other target does this itself)

simulate: $(STAMP) ## run the four-region model: REGION= MAU= LOAD= QPS= PROFILE= DURATION= SEED= ARCH= SCENARIO= [PACE=load run dirs]
	$(PY) -m sim $(SIM_ARGS)

scenarios: $(STAMP) ## list the failure drills (run one with make simulate SCENARIO=<name>)
	$(PY) -m sim --list-scenarios

test: lint ## lint, then the test suite (what CI runs)
	$(PY) -m pytest

lint: $(STAMP) ## ruff lint + format check, mypy on scenarios, sim and server
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

PORT ?= 8000
server: $(STAMP) ## the OIDC provider on 127.0.0.1:$(PORT); its own Redis/PostgreSQL unless REDIS_URL/DATABASE_URL
	PORT=$(PORT) $(PY) -m server

REGIONS ?= ap-ne,us-west
stack: $(STAMP) ## one server + Redis per region, shared PostgreSQL: REGIONS=ap-ne,us-west (ports 8001...)
	$(PY) -m server.stack --regions $(REGIONS)

LOAD_ARGS = $(if $(QPS),--qps $(QPS)) $(if $(DURATION),--duration $(DURATION)) \
            --regions $(if $(filter command line environment,$(origin REGIONS)),$(REGIONS),ap-ne) \
            $(if $(HOST),--host $(HOST)) $(if $(WORKERS),--workers $(WORKERS)) \
            $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(CLOSED),--closed-loop) \
            $(if $(MIX),--mix $(MIX)) $(if $(TRACE),--trace)
loadtest: $(STAMP) ## headless open-loop load: QPS=500 DURATION=30 REGIONS=ap-ne [HOST=] [WORKERS=] [SCENARIO=] [CLOSED=1]
	$(PY) -m loadgen $(LOAD_ARGS)

locust: $(STAMP) ## Locust's web UI on http://127.0.0.1:8089 against the stack (REGIONS=, QPS= for the open-loop user)
	$(PY) -m loadgen --web $(LOAD_ARGS)

stop: $(STAMP) ## stop what make server / make stack started
	$(PY) -m server.stop

BUSY ?= 1
calibrate: $(STAMP) ## traced light load, fit scenarios/data/profiles/local.toml, then traced runs at 70 % of capacity (up to 3, until one lies within 5 %) for CPU by load: [REGIONS=] [QPS=100] [DURATION=60] [BUSY=0]
	$(PY) -m loadgen --trace --qps $(or $(QPS),100) --duration $(or $(DURATION),60) --regions $(REGIONS)
	$(PY) -m report.calibrate
ifneq ($(BUSY),0)
	@runs=""; for i in 1 2 3; do \
	  busy=$$($(PY) -m report.calibrate --busy-qps --unmeasured) || exit 1; \
	  if [ -z "$$busy" ]; then echo "authscale calibrate: a busier run lies within 5 % of 70 % of capacity; done"; break; fi; \
	  echo "authscale calibrate: busier run $$i at $$busy QPS (70 % of the capacity found so far)"; \
	  $(PY) -m loadgen --trace --qps $$busy --duration $(or $(DURATION),60) --regions $(REGIONS) || exit 1; \
	  runs="$$runs --speed-run $$(readlink -f $${AUTHSCALE_RESULTS:-results}/load/latest)"; \
	  $(PY) -m report.calibrate $$runs || exit 1; \
	done
endif

RUNS ?= 3
twin: $(STAMP) ## after make calibrate, the check at 70 % of capacity: RUNS=3 traced load runs of DURATION=60 s, the model of REPLICATIONS=8 as long given their speed (diagnostic) and from the calibration (prediction), each compared; the verdict says which a miss is [QPS=] [STRICT=1: exit 3 on a miss]
	$(PY) -m report.twin --runs $(RUNS) $(if $(QPS),--qps $(QPS)) $(if $(DURATION),--duration $(DURATION)) $(if $(REPLICATIONS),--replications $(REPLICATIONS)) $(if $(filter 1,$(STRICT)),--strict)

compare: $(STAMP) ## newest PROFILE=local simulation against the load runs of its load since calibrating, pooled: [SIM_RUN=dir] [LOAD_RUN=dir,dir]
	$(PY) -m report.compare $(if $(SIM_RUN),--sim $(SIM_RUN)) $(if $(LOAD_RUN),--load $(LOAD_RUN))

report: $(STAMP) ## results/report.html from the newest sim, drill, load and cost runs (self-contained)
	$(PY) -m report

PRICING ?= seed
cost: $(STAMP) ## monthly bill: MAU= ARCH=legacy|legacy-optimised|hybrid PRICING=seed|list
	$(PY) -m sim.cost_cli --mau $(or $(MAU),200M) --arch $(or $(ARCH),hybrid) --pricing $(PRICING)

bench-server: $(STAMP) ## server req/s per core (granian on core 0, wrk on core 1) vs a one-GET baseline
	$(PY) -m server.bench

bench-loadgen: $(STAMP) ## Locust sender req/s per core (ours vs bare FastHttpUser) and the highest QPS sustained end to end
	$(PY) -m loadgen.bench

bench-scheduler: $(STAMP) ## how often a light thread waits for a core beside a spinner: this kernel vs the model of the cores
	$(PY) -m report.scheduler_bench $(if $(WAKES),--wakes $(WAKES))

bench-sim: $(STAMP) ## model speed vs a bare SimPy M/M/1 loop (PEAK=1 also times LOAD=peak)
	$(PY) -m sim.bench $(if $(PEAK),--peak)

clean: ## remove .venv and generated results
	rm -rf $(VENV) results/sim results/bench results/cost .run
