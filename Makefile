# Model Registry operator. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
UPLOAD_VENV ?= .venv-upload
PY := $(VENV)/bin/python
IMG ?= quay.io/opendatahub/model-registry-operator:latest
UPLOAD_IMG ?= quay.io/opendatahub/model-registry-upload:latest
KUBECTL ?= kubectl
PYTEST_ARGS ?=

##@ General
.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_\/-]+:.*?##/ { printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development
$(VENV)/.installed: pyproject.toml upload/contract/pyproject.toml tools/devcluster/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e upload/contract -e '.[dev]' -e tools/devcluster
	touch $@

# The upload program's own environment: boto3 and the model-registry client need
# python-dateutil<3, the operator's kubernetes client >=3.
$(UPLOAD_VENV)/.installed: upload/pyproject.toml upload/contract/pyproject.toml
	$(PYTHON) -m venv $(UPLOAD_VENV)
	$(UPLOAD_VENV)/bin/python -m pip install -q --upgrade pip
	$(UPLOAD_VENV)/bin/python -m pip install -q -e upload/contract -e 'upload[test]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed $(UPLOAD_VENV)/.installed ## Create the virtualenvs: the operator's (with dev tools) and the upload program's

.PHONY: k8s
k8s: ## Build the local control plane binaries and their kubectl (cached outside the repo)
	bash hack/build-k8s.sh

.PHONY: deps
deps: venv k8s ## Install everything the tests need (venv, control plane, databases, upload back-ends)
	bash hack/install-db.sh
	bash hack/install-upload-backends.sh
	bash hack/build-dsncheck.sh
	bash hack/install-promtool.sh

.PHONY: manifests
manifests: venv ## Regenerate the CRDs from the pydantic models and the RBAC (config/rbac) from the table of kinds
	$(VENV)/bin/model-registry-operator crds -o crds -o config/crd/bases
	$(VENV)/bin/model-registry-operator rbac -o config/rbac

.PHONY: lint
lint: venv ## ruff + mypy (the operator and the upload program, each in its own environment) + the import layering (lint-imports, contract in pyproject.toml)
	$(VENV)/bin/ruff check operator upload tests tools
	$(VENV)/bin/mypy operator tools/devcluster
	cd upload && ../$(UPLOAD_VENV)/bin/mypy
	$(VENV)/bin/lint-imports

.PHONY: test
test: deps lint ## Run the whole test suite (unit, database, control plane, integration, upload)
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	$(UPLOAD_VENV)/bin/pytest -c upload/pyproject.toml --rootdir . $(PYTEST_ARGS)

.PHONY: test-upload
test-upload: venv ## Only the upload program's suite (in its own environment)
	$(UPLOAD_VENV)/bin/pytest -c upload/pyproject.toml --rootdir . $(PYTEST_ARGS)

.PHONY: test-rbac
test-rbac: venv ## Only the RBAC proof: the operator under its generated ClusterRole alone, every rule taken away in turn (~3 min)
	$(VENV)/bin/pytest tests/integration/test_rbac_least_privilege.py $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## Only the fast tests that need nothing running
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

.PHONY: bench
bench: deps ## Benchmarks (figures printed and written to build/*benchmark*.md; recorded ones: docs/benchmarks.md)
# skopeo + upstream's pinned upload-job packages in their own venv: (c) of the upload benchmark
	bash hack/install-upstream-upload.sh
	$(PY) -m tests.bench.reconcile --write build/benchmarks.md
	$(UPLOAD_VENV)/bin/python -m tests.bench.upload --size-mib 2048 --files 8 --write build/upload-benchmark.md

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
deploy: ## Deploy the operator (image $(IMG), upload Jobs $(UPLOAD_IMG)) to the current cluster: namespace, CRDs, RBAC, Deployment; waits for the rollout
	IMG='$(IMG)' UPLOAD_IMG='$(UPLOAD_IMG)' KUBECTL='$(KUBECTL)' bash hack/deploy.sh apply

.PHONY: undeploy
undeploy: ## Remove every registry and upload job, then the operator, its RBAC and the CRDs
	IMG='$(IMG)' KUBECTL='$(KUBECTL)' bash hack/deploy.sh delete

##@ Samples
.PHONY: certificates
certificates: ## Test CA, gateway and database certificates under certs/ plus the Secrets the secure samples use
	KUBECTL=$(KUBECTL) bash hack/certificates.sh generate

.PHONY: certificates/clean
certificates/clean: ## Remove what `make certificates` created
	KUBECTL=$(KUBECTL) bash hack/certificates.sh clean

##@ Build
.PHONY: docker-build
docker-build: ## Build the operator and upload images (needs a container engine)
	docker build --target operator -t $(IMG) .
	docker build --target upload -t $(UPLOAD_IMG) .

.PHONY: docker-push
docker-push: ## Push the images
	docker push $(IMG)
	docker push $(UPLOAD_IMG)
