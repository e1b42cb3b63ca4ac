# Self-documenting Makefile: `make help` lists the targets.
# The workflows in .github/workflows call these targets, so everything CI does runs locally.
SHELL := /bin/bash
.DEFAULT_GOAL := help

include telemetry.env
export $(shell sed -n 's/^\([A-Z_]*\)=.*/\1/p' telemetry.env)
export UV_PYTHON_DOWNLOADS ?= never
# The interpreter of the venv: the machine's python3 (3.11-3.13) unless UV_PYTHON names another.
export UV_PYTHON ?= python3
# Compile .pyc at install: imports stay fast even where PYTHONDONTWRITEBYTECODE is set
# (every stage is a new process; this halves their start-up time).
export UV_COMPILE_BYTECODE ?= 1

# Use uv from PATH; otherwise install it with pip into .tools/ (needs only python3). The locked
# environment holds uv too (`bentoml build` locks the Bento's requirements with it), so after
# `source .venv/bin/activate` every tool, uv included, is on PATH.
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
# VENV=.venv-3.13 UV_PYTHON=python3.13 make test-fast: a second environment beside the first.
VENV ?= .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)
RUN := $(UV) run --frozen --no-sync
PYTEST_ARGS ?=

.PHONY: help install repro test test-fast test-scale test-template lint format typecheck audit clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

# The same uv release as the one in uv.lock.
UV_VERSION = $(shell sed -n '/^name = "uv"$$/{n;s/^version = "\(.*\)"/\1/p;}' uv.lock)

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: uv.lock pyproject.toml | $(if $(filter .tools/bin/uv,$(UV)),.tools/bin/uv)
	$(UV) sync --frozen
	@touch $@

install: $(VENV)/.synced ## Create .venv with the locked dependencies (installs uv if needed)

repro: install ## Run the whole pipeline: dvc repro
	$(RUN) dvc repro

# Test files run in parallel on up to 4 processes (pytest-xdist; one file stays on one worker,
# so its module fixtures are built once). PYTEST_ARGS="-p no:xdist" runs them one by one.
XDIST := -n auto --maxprocesses=4 --dist loadfile

test: install ## Run the test suite (unit, data, model, integration; not scale, not template)
	$(RUN) pytest $(XDIST) -m "not scale and not template" $(PYTEST_ARGS)

test-fast: install ## Run only the fast tests (no integration, no scale)
	$(RUN) pytest $(XDIST) -m "not integration and not scale and not template" $(PYTEST_ARGS)

test-scale: install ## Run the Dask scale-out tests (real LocalClusters, one file at a time)
	$(RUN) pytest -p no:xdist -m scale $(PYTEST_ARGS)

test-template: install ## Run the copier update and adoption tests (generated projects installed and reproduced)
	$(RUN) pytest $(XDIST) -m template $(PYTEST_ARGS)

lint: install ## Lint and check formatting with ruff
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench

format: install ## Format the code with ruff
	$(RUN) ruff check --fix src tests bench
	$(RUN) ruff format src tests bench

typecheck: install ## Type-check the package with mypy
	$(RUN) mypy

audit: install ## Check the locked dependencies against known vulnerabilities (pip-audit; fails if it cannot check)
	$(UV) export --frozen --no-emit-project --format requirements-txt --quiet \
		| $(RUN) pip-audit --strict --disable-pip --require-hashes --progress-spinner off -r /dev/stdin

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .venv-* .tools .pytest_cache .ruff_cache .mypy_cache

# ------------------------------------------------------------ pull-request metric review, release
# Called by .github/workflows/pr.yml and main.yml (docs/review.md).
# BASELINE: git ref the gate compares with; IMAGE: this commit's container image (lower case).
BASELINE ?= HEAD
IMAGE_REPO ?= ghcr.io/$(shell printf '%s' "$${GITHUB_REPOSITORY:-local/mlops-template}" | tr '[:upper:]' '[:lower:]')
IMAGE_TAG ?= $(shell printf '%s' "$${GITHUB_SHA:-$$(git rev-parse HEAD 2>/dev/null || echo dev)}")
IMAGE ?= $(IMAGE_REPO):$(IMAGE_TAG)
export BASELINE IMAGE

.PHONY: dvc-remote dvc-pull dvc-push gate latency-gate pr-report card-diff plots-diff bento image smoke-test registry-login push-image promote rollback

