#!/usr/bin/env bash
# Install the database servers the database tests need (PostgreSQL 15, MariaDB)
# on Debian 12. Idempotent: exits quickly when everything is already present.
# Never starts or enables a system service: the tests run their own throwaway
# servers on free loopback ports.
set -euo pipefail

PACKAGES=(postgresql mariadb-server mariadb-client openssl ca-certificates)

# Binaries that prove a package is usable, checked before touching apt.
have_all() {
  [[ -x /usr/lib/postgresql/15/bin/initdb ]] || return 1
  [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]] || return 1
  [[ -x /usr/sbin/mariadbd ]] || command -v mariadbd >/dev/null 2>&1 || return 1
  command -v mariadb-install-db >/dev/null 2>&1 || return 1
  command -v mariadb >/dev/null 2>&1 || return 1
  command -v openssl >/dev/null 2>&1 || return 1
  getent passwd postgres >/dev/null || return 1
  getent passwd mysql >/dev/null || return 1
}

if have_all; then
  echo "install-db: PostgreSQL, MariaDB and openssl already installed"
  exit 0
fi

if [[ ${EUID} -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi

# Keep package maintainer scripts from starting services. A policy-rc.d that
# already exists is left alone; ours is removed again on exit.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e ${POLICY} ]]; then
  printf '#!/bin/sh\nexit 101\n' | ${SUDO} tee "${POLICY}" >/dev/null
  ${SUDO} chmod 755 "${POLICY}"
  created_policy=1
fi
cleanup() {
  if [[ ${created_policy} -eq 1 ]]; then
    ${SUDO} rm -f "${POLICY}"
  fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
${SUDO} apt-get update -qq
${SUDO} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  --no-install-recommends --no-upgrade "${PACKAGES[@]}"

if ! have_all; then
  echo "install-db: installation finished but a required binary is still missing" >&2
  exit 1
fi
echo "install-db: done"
