# Model Registry operator. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
IMG ?= quay.io/opendatahub/model-registry-operator:latest
KUBECTL ?= kubectl
PYTEST_ARGS ?=

##@ General
.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_\/-]+:.*?##/ { printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtualenv with the package and dev tools

.PHONY: k8s
k8s: ## Build the local control plane binaries (cached outside the repo)
	bash hack/build-k8s.sh

.PHONY: deps
deps: venv k8s ## Install everything the tests need (venv, control plane, databases, upload back-ends)
	bash hack/install-db.sh
	bash hack/install-upload-backends.sh
	bash hack/build-dsncheck.sh

.PHONY: manifests
manifests: venv ## Regenerate the CRDs from the pydantic models
	$(VENV)/bin/model-registry-operator crds -o crds -o config/crd/bases

.PHONY: lint
lint: venv ## ruff + mypy + the import layering (lint-imports, contract in pyproject.toml)
	$(VENV)/bin/ruff check operator tests
	$(VENV)/bin/mypy operator
	$(VENV)/bin/lint-imports

.PHONY: test
test: deps lint ## Run the whole test suite (unit, database, control plane, integration, upload)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## Only the fast tests that need nothing running
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

.PHONY: bench
bench: deps ## Benchmarks (figures printed and written to build/*benchmark*.md; recorded ones: docs/benchmarks.md)
# skopeo + upstream's pinned upload-job packages in their own venv: (c) of the upload benchmark
	bash hack/install-upstream-upload.sh
	$(PY) -m tests.bench.reconcile --write build/benchmarks.md
	$(PY) -m tests.bench.upload --size-mib 2048 --files 8 --write build/upload-benchmark.md

.PHONY: run
run: venv ## Run the operator against the current cluster, or on a local control plane when none answers
	bash hack/run.sh

##@ Cluster
.PHONY: install
install: ## Install the CRDs into the current cluster
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs (and with them every registry) from the current cluster
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: ## Deploy the operator (image $(IMG)) to the current cluster
	$(KUBECTL) kustomize config/default | sed 's#quay.io/opendatahub/model-registry-operator:latest#$(IMG)#' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the operator from the current cluster
	$(KUBECTL) delete --ignore-not-found -k config/default

##@ Samples
.PHONY: certificates
certificates: ## Test CA, gateway and database certificates under certs/ plus the Secrets the secure samples use
	KUBECTL=$(KUBECTL) bash hack/certificates.sh generate

.PHONY: certificates/clean
certificates/clean: ## Remove what `make certificates` created
	KUBECTL=$(KUBECTL) bash hack/certificates.sh clean

##@ Build
.PHONY: docker-build
docker-build: ## Build the image (needs a container engine)
	docker build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the image
	docker push $(IMG)
