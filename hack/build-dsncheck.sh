#!/usr/bin/env bash
# Build hack/dsncheck (DSNs parsed by the registry server's own Go drivers, for the tests)
# into ${MRO_CACHE_DIR:-$HOME/.cache/model-registry-operator}/bin/dsncheck.
#
# Skipped when the binary was built from the same main.go / go.mod / go.sum (a digest of them
# is kept next to it). Needs Go and the Go module proxy (or a warm module cache).
#
# Environment:
#   MRO_CACHE_DIR      cache root (default $HOME/.cache/model-registry-operator)
#   GO                 go binary (default: `go` on PATH, else /usr/local/go/bin/go)
#   MRO_FORCE_BUILD=1  rebuild even when the binary is current
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="${HERE}/dsncheck"
CACHE_DIR="${MRO_CACHE_DIR:-$HOME/.cache/model-registry-operator}"
BIN="${CACHE_DIR}/bin/dsncheck"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

digest="$(cat "${SRC}/main.go" "${SRC}/go.mod" "${SRC}/go.sum" | sha256sum | cut -d' ' -f1)"
if [[ -x "${BIN}" && "$(cat "${BIN}.sha256" 2>/dev/null)" == "${digest}" && -z "${MRO_FORCE_BUILD:-}" ]]; then
  echo "build-dsncheck: ${BIN} is current"
  exit 0
fi
mkdir -p "${CACHE_DIR}/bin"
(cd "${SRC}" && GOFLAGS=-mod=readonly nice "${GO}" build -trimpath -o "${BIN}.tmp" .)
mv "${BIN}.tmp" "${BIN}"
echo "${digest}" >"${BIN}.sha256"
echo "build-dsncheck: built ${BIN}"
