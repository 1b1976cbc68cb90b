# StreamSpace: the commands people type. `make help` lists them.
# Every target that needs Python first makes the virtualenv (.venv) and installs the project into it.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null | grep -E '^v[0-9]' || echo v0.2.0)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +"%Y-%m-%dT%H:%M:%SZ")
export VERSION COMMIT BUILD_DATE

.DEFAULT_GOAL := help

##@ Local development

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev,validate]'
	@rm -f $(VENV)/.installed-* && touch $@

.PHONY: install
install: $(STAMP) ## Create .venv and install the project with dev tools

.PHONY: run
run: $(STAMP) ## Run the whole system on port $(API_PORT) (embedded Postgres, simulated cluster unless a kubeconfig cluster answers)
	@$(PY) -m streamspace run

.PHONY: migrate
migrate: $(STAMP) ## Apply database migrations (DATABASE_URL, DB_* or the embedded default)
	@$(PY) -m streamspace migrate

.PHONY: test
test: $(STAMP) ## Run the whole test suite (starts its own embedded Postgres and simulated cluster)
	@$(PY) -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff + mypy (shared library)
	@$(VENV)/bin/ruff check shared functions tests bench
	@$(VENV)/bin/mypy shared/streamspace

.PHONY: bench
bench: $(STAMP) ## Benchmarks, reported as ratios to a baseline measured in the same run
	@$(PY) -m bench $(BENCH_ARGS)

.PHONY: version
version: ## Print the version that images and packages get
	@echo "StreamSpace API $(VERSION) (commit: $(COMMIT), built: $(BUILD_DATE))"

.PHONY: clean
clean: ## Remove the local data folder (embedded Postgres data, generated dev secrets)
	rm -rf .streamspace

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z0-9_%-]+:.*##/ {printf "  %-26s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Images, compose, Kubernetes (shipping)
# (shipping targets below this line)
