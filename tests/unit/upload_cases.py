"""ModelUploadJob specs for every source, destination and intent (shared by unit and integration tests)."""

from __future__ import annotations

from typing import Any

from model_registry_operator.render.modeluploadjob import RegistryEndpoint

SOURCES: dict[str, dict[str, Any]] = {
    "s3": {
        "s3": {
            "bucket": "models",
            "key": "llm/v1",
            "region": "eu-west-1",
            "endpoint": "http://s3.local:9000",
            "credentialsSecret": "s3-src",
        }
    },
    "uri": {"uri": {"uri": "https://example.com/model.tar.gz", "credentialsSecret": "uri-src"}},
    "oci": {"oci": {"uri": "quay.io/org/model:v1", "enableTLSVerify": False, "credentialsSecret": "oci-src"}},
    "pvc": {"pvc": {"claimName": "models", "path": "llm/v1"}},
}
DESTINATIONS: dict[str, dict[str, Any]] = {
    "oci": {"oci": {"uri": "registry.local:5000/org/llm:v1", "baseImage": "busybox:1", "credentialsSecret": "push"}},
    "s3": {"s3": {"bucket": "out", "key": "llm/v1", "credentialsSecret": "s3-dst"}},
}
INTENTS: dict[str, dict[str, Any]] = {
    "create_model": {
        "registeredModel": {"name": "llm", "owner": "team-a", "customProperties": {"size": 7, "ok": True}},
        "modelVersion": {"name": "v1", "author": "alice", "customProperties": {"label": "x"}},
        "modelArtifact": {"modelFormatName": "onnx", "modelFormatVersion": "1"},
    },
    "create_version": {"registeredModel": {"id": "4"}, "modelVersion": {"name": "v2"}},
    "update_artifact": {"modelArtifact": {"id": "12"}, "modelVersion": {"id": "11"}},
}
ENDPOINT = RegistryEndpoint("https://mr.example.com", 443, True)


def spec_raw(source: str, destination: str, intent: str, **extra: Any) -> dict[str, Any]:
    raw = {
        "registry": {
            "address": "https://mr.example.com",
            "tokenSecret": {"name": "mr-token", "key": "token"},
            "caConfigMap": {"name": "mr-ca", "key": "ca.crt"},
        },
        "intent": intent,
        "source": SOURCES[source],
        "destination": DESTINATIONS[destination],
        "model": INTENTS[intent],
    }
    raw.update(extra)
    return raw
