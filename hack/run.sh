#!/usr/bin/env bash
# `make run`: run the operator against the current kubeconfig context; when no cluster
# answers, start the embedded local control plane (with its simulated node) and run there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
OPERATOR="${VENV}/bin/model-registry-operator"
PY="${VENV}/bin/python"
WORKDIR="${LOCAL_CLUSTER_DIR:-$PWD/.local-cluster}"

if kubectl cluster-info --request-timeout=5s >/dev/null 2>&1; then
  echo "Using the current cluster: $(kubectl config current-context 2>/dev/null || echo in-cluster)"
  kubectl apply --server-side -k config/crd
  exec "${OPERATOR}" run
fi

echo "No reachable cluster: starting the local control plane in ${WORKDIR}"
# Its kubectl is the control plane's release (the last line build-k8s.sh prints is its bin dir).
K8S_BIN="$(bash hack/build-k8s.sh | tail -n 1)"
export PATH="${K8S_BIN}:${PATH}"
mkdir -p "${WORKDIR}"
rm -f "${WORKDIR}/kubeconfig"
"${PY}" -m model_registry_devcluster up --workdir "${WORKDIR}" > "${WORKDIR}/devcluster.log" 2>&1 &
CLUSTER_PID=$!
OPERATOR_PID=""
stop() {
  trap - EXIT INT TERM
  [[ -n "${OPERATOR_PID}" ]] && kill "${OPERATOR_PID}" 2>/dev/null
  kill "${CLUSTER_PID}" 2>/dev/null
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM
for _ in $(seq 1 120); do
  [[ -s "${WORKDIR}/kubeconfig" ]] && break
  kill -0 "${CLUSTER_PID}" 2>/dev/null || { cat "${WORKDIR}/devcluster.log"; exit 1; }
  sleep 1
done
[[ -s "${WORKDIR}/kubeconfig" ]] || { echo "the local control plane did not start"; cat "${WORKDIR}/devcluster.log"; exit 1; }
export KUBECONFIG="${WORKDIR}/kubeconfig"
kubectl apply --server-side -k config/crd >/dev/null
cat <<MSG

Local control plane is up, with a simulated node that runs pods as Ready.
Point kubectl at it from another shell:

    export PATH=${K8S_BIN}:\$PATH KUBECONFIG=${KUBECONFIG}
    kubectl apply -k config/samples/postgres
    kubectl wait --for=condition=Available mr/modelregistry-sample --timeout=120s

Stop with Ctrl-C (the control plane stops with the operator).
MSG
"${OPERATOR}" run --kubeconfig "${KUBECONFIG}" &
OPERATOR_PID=$!
wait "${OPERATOR_PID}"
