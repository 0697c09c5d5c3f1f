"""`make certificates` (hack/certificates.sh): files, Secrets and ConfigMap on the local control
plane, and database certificates that local PostgreSQL (verify-full) and MariaDB
(require_secure_transport, verified server certificate) accept."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from model_registry_operator.database.probe import MySQLTarget, PostgresTarget, probe_mysql, probe_postgres
from model_registry_operator.kube import lookup
from tests.backends.databases import LOOPBACK, MariaDBServer, PostgresServer, ServerTLS

from .conftest import ROOT, OperatorProcess
from .kube import Cluster

pytestmark = pytest.mark.integration

SECRET = lookup("v1", "Secret")
CONFIG_MAP = lookup("v1", "ConfigMap")


def run(cluster: Cluster, namespace: str, certs: Path, action: str) -> None:
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "NAMESPACE": namespace,
        "INGRESS_NAMESPACE": f"{namespace}-ingress",
        "CERTS_DIR": str(certs),
        "DOMAIN": "apps.example.test",
        "DB_SANS": f"IP:{LOOPBACK}",
    }
    subprocess.run(
        ["make", "-s", f"certificates{'/clean' if action == 'clean' else ''}"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )


def test_certificates_create_and_clean(
    cluster: Cluster, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    ingress = f"{namespace}-ingress"
    try:
        run(cluster, namespace, certs, "generate")
        for name in ("ca", "model-registry-db", "modelregistry-sample-rest", "modelregistry-sample-grpc"):
            assert (certs / f"{name}.crt").is_file()
            assert (certs / f"{name}.key").stat().st_mode & 0o077 == 0
        ca = (certs / "ca.crt").read_text()
        for server in ("rest", "grpc"):
            secret = cluster.get(SECRET, ingress, f"modelregistry-sample-{server}-credential")
            assert secret is not None
            assert secret["type"] == "kubernetes.io/tls"
        db = cluster.get(SECRET, namespace, "model-registry-db-credential")
        assert db is not None
        assert set(db["data"]) == {"tls.crt", "tls.key", "ca.crt"}
        assert base64.b64decode(db["data"]["ca.crt"]).decode() == ca
        config_map = cluster.get(CONFIG_MAP, namespace, "model-registry-db-credential")
        assert config_map is not None
        assert config_map["data"]["ca.crt"] == ca
        rest = subprocess.run(
            [
                "openssl",
                "x509",
                "-noout",
                "-ext",
                "subjectAltName",
                "-in",
                str(certs / "modelregistry-sample-rest.crt"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "DNS:modelregistry-sample-rest.apps.example.test" in rest.stdout

        tls = ServerTLS(
            cert_pem=(certs / "model-registry-db.crt").read_text(),
            key_pem=(certs / "model-registry-db.key").read_text(),
        )
        with PostgresServer(tls=tls) as pg:
            result = probe_postgres(
                PostgresTarget(
                    host=pg.host,
                    port=pg.port,
                    database=pg.database,
                    username=pg.user,
                    password=pg.password,
                    sslmode="verify-full",
                    sslrootcert=ca,
                )
            )
            assert result.ok, result
        with MariaDBServer(tls=tls) as my:
            result = probe_mysql(
                MySQLTarget(
                    host=my.host,
                    port=my.port,
                    database=my.database,
                    username=my.user,
                    password=my.password,
                    ssl_ca=ca,
                    verify_server_cert=True,
                )
            )
            assert result.ok, result

        run(cluster, namespace, certs, "clean")
        assert not certs.exists()
        assert cluster.get(SECRET, namespace, "model-registry-db-credential") is None
        assert cluster.get(CONFIG_MAP, namespace, "model-registry-db-credential") is None
        assert cluster.get(SECRET, ingress, "modelregistry-sample-rest-credential") is None
    finally:
        cluster.kubectl("delete", "namespace", ingress, "--wait=false", "--ignore-not-found", check=False)