dvc-remote: install ## Add the default DVC remote with download verification: make dvc-remote URL=s3://bucket/path
	@test -n "$(URL)" || { echo "dvc-remote: give URL=<s3://bucket/path or a folder>" >&2; exit 2; }
	$(RUN) dvc remote add --default --force storage "$(URL)"
	$(RUN) dvc remote modify storage verify true

dvc-pull: install ## Pull data and models when a DVC remote is configured (else skip)
	@if [ -z "$$($(RUN) dvc remote list)" ]; then echo "dvc-pull: no DVC remote configured, skipping"; \
	else $(RUN) dvc pull --allow-missing || echo "dvc-pull: pull failed (no credentials?): dvc repro recomputes"; fi

dvc-push: install ## Push data and models when a DVC remote is configured (else skip)
	@if [ -z "$$($(RUN) dvc remote list)" ]; then echo "dvc-push: no DVC remote configured, skipping"; \
	else $(RUN) dvc push; fi

gate: install ## Metric gate against BASELINE (default HEAD), e.g. make gate BASELINE=origin/main
	$(RUN) mlops gate --baseline "$$BASELINE"

latency-gate: install ## 1-row serving latency of the packaged model vs BASELINE (default gate.baseline_ref)
	$(RUN) python -m mlops_template.serving.latency $${BASELINE:+--baseline "$$BASELINE"}

.PHONY: repro-evaluate
repro-evaluate: install ## Reproduce the pipeline up to the metrics (dvc repro evaluate; no gate, no package)
	$(RUN) dvc repro evaluate

pr-report: ## Gate report (+ the model card diff) to the job summary and one sticky PR comment
	.ci/pr-report.sh reports/gate.md reports/model_card_diff.md

card-diff: install ## The model card against BASELINE's (default HEAD): reports/model_card_diff.md
	$(RUN) python -m mlops_template.card.diff --baseline "$${BASELINE:-HEAD}"

plots-diff: install ## HTML of `dvc plots diff BASELINE` in reports/plots-diff/
	$(RUN) dvc plots diff "$$BASELINE" --out reports/plots-diff

bento: install ## Save the model to the BentoML store and `bentoml build`: dvc repro package
	$(RUN) dvc repro package

image: install ## `bentoml containerize` the Bento from reports/package.json as IMAGE (Docker)
	$(RUN) bentoml containerize "$$($(RUN) python -c 'import json; print(json.load(open("reports/package.json"))["bento_tag"])')" -t "$$IMAGE"

smoke-test: ## Start IMAGE, check /readyz and /predict (SMOKE_URL=http://... for a running server)
	.ci/smoke-test.sh

registry-login: ## docker login to ghcr.io with GH_TOKEN (CI)
	@printf '%s' "$$GH_TOKEN" | docker login ghcr.io --username "$$GITHUB_ACTOR" --password-stdin

push-image: ## Push IMAGE to its registry
	docker push "$$IMAGE"

promote: install ## Registry alias champion -> the trained model version (models/model.json), tagged IMAGE
	$(RUN) mlops promote --image "$$IMAGE"

rollback: install ## Registry alias champion -> the previous champion; prints the image to redeploy
	$(RUN) mlops rollback
.PHONY: monitor monitor-alert monitor-preflight
# Monitors the model in the workspace as it is (pulled in CI: the deployed one); never retrains.
monitor: install ## Monitor the configured batch vs the reference (MONITOR_ARGS="--current FILE"); fails on drift
	rm -f reports/monitoring/summary.json
	$(RUN) mlops monitor $(MONITOR_ARGS)

monitor-alert: ## After a failed monitor: open/update the drift issue, dispatch retraining (CI, needs gh)
	.ci/monitor-alert.sh

monitor-preflight: install ## Can the monitor measure here (model, reference, source)? Else a CI notice
	.ci/monitor-preflight.sh $(RUN) mlops monitor --preflight $(MONITOR_ARGS)

# ------------------------------------------------------------ template updates (docs/template.md)
.PHONY: template-check template-update template-pr
template-check: install ## Is a newer version of the copier template out? (prints both versions)
	$(RUN) copier check-update --output-format json

template-update: install ## copier update to the newest template version (conflicts inline: docs/template.md)
	$(RUN) copier update --trust --defaults --conflict inline

template-pr: install ## CI: a newer template version -> update on a branch, push, open a pull request (needs gh)
	.ci/template-update.sh $(RUN) copier
