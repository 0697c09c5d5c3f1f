"""Spec combinations shared by the render tests (unit) and the schema dry-run tests (integration)."""

from __future__ import annotations

from typing import Any

SECRET = {"name": "db-credentials", "key": "password"}

DATABASES: dict[str, dict[str, Any]] = {
    "postgres": {
        "postgres": {"host": "pg.example", "database": "registry", "username": "mr", "passwordSecret": SECRET}
    },
    "postgres-host-address": {
        "postgres": {"host": "ignored", "hostAddress": "10.1.2.3", "port": 6543, "database": "r", "username": "u"}
    },
    "postgres-tls": {
        "postgres": {
            "host": "pg.example",
            "database": "registry",
            "username": "mr",
            "passwordSecret": SECRET,
            "sslMode": "verify-full",
            "sslCertificateSecret": {"name": "pg-client", "key": "tls.crt"},
            "sslKeySecret": {"name": "pg-client", "key": "tls.key"},
            "sslPasswordSecret": {"name": "pg-client", "key": "keypass"},
            "sslRootCertificateConfigMap": {"name": "pg-ca", "key": "ca.crt"},
        }
    },
    "postgres-root-secret": {
        "postgres": {
            "host": "pg.example",
            "database": "registry",
            "username": "mr",
            "sslMode": "verify-ca",
            "sslRootCertificateSecret": {"name": "pg-ca-secret", "key": "ca.crt"},
        }
    },
    "postgres-generated": {"postgres": {"generateDeployment": True}},
    "postgres-generated-custom": {
        "postgres": {"generateDeployment": True, "database": "mydb", "username": "me", "image": "example/pg:16"}
    },
    "mysql": {
        "mysql": {"host": "mysql.example", "database": "model_registry", "username": "mr", "passwordSecret": SECRET}
    },
    "mysql-tls": {
        "mysql": {
            "host": "mysql.example",
            "database": "model_registry",
            "username": "mr",
            "passwordSecret": SECRET,
            "sslCertificateSecret": {"name": "my-client", "key": "tls.crt"},
            "sslKeySecret": {"name": "my-client", "key": "tls.key"},
            "sslRootCertificateSecret": {"name": "my-ca", "key": "ca.crt"},
            "sslRootCertificatesConfigMapName": "my-ca-bundle",
            "sslCipher": "TLS_AES_256_GCM_SHA384",
            "verifyServerCert": True,
        }
    },
    "mysql-no-password": {"mysql": {"host": "mysql.example", "database": "db", "username": "anon"}},
}

RESTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "custom": {
        "port": 9443,
        "image": "example.com/model-registry:v1",
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": 2, "memory": "2Gi"}},
    },
}

ANNOTATIONS: dict[str, dict[str, str]] = {
    "plain": {},
    "display": {"openshift.io/display-name": "My registry", "openshift.io/description": "For tests"},
}


def spec_for(database: str, rest: str) -> dict[str, Any]:
    return {"rest": dict(RESTS[rest]), "grpc": {}, **DATABASES[database]}
