# Multi-stage: build a wheel (templates included), install it into a slim runtime.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# Numeric user: Kubernetes can verify runAsNonRoot without a passwd lookup.
USER 65532:65532
ENTRYPOINT ["model-registry-operator"]
CMD ["run"]
