#!/usr/bin/env bash
# Test certificates for the secure samples: a CA, REST and gRPC gateway certificates and a
# database server certificate under certs/, then the Secrets and ConfigMap the samples use:
#   - TLS Secrets <registry>-rest-credential and <registry>-grpc-credential in the ingress
#     gateway's namespace (istio/*-tls samples, gateway.rest/grpc.tls.credentialName);
#   - Secret model-registry-db-credential (tls.crt, tls.key, ca.crt) for the database server and
#     ConfigMap model-registry-db-credential (ca.crt) for the registry, in the current namespace
#     (secure-db samples).
#
# Usage: hack/certificates.sh [generate|clean]
# Settings (environment): DOMAIN (default: the cluster's ingress domain, else apps.example.com),
# NAMESPACE (default: the kubeconfig context's, else default), INGRESS_NAMESPACE (istio-system),
# REGISTRY_NAME (modelregistry-sample), DB_HOST (model-registry-db), DB_SANS (extra
# subjectAltName entries for the database, e.g. "IP:10.0.0.5,DNS:db.example.com"),
# CERTS_DIR (certs), KUBECTL (kubectl), APPLY (1; 0 = only write the files).
set -euo pipefail

ACTION=${1:-generate}
KUBECTL=${KUBECTL:-kubectl}
CERTS_DIR=${CERTS_DIR:-certs}
APPLY=${APPLY:-1}
REGISTRY_NAME=${REGISTRY_NAME:-modelregistry-sample}
INGRESS_NAMESPACE=${INGRESS_NAMESPACE:-istio-system}
DB_HOST=${DB_HOST:-model-registry-db}
DB_SANS=${DB_SANS:-}
DB_CREDENTIAL=model-registry-db-credential

kube() { "${KUBECTL}" "$@"; }

if [[ -z "${NAMESPACE:-}" ]]; then
  NAMESPACE=$( (kube config view --minify -o 'jsonpath={..namespace}' 2>/dev/null) || true)
  NAMESPACE=${NAMESPACE:-default}
fi

clean() {
  if [[ "${APPLY}" == 1 ]]; then
    kube delete secret -n "${INGRESS_NAMESPACE}" --ignore-not-found \
      "${REGISTRY_NAME}-rest-credential" "${REGISTRY_NAME}-grpc-credential"
    kube delete secret -n "${NAMESPACE}" --ignore-not-found "${DB_CREDENTIAL}"
    kube delete configmap -n "${NAMESPACE}" --ignore-not-found "${DB_CREDENTIAL}"
  fi
  rm -rf "${CERTS_DIR}"
}

# issue NAME SUBJECT_CN SAN_LIST: a key and a certificate signed by the CA.
issue() {
  local name=$1 cn=$2 sans=$3
  openssl req -new -newkey rsa:2048 -nodes -keyout "${CERTS_DIR}/${name}.key" \
    -subj "/O=model-registry/CN=${cn}" -out "${CERTS_DIR}/${name}.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n' \
    "${sans}" > "${CERTS_DIR}/${name}.ext"
  openssl x509 -req -days 365 -sha256 -in "${CERTS_DIR}/${name}.csr" -CA "${CERTS_DIR}/ca.crt" \
    -CAkey "${CERTS_DIR}/ca.key" -CAcreateserial -extfile "${CERTS_DIR}/${name}.ext" \
    -out "${CERTS_DIR}/${name}.crt" 2>/dev/null
  chmod 600 "${CERTS_DIR}/${name}.key"
  rm -f "${CERTS_DIR}/${name}.csr" "${CERTS_DIR}/${name}.ext"
}

apply_stdin() { kube apply -f - >/dev/null; }

generate() {
  if [[ -z "${DOMAIN:-}" ]]; then
    DOMAIN=$( (kube get ingresses.config.openshift.io cluster -o 'jsonpath={.spec.appsDomain}' 2>/dev/null) || true)
    [[ -n "${DOMAIN}" ]] || DOMAIN=$( (kube get ingresses.config.openshift.io cluster -o 'jsonpath={.spec.domain}' 2>/dev/null) || true)
    DOMAIN=${DOMAIN:-apps.example.com}
  fi
  mkdir -p "${CERTS_DIR}"
  openssl req -x509 -new -newkey rsa:2048 -nodes -days 365 -sha256 -keyout "${CERTS_DIR}/ca.key" \
    -subj "/O=model-registry/CN=model-registry test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "${CERTS_DIR}/ca.crt" 2>/dev/null
  chmod 600 "${CERTS_DIR}/ca.key"
  issue "${REGISTRY_NAME}-rest" "${REGISTRY_NAME}-rest.${DOMAIN}" "DNS:${REGISTRY_NAME}-rest.${DOMAIN}"
  issue "${REGISTRY_NAME}-grpc" "${REGISTRY_NAME}-grpc.${DOMAIN}" "DNS:${REGISTRY_NAME}-grpc.${DOMAIN}"
  local db_sans="DNS:${DB_HOST},DNS:${DB_HOST}.${NAMESPACE},DNS:${DB_HOST}.${NAMESPACE}.svc"
  db_sans+=",DNS:${DB_HOST}.${NAMESPACE}.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
  [[ -z "${DB_SANS}" ]] || db_sans+=",${DB_SANS}"
  issue "${DB_HOST}" "${DB_HOST}" "${db_sans}"
  echo "certificates written to ${CERTS_DIR}/ (domain ${DOMAIN})"
  [[ "${APPLY}" == 1 ]] || return 0

  kube create namespace "${INGRESS_NAMESPACE}" --dry-run=client -o yaml | apply_stdin
  for server in rest grpc; do
    kube create secret tls -n "${INGRESS_NAMESPACE}" "${REGISTRY_NAME}-${server}-credential" \
      --cert="${CERTS_DIR}/${REGISTRY_NAME}-${server}.crt" --key="${CERTS_DIR}/${REGISTRY_NAME}-${server}.key" \
      --dry-run=client -o yaml | apply_stdin
  done
  kube create secret generic -n "${NAMESPACE}" "${DB_CREDENTIAL}" \
    --from-file=tls.crt="${CERTS_DIR}/${DB_HOST}.crt" --from-file=tls.key="${CERTS_DIR}/${DB_HOST}.key" \
    --from-file=ca.crt="${CERTS_DIR}/ca.crt" --dry-run=client -o yaml | apply_stdin
  kube create configmap -n "${NAMESPACE}" "${DB_CREDENTIAL}" --from-file=ca.crt="${CERTS_DIR}/ca.crt" \
    --dry-run=client -o yaml | apply_stdin
  echo "Secrets ${REGISTRY_NAME}-rest-credential, ${REGISTRY_NAME}-grpc-credential in ${INGRESS_NAMESPACE};" \
    "Secret and ConfigMap ${DB_CREDENTIAL} in ${NAMESPACE}"
}

case "${ACTION}" in
  generate) generate ;;
  clean) clean ;;
  *) echo "usage: $0 [generate|clean]" >&2; exit 2 ;;
esac
