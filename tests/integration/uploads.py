"""What the ModelUploadJob end-to-end tests share: the upload image, the bucket, the credential
Secrets and the ModelUploadJob manifests (the S3 and OCI back-end fixtures are in conftest.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml

from model_registry_operator.kube import lookup
from tests.backends.s3 import ADMIN_KEY, ADMIN_SECRET

from .kube import Cluster, wait_for

UPLOAD_IMAGE = "localhost/sim-exec/model-registry-upload:test"
"""An image with ``sim-exec``: the simulated node runs its entrypoint, the upload program of the
upload venv (tests/backends/upload_program.py), as a local process."""
BUCKET = "models"
MUJ = lookup("modelregistry.opendatahub.io/v1alpha1", "ModelUploadJob")


def secret_docs(namespace: str, s3_endpoint: str, oci_host: str) -> list[dict[str, Any]]:
    """The ``s3-credentials`` and ``oci-credentials`` Secrets the uploads name."""
    auth = base64.b64encode(b"ci-user:unused-password").decode()
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3-credentials", "namespace": namespace},
            "stringData": {
                "AWS_ACCESS_KEY_ID": ADMIN_KEY,
                "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
                "AWS_S3_ENDPOINT": s3_endpoint,
                "AWS_S3_BUCKET": BUCKET,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "oci-credentials", "namespace": namespace},
            "stringData": {".dockerconfigjson": json.dumps({"auths": {oci_host: {"auth": auth}}})},
        },
    ]


def secrets(namespace: str, s3_endpoint: str, oci_host: str) -> str:
    return yaml.safe_dump_all(secret_docs(namespace, s3_endpoint, oci_host))


def upload_doc(name: str, spec: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    metadata = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {
        "apiVersion": "modelregistry.opendatahub.io/v1alpha1",
        "kind": "ModelUploadJob",
        "metadata": metadata,
        "spec": spec,
    }


def upload(name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(upload_doc(name, spec))


def s3_to_oci_spec(
    registry: dict[str, Any], oci_host: str, base_image: str, key: str, repo: str, registered_model: dict[str, Any]
) -> dict[str, Any]:
    """``create_model`` from ``s3://<BUCKET>/<key>`` to ``<oci_host>/<repo>:v1``, run by :data:`UPLOAD_IMAGE`."""
    return {
        "registry": registry,
        "intent": "create_model",
        "source": {"s3": {"key": key, "credentialsSecret": "s3-credentials"}},
        "destination": {
            "oci": {
                "uri": f"{oci_host}/{repo}:v1",
                "baseImage": base_image,
                "enableTLSVerify": False,
                "credentialsSecret": "oci-credentials",
            }
        },
        "model": {
            "registeredModel": registered_model,
            "modelVersion": {"name": "v1", "author": "alice"},
            "modelArtifact": {"modelFormatName": "onnx", "modelFormatVersion": "1"},
        },
        "job": {"image": UPLOAD_IMAGE, "backoffLimit": 0},
    }


def upload_status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(((cluster.get(MUJ, namespace, name) or {}).get("status")) or {})


def wait_succeeded(cluster: Cluster, namespace: str, *names: str, timeout: float = 240) -> dict[str, dict[str, Any]]:
    """The status of every named ModelUploadJob once all have Succeeded (fails at the first Failed)."""

    def check() -> dict[str, dict[str, Any]] | None:
        statuses = {name: upload_status(cluster, namespace, name) for name in names}
        for name, status in statuses.items():
            if status.get("phase") == "Failed":
                raise AssertionError(f"{name} failed: {json.dumps(status, indent=1)}")
        return statuses if all(s.get("phase") == "Succeeded" for s in statuses.values()) else None

    return wait_for(check, timeout, interval=0.5, what=f"{', '.join(names)} Succeeded")
