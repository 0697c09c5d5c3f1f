#!/usr/bin/env bash
# Install promtool (checks and unit-tests the Prometheus alert rules in config/prometheus) from
# Debian 12's prometheus package. Only the promtool binary is taken: the package is downloaded
# and unpacked into the cache, never installed, so no Prometheus daemon or service comes with it.
# Idempotent: exits quickly when the cached binary is present.
set -euo pipefail

CACHE=${MRO_CACHE_DIR:-${HOME}/.cache/model-registry-operator}
BIN=${CACHE}/bin
TARGET=${BIN}/promtool

if [[ -x ${TARGET} ]] && "${TARGET}" --version >/dev/null 2>&1; then
  echo "install-promtool: ${TARGET} already installed"
  exit 0
fi

if [[ ${EUID} -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi

work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
if ! (cd "${work}" && apt-get download prometheus >/dev/null 2>&1); then
  ${SUDO} apt-get update -qq
  (cd "${work}" && apt-get download prometheus)
fi
dpkg-deb -x "${work}"/prometheus_*.deb "${work}/root"
mkdir -p "${BIN}"
install -m 0755 "${work}/root/usr/bin/promtool" "${TARGET}"
"${TARGET}" --version | head -1
