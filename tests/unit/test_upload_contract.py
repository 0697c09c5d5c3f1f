"""The upload Job's variables are the upload program's parameters, named by the contract."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from model_registry_operator.api.modeluploadjob import ModelUploadJobSpec
from model_registry_operator.render.modeluploadjob import (
    ALLOW,
    MESH,
    TOKEN_PATH_ENV,
    RegistryEndpoint,
    UploadJobRef,
    render_model_upload_job,
)
from model_registry_upload_contract import (
    JOB_NAME_ENV,
    JOB_NAMESPACE_ENV,
    TERMINATION_PATH_ENV,
    Parameter,
    env_name,
    parameter,
    side_parameter,
)

from .upload_cases import DESTINATIONS, ENDPOINT, INTENTS, SOURCES, spec_raw

REF = UploadJobRef("up", "ns1", "uid-1")
PARAMETER_ENV = {env_name(p): p for p in Parameter}
NOT_PARAMETERS = {
    JOB_NAME_ENV,  # where the program reports progress
    JOB_NAMESPACE_ENV,
    TERMINATION_PATH_ENV,  # where it writes its outcome (the kubelet's default when unset)
    "TMPDIR",  # the scratch of libraries (the root filesystem is read-only)
    TOKEN_PATH_ENV,  # the token file, read through MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR
}
# Every way the render sets the registry's variables: a token and a CA (ConfigMap or Secret), an
# author, an Istio registry (the token over the mesh), a plain address with credentials the user
# allowed a token for (the URL through the Job's Secret). None: the matrix' own registry.
TOKEN = {"name": "mr-token", "key": "token"}
REGISTRIES: dict[str, tuple[dict[str, Any] | None, RegistryEndpoint]] = {
    "token-ca-configmap": (None, ENDPOINT),
    "ca-secret-author": (
        {"address": "https://mr.example.com", "caSecret": {"name": "ca", "key": "ca.crt"}, "author": "alice"},
        ENDPOINT,
    ),
    "istio": (
        {"name": "mr", "tokenSecret": TOKEN},
        RegistryEndpoint("http://mr.ns1.svc.cluster.local", 8080, True, MESH),
    ),
    "plain-allowed": (
        {"address": "http://u:p@mr.example.com", "tokenSecret": TOKEN, "allowTokenOverHTTP": True},
        RegistryEndpoint("http://u:p@mr.example.com", 80, False, ALLOW),
    ),
}


def rendered_env(raw: dict[str, Any], endpoint: RegistryEndpoint) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    spec = ModelUploadJobSpec.model_validate(raw)
    objects = render_model_upload_job(REF, spec, raw, endpoint, "quay.io/x/upload:1")
    job = objects[-1]
    assert job["kind"] == "Job"
    secrets = [o for o in objects if o["kind"] == "Secret"]
    return job["spec"]["template"]["spec"]["containers"][0]["env"], (secrets[0]["stringData"] if secrets else {})


@pytest.mark.parametrize("registry", REGISTRIES)
@pytest.mark.parametrize(("source", "destination", "intent"), list(itertools.product(SOURCES, DESTINATIONS, INTENTS)))
def test_every_variable_of_the_job_is_a_parameter_of_the_contract(
    source: str, destination: str, intent: str, registry: str
) -> None:
    registry_spec, endpoint = REGISTRIES[registry]
    raw = spec_raw(source, destination, intent)
    if registry_spec is not None:
        raw["registry"] = registry_spec
    env, secret_data = rendered_env(raw, endpoint)
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), names
    unknown = set(names) - set(PARAMETER_ENV) - NOT_PARAMETERS
    assert not unknown, f"variables that are no parameter of the upload program: {sorted(unknown)}"
    # the Secret's keys are the variables that reference them
    for e in env:
        if "valueFrom" in e:
            assert e["valueFrom"]["secretKeyRef"]["key"] == e["name"] in PARAMETER_ENV
    assert set(secret_data) <= set(PARAMETER_ENV)
    values = {e["name"]: e.get("value") for e in env}
    assert values[env_name(Parameter.SOURCE_TYPE)] == source
    assert values[env_name(Parameter.DESTINATION_TYPE)] == destination
    if TOKEN_PATH_ENV in values:
        assert values[env_name(Parameter.REGISTRY_USER_TOKEN_ENVVAR)] == TOKEN_PATH_ENV
    if registry == "istio":
        assert values[env_name(Parameter.REGISTRY_TOKEN_OVER_HTTP)] == MESH
    if registry == "plain-allowed":
        assert env_name(Parameter.REGISTRY_SERVER_ADDRESS) in secret_data


def test_a_name_that_is_no_parameter_fails_where_it_is_written() -> None:
    assert env_name(Parameter.SOURCE_AWS_BUCKET) == "MODEL_SYNC_SOURCE_AWS_BUCKET"
    assert env_name("destination-oci-uri") == "MODEL_SYNC_DESTINATION_OCI_URI"
    assert side_parameter("destination", "aws_endpoint") is Parameter.DESTINATION_AWS_ENDPOINT
    assert parameter("registry-port") is Parameter.REGISTRY_PORT
    with pytest.raises(ValueError, match="'source_aws_bukcet' is not a parameter of the upload program"):
        side_parameter("source", "aws_bukcet")
    with pytest.raises(ValueError, match="'target' is not a side"):
        side_parameter("target", "aws_bucket")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'registry_tls' is not a parameter"):
        env_name("registry_tls")
