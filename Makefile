# escalator -- run `make help` for the list of targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST_ARGS ?=
# the ops tools outside the package (linted and type-checked with it)
TOOLS_PY := tools/dashboards.py tools/observe.py

.DEFAULT_GOAL := help
.PHONY: help setup lock run demo broker test lint typecheck unit integration soak bench bench-instructions bench-service schemas clean \
	dashboards rules observe

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Every dependency comes from requirements-dev.lock (versions and hashes: pip refuses anything else); escalator itself is
# installed on top, editable, without dependencies and with the locked build tools (mypyc compiles the core).
$(BIN)/escalator: pyproject.toml setup.py requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

setup: $(BIN)/escalator ## create .venv from requirements-dev.lock (hashes checked) and install escalator editable on top

LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --all-build-deps --no-emit-index-url \
	--no-emit-find-links --resolver=backtracking
lock: setup ## re-pin every dependency with its hashes: requirements.lock (runtime + build) and requirements-dev.lock
	$(BIN)/pip-compile $(LOCK_FLAGS) --upgrade --output-file requirements.lock pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) --upgrade --extra dev --output-file requirements-dev.lock pyproject.toml

run: setup ## broker (embedded unless KAFKA_BOOTSTRAP_SERVERS is set) + topics + worker + demo traffic + live tail
	$(BIN)/escalator dev

demo: setup ## produce demo traffic to the configured broker (ESCALATOR_BOOTSTRAP_SERVERS)
	$(BIN)/escalator demo

BROKER_PORT ?= 9092
broker: setup ## run only the embedded development broker (Tansu) on 127.0.0.1:$(BROKER_PORT) until Ctrl-C
	$(BIN)/escalator broker --port $(BROKER_PORT)

lint: setup ## ruff (lint + format check), dead code (vulture, allow-list in tools/vulture_allowlist.py)
	$(BIN)/ruff check services tests bench $(TOOLS_PY)
	$(BIN)/ruff format --check services tests bench $(TOOLS_PY)
	$(BIN)/vulture

typecheck: setup ## mypy --strict on services/ (and the ops tools)
	$(BIN)/mypy
	$(BIN)/mypy $(TOOLS_PY)

unit: setup ## unit tests only (no network, no wall clock)
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

integration: setup ## tests against a real broker (started for the run when none is configured)
	$(BIN)/pytest tests/integration -q $(PYTEST_ARGS)

SOAK_RUNS ?= 20
soak: setup ## flakiness budget: restart + failover tests SOAK_RUNS times in a row (results in bench/results/)
	@mkdir -p bench/results; out=bench/results/soak.txt; : > $$out; \
	for i in $$(seq 1 $(SOAK_RUNS)); do \
	  if $(BIN)/pytest tests/integration/test_worker.py -q -p no:randomly -k "restart or failover" > /tmp/escalator-soak.log 2>&1; \
	  then echo "run $$i: pass $$(tail -1 /tmp/escalator-soak.log)" | tee -a $$out; \
	  else echo "run $$i: FAIL" | tee -a $$out; cat /tmp/escalator-soak.log; exit 1; fi; \
	done; echo "$(SOAK_RUNS) runs in a row passed ($$(date -u +%FT%TZ), broker: $${KAFKA_BOOTSTRAP_SERVERS:-embedded Tansu})" | tee -a $$out

test: lint typecheck ## everything CI runs: lint, types, the whole suite (compiled core; promtool and deploy checks included), unit tests on the plain core
	$(BIN)/escalator schemas check
	$(BIN)/pytest -q $(PYTEST_ARGS)
	ESCALATOR_PURE_PYTHON=1 $(BIN)/pytest tests/unit -q -p no:randomly $(PYTEST_ARGS)

bench: setup ## benchmarks (core throughput, simulate on the full ServiceNow log); results go to bench/results/
	$(PY) bench/core_bench.py
	$(PY) bench/simulate_bench.py


bench-instructions: setup ## the core and the decoder under callgrind: instruction counts, whatever the machine's load
	valgrind --tool=callgrind --callgrind-out-file=bench/results/callgrind.core \
		--toggle-collect=CPyPy_engine___apply --toggle-collect=CPyPy_engine___advance \
		--toggle-collect=CPyPy_engine___next_deadline $(PY) bench/core_instructions.py core 1000 2>&1 | grep Collected
	valgrind --tool=callgrind --callgrind-out-file=bench/results/callgrind.core-copy \
		--toggle-collect=CPyPy_engine___apply --toggle-collect=CPyPy_engine___advance \
		--toggle-collect=CPyPy_engine___next_deadline $(PY) bench/core_instructions.py core-copy 1000 2>&1 | grep Collected
	valgrind --tool=callgrind --callgrind-out-file=bench/results/callgrind.decode \
		--toggle-collect=CPyPy_events___decode_record $(PY) bench/core_instructions.py decode 1000 2>&1 | grep Collected

bench-service: setup ## the live worker against raw loops and faust on the embedded broker: throughput, timers, recovery (~15 min)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/service_bench.py

dashboards: setup ## regenerate deploy/grafana/dashboards/escalator.json from tools/dashboards.py (a test fails when stale)
	$(PY) tools/dashboards.py

rules: ## promtool check + unit tests of deploy/prometheus (make test runs them too: tests/integration/test_promtool.py)
	promtool check rules deploy/prometheus/rules.yml deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/tests/*_test.yml

OBSERVE_PORT ?= 19090
observe: setup ## Prometheus (Debian's package) on 127.0.0.1:$(OBSERVE_PORT) with the rules, scraping `make run`; Ctrl-C stops it
	$(PY) tools/observe.py --port $(OBSERVE_PORT)

.PHONY: fuzz
FUZZ_ARGS ?=
fuzz: setup ## hostile input at volume: 10,000+ bad records with valid traffic through a worker (~6 min; results in bench/results/fuzz.json)
	$(PY) bench/fuzz.py $(FUZZ_ARGS)

.PHONY: chaos
CHAOS_ARGS ?=
chaos: setup ## fault campaign with an oracle: 20k tickets, 2-3 workers, kills/pauses/broker stalls/rolling restart (~10 min; CHAOS_ARGS=--quick or "--campaigns 10")
	$(PY) bench/chaos.py $(CHAOS_ARGS)

schemas: setup ## regenerate schemas/ from the code
	$(BIN)/escalator schemas write

clean: ## remove caches and build leftovers (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist services/*.egg-info
	find services -name '*.so' -delete  # the compiled core (make setup builds it again)
