#!/usr/bin/env bash
# Install the pieces of upstream's async-upload job (kubeflow/hub jobs/async-upload) that the
# upload benchmark runs as its method (c), so that (c) is upstream's real code path:
#   - skopeo (Debian package), which the job's olot/skopeo backend runs to pull the base image
#     and to push the modelcar
#   - a venv ${MRO_CACHE_DIR}/upstream-upload-venv with the job's pinned Python dependencies:
#     model-registry[boto3,olot]==0.3.7, olot==0.1.8, boto3==1.40.51 (JOB/pyproject.toml,
#     JOB/requirements.txt). Its own venv: boto3/botocore pin python-dateutil<3, the project
#     venv needs >=3.
# Benchmark-only (`make bench`); the tests do not need it. Idempotent: every step is skipped
# when its result is already present.
set -euo pipefail

CACHE_DIR="${MRO_CACHE_DIR:-${HOME}/.cache/model-registry-operator}"
VENV="${CACHE_DIR}/upstream-upload-venv"
MODEL_REGISTRY_VERSION=0.3.7
OLOT_VERSION=0.1.8
BOTO3_VERSION=1.40.51
mkdir -p "${CACHE_DIR}"

SUDO=
if [[ ${EUID} -ne 0 ]]; then SUDO=sudo; fi

# ---- skopeo ------------------------------------------------------------------------------
if command -v skopeo >/dev/null 2>&1; then
  echo "install-upstream-upload: skopeo already installed ($(skopeo --version))"
else
  ${SUDO} apt-get update -qq
  DEBIAN_FRONTEND=noninteractive ${SUDO} apt-get install -y -qq --no-install-recommends --no-upgrade skopeo
fi

# ---- upstream job's Python dependencies ----------------------------------------------------
if "${VENV}/bin/python" - "${MODEL_REGISTRY_VERSION}" "${OLOT_VERSION}" "${BOTO3_VERSION}" >/dev/null 2>&1 <<'PYEOF'
import importlib.metadata as m, sys
want = dict(zip(("model-registry", "olot", "boto3"), sys.argv[1:]))
sys.exit(any(m.version(name) != version for name, version in want.items()))
PYEOF
then
  echo "install-upstream-upload: upstream job dependencies already in ${VENV}"
else
  python3 -m venv "${VENV}"
  "${VENV}/bin/python" -m pip install -q --upgrade pip
  "${VENV}/bin/python" -m pip install -q "model-registry[boto3,olot]==${MODEL_REGISTRY_VERSION}" \
    "olot==${OLOT_VERSION}" "boto3==${BOTO3_VERSION}"
fi
echo "install-upstream-upload: done"
