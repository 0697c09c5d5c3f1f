# Two images from one file, each with only its own program and dependencies:
#   docker build -t quay.io/opendatahub/model-registry-operator .            (the operator, default)
#   docker build --target upload -t quay.io/opendatahub/model-registry-upload .   (upload Jobs)
# Both install wheels built here; the contract package is the only code they share.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY upload ./upload
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/contract ./upload/contract \
 && pip wheel --no-cache-dir --wheel-dir /wheels/operator --find-links /wheels/contract . \
 && pip wheel --no-cache-dir --wheel-dir /wheels/upload --find-links /wheels/contract ./upload

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
