#!/usr/bin/env bash
# `make deploy` / `make undeploy`: config/default with the operator image IMG, on the cluster of
# the current kubeconfig context (KUBECONFIG, or KUBECTL="kubectl --context ...").
#
#   hack/deploy.sh apply    namespace, CRDs, RBAC and the manager Deployment (server-side apply),
#                           then waits for the Deployment to be available
#   hack/deploy.sh delete   every ModelRegistry and ModelUploadJob first, while the operator still
#                           runs to remove what they own outside their namespace (their finalizer),
#                           then the operator (waiting for its Pod to end), then everything else
#                           `apply` made, CRDs included
#
# The image is set by a kustomize `images` entry in an overlay written to build/deploy/ (git
# ignores build/): the tree is not edited. IMG may be name, name:tag or name@sha256:digest;
# UPLOAD_IMG becomes the Deployment's RELATED_IMAGE_MODEL_UPLOAD_JOB_IMAGE (the upload Jobs' image).
# Environment: IMG (default quay.io/opendatahub/model-registry-operator:latest), UPLOAD_IMG
# (default quay.io/opendatahub/model-registry-upload:latest), KUBECTL
# (default kubectl; kubectl >= 1.27 for its built-in kustomize), DEPLOY_TIMEOUT (default 300s).
set -euo pipefail
cd "$(dirname "$0")/.."

IMG="${IMG:-quay.io/opendatahub/model-registry-operator:latest}"
UPLOAD_IMG="${UPLOAD_IMG:-quay.io/opendatahub/model-registry-upload:latest}"
read -r -a KUBECTL <<<"${KUBECTL:-kubectl}"
TIMEOUT="${DEPLOY_TIMEOUT:-300s}"
NAMESPACE=model-registry-operator-system
DEPLOYMENT=model-registry-operator-controller-manager
OVERLAY=build/deploy

# name[:tag] | name@digest -> the kustomize images fields (a registry's :port is not a tag).
image_fields() {
  local ref="$1" name last
  if [[ "${ref}" == *@* ]]; then
    printf '    newName: %s\n    digest: %s\n' "${ref%%@*}" "${ref#*@}"
    return
  fi
  last="${ref##*/}"
  if [[ "${last}" == *:* ]]; then
    name="${ref%:*}"
    printf '    newName: %s\n    newTag: "%s"\n' "${name}" "${ref##*:}"
  else
    printf '    newName: %s\n    newTag: latest\n' "${ref}"
  fi
}

write_overlay() {
  mkdir -p "${OVERLAY}"
  {
    echo "# Written by hack/deploy.sh (make deploy IMG=${IMG}); not kept in git."
    echo "resources:"
    echo "  - ../../config/default"
    echo "images:"
    echo "  - name: quay.io/opendatahub/model-registry-operator"
    image_fields "${IMG}"
    echo "patches:"
    echo "  - patch: |-"
    echo "      {\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\","
    echo "       \"metadata\": {\"name\": \"${DEPLOYMENT}\", \"namespace\": \"${NAMESPACE}\"},"
    echo "       \"spec\": {\"template\": {\"spec\": {\"containers\": [{\"name\": \"manager\", \"env\": ["
    echo "         {\"name\": \"RELATED_IMAGE_MODEL_UPLOAD_JOB_IMAGE\", \"value\": \"${UPLOAD_IMG}\"}]}]}}}}"
  } > "${OVERLAY}/kustomization.yaml"
}

case "${1:-}" in
  apply)
    write_overlay
    "${KUBECTL[@]}" apply --server-side -k "${OVERLAY}"
    "${KUBECTL[@]}" wait --for=condition=Established --timeout=60s \
      crd/modelregistries.modelregistry.opendatahub.io crd/modeluploadjobs.modelregistry.opendatahub.io
    "${KUBECTL[@]}" rollout status -n "${NAMESPACE}" "deployment/${DEPLOYMENT}" --timeout="${TIMEOUT}"
    ;;
  delete)
    write_overlay
    if "${KUBECTL[@]}" get crd modelregistries.modelregistry.opendatahub.io >/dev/null 2>&1; then
      "${KUBECTL[@]}" delete modeluploadjobs.modelregistry.opendatahub.io,modelregistries.modelregistry.opendatahub.io \
        --all --all-namespaces --wait=true --timeout="${TIMEOUT}"
    fi
    # The operator stops before its RBAC goes: it may still be handling the last events.
    "${KUBECTL[@]}" delete --ignore-not-found --wait=true --timeout="${TIMEOUT}" \
      -n "${NAMESPACE}" "deployment/${DEPLOYMENT}"
    "${KUBECTL[@]}" wait --for=delete --timeout="${TIMEOUT}" -n "${NAMESPACE}" pod -l control-plane=controller-manager
    "${KUBECTL[@]}" delete --ignore-not-found --wait=true --timeout="${TIMEOUT}" -k "${OVERLAY}"
    ;;
  *)
    echo "usage: $0 apply|delete" >&2
    exit 2
    ;;
esac
