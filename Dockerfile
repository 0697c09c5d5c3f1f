# Three images from one file, each with only its own program and dependencies:
#   docker build -t quay.io/opendatahub/model-registry-operator .                  (the operator, default)
#   docker build --target upload -t quay.io/opendatahub/model-registry-upload .    (upload Jobs)
#   docker build --target devcluster -t model-registry-devcluster .                (development only)
# Each installs wheels built in the `build` stage; the contract package is the only code the
# operator and the upload program share, and the operator's image holds no dev cluster code.
# tests/unit/test_packaging.py reads this file and builds each target's wheels from what the
# `build` stage copies (where no container engine is at hand, as on CI, that is the proof that
# the images build; `docker build` of each target where one is).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY upload ./upload
COPY tools/devcluster ./tools/devcluster
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/contract ./upload/contract \
 && pip wheel --no-cache-dir --wheel-dir /wheels/operator --find-links /wheels/contract . \
 && pip wheel --no-cache-dir --wheel-dir /wheels/upload --find-links /wheels/contract ./upload \
 && pip wheel --no-cache-dir --wheel-dir /wheels/devcluster ./tools/devcluster

# The control plane of the dev cluster (etcd, kube-apiserver, kube-controller-manager), built
# from source through the Go module proxy exactly as `make k8s` builds it (Go >= 1.26).
FROM golang:1.26 AS k8s-binaries
COPY hack/build-k8s.sh /src/hack/build-k8s.sh
RUN MRO_CACHE_DIR=/cache bash /src/hack/build-k8s.sh \
 && mkdir /k8s \
 && cp /cache/k8s/*/kube-apiserver /cache/k8s/*/kube-controller-manager /cache/k8s/*/etcd /k8s/

# `make run`'s local cluster in a container: a real control plane plus the simulated node.
# Every listener is on 127.0.0.1: from the host, run it with `--network host` and
# `-v /var/lib/devcluster:/var/lib/devcluster` (the kubeconfig it prints names its CA there).
FROM python:3.11-slim AS devcluster
COPY --from=build /wheels/devcluster /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels model-registry-devcluster && rm -rf /wheels \
 && mkdir -p /var/lib/devcluster && chown 65532:65532 /var/lib/devcluster
COPY --from=k8s-binaries /k8s /usr/local/lib/model-registry-devcluster/bin
USER 65532:65532
WORKDIR /var/lib/devcluster
ENTRYPOINT ["python", "-m", "model_registry_devcluster", "up", "--bin-dir", "/usr/local/lib/model-registry-devcluster/bin", "--workdir", "/var/lib/devcluster"]

FROM python:3.11-slim AS upload
COPY --from=build /wheels/upload /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels model-registry-upload && rm -rf /wheels
# Numeric user: Kubernetes can verify runAsNonRoot without a passwd lookup.
USER 65532:65532
ENTRYPOINT ["model-registry-upload"]

FROM python:3.11-slim AS operator
COPY --from=build /wheels/operator /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels model-registry-operator && rm -rf /wheels
USER 65532:65532
ENTRYPOINT ["model-registry-operator"]
CMD ["run"]
