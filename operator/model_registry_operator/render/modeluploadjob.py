"""Render the objects of a ModelUploadJob: its metadata ConfigMap and its Job. Pure.

The Job runs the upload image's entrypoint (``model-registry-upload``), configured only through ``MODEL_SYNC_*``
environment variables (each a parameter of the contract, :class:`Parameter`; its
variable name is :func:`env_name`'s) and mounted files: credentials Secrets are mounted at the paths given in
the ``*_CREDENTIALS_PATH`` variables (the upload program reads the files), the registry token
and CA as files, the metadata ConfigMap as a directory. A URL of the spec that carries
credentials (``https://user:password@host``) goes into the Secret ``<name>-upload-urls`` and
reaches the container through ``secretKeyRef``, never as a plain env value; every other env value
has its ``$`` doubled so that the kubelet expands nothing in it.

Hardening: a ServiceAccount of its own per upload (unless ``job.serviceAccountName`` names one)
holding only the right to report progress, Secret volumes at 0400 (0440 through ``fsGroup``),
a read-only root filesystem with size-limited ``emptyDir`` volumes for scratch and ``TMPDIR``, and
default requests and limits whatever ``resources`` leaves out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from model_registry_upload_contract import (
    DEFAULT_TERMINATION_PATH,
    EXIT_CONFIG,
    JOB_NAME_ENV,
    JOB_NAMESPACE_ENV,
    Parameter,
    Side,
    env_name,
    side_parameter,
)

from ..api.modeluploadjob import ModelUploadJobSpec, RegistryTarget, S3Location
from ..names import (
    COMPONENT_LABEL,
    GROUP,
    INSTANCE_LABEL,
    ISTIO_INJECT_LABEL,
    ISTIO_NATIVE_SIDECAR_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_UPLOAD_JOB_KIND,
    MODEL_UPLOAD_JOB_VERSION,
    NAME_LABEL,
    PART_OF,
    PART_OF_LABEL,
    SPEC_HASH_ANNOTATION,
    UPLOAD_COMPONENT,
    UPLOAD_JOB_LABEL,
)
from ..names import UPLOAD_JOB_NAME_ANNOTATION as NAME_ANNOTATION
from .engine import render_template
from .escaping import no_expansion

Obj = dict[str, Any]

CONTAINER_NAME = "upload"

# Where things are mounted in the upload container.
MOUNT_ROOT = "/var/run/model-upload"
METADATA_PATH = f"{MOUNT_ROOT}/metadata"
SCRATCH_PATH = f"{MOUNT_ROOT}/scratch"
TOKEN_DIR = f"{MOUNT_ROOT}/registry-token"
CA_DIR = f"{MOUNT_ROOT}/registry-ca"
TMP_PATH = f"{MOUNT_ROOT}/tmp"  # noqa: S108 - an emptyDir of the Pod, not the host's /tmp
"""An emptyDir, the program's TMPDIR (the root filesystem is read-only)."""
TOKEN_PATH_ENV = "MODEL_REGISTRY_TOKEN_PATH"  # noqa: S105 - a variable name
REFUSE, MESH, ALLOW = "refuse", "mesh", "allow"
"""MODEL_SYNC_REGISTRY_TOKEN_OVER_HTTP values."""
DOCKERCONFIG = ".dockerconfigjson"

DEFAULT_REST_PORT = 8080
DEFAULT_PROXY_PORT = 8443
DEFAULT_SECURE_PORT = 443

DEFAULT_RESOURCES: Obj = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
DEFAULT_SCRATCH_SIZE = "20Gi"
"""sizeLimit of the scratch emptyDir unless ``job.scratchSize`` says otherwise."""
TMP_SIZE = "64Mi"
SECRET_MODE = 0o400
"""Secret files are readable by their owner only; with ``fsGroup`` the kubelet makes them 0440
owned by that group, which the container's process is a member of."""
FS_GROUP = 65532
"""The group of mounted volumes on clusters that do not assign one (OpenShift's SCCs do)."""
# ISTIO_NATIVE_SIDECAR_ANNOTATION: Istio runs its proxy as a native sidecar (an init container
# that keeps running), so the Job completes when the upload container exits.
# Configuration errors of the upload program (exit code 2) never succeed on a retry.
CONFIG_ERROR_EXIT_CODE = EXIT_CONFIG


@dataclass(frozen=True)
class UploadJobRef:
    """Identity of the ModelUploadJob being rendered."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class RegistryEndpoint:
    """Where the Job reaches the model registry (resolved by the reconcile)."""

    address: str
    port: int
    is_secure: bool
    token_over_http: str = REFUSE
    """``refuse`` | ``mesh`` (the Pod's Istio sidecar encrypts the hop) | ``allow`` (the user
    opted out with ``registry.allowTokenOverHTTP``): MODEL_SYNC_REGISTRY_TOKEN_OVER_HTTP."""

    @property
    def mesh(self) -> bool:
        return self.token_over_http == MESH


def registry_endpoint(
    name: str, namespace: str, registry_spec: Obj, *, allow_token_over_http: bool = False
) -> RegistryEndpoint:
    """How a Job in the registry's namespace reaches a ModelRegistry through its Service.

    Behind kube-rbac-proxy / oauth-proxy: HTTPS on the proxy port with a token (the Job's
    service account token unless ``tokenSecret`` is given; give ``caConfigMap`` for the
    serving certificate's CA). With Istio: the REST port through the Pod's own Istio sidecar
    (injected into the upload Pod), which carries the token over the mesh's mutual TLS; the
    program is told so (``mesh``) and sends no token over plain HTTP otherwise. Without a
    security mode: plain HTTP and no token.
    """
    host = f"{name}.{namespace}.svc.cluster.local"
    for mode in ("kubeRBACProxy", "oauthProxy"):
        proxy = registry_spec.get(mode)
        if isinstance(proxy, dict):
            return RegistryEndpoint(f"https://{host}", int(proxy.get("port") or DEFAULT_PROXY_PORT), True)
    port = int((registry_spec.get("rest") or {}).get("port") or DEFAULT_REST_PORT)
    if registry_spec.get("istio") is not None:
        return RegistryEndpoint(f"http://{host}", port, True, MESH)
    return RegistryEndpoint(f"http://{host}", port, False, ALLOW if allow_token_over_http else REFUSE)


def token_problem(target: RegistryTarget, endpoint: RegistryEndpoint) -> str | None:
    """Why the ``tokenSecret`` of ``target`` must not go to ``endpoint`` (plain HTTP, no mesh,
    no opt-out), or None."""
    if target.token_secret is None or endpoint.is_secure or endpoint.token_over_http != REFUSE:
        return None
    return (
        f"spec.registry.tokenSecret: {endpoint.address} serves plain HTTP (the registry has no kubeRBACProxy, "
        "oauthProxy or istio), so the token would travel unencrypted; secure the registry, remove tokenSecret, "
        "or set spec.registry.allowTokenOverHTTP: true"
    )


def address_endpoint(target: RegistryTarget) -> RegistryEndpoint:
    """An explicitly given registry address: secure (TLS and a token) for ``https://`` unless
    ``isSecure: false``; a plain ``http://`` address gets a token only with
    ``allowTokenOverHTTP`` (the CRD rejects asking for one otherwise)."""
    assert target.address is not None
    https = target.address.lower().startswith("https://")
    secure = https if target.is_secure is None else target.is_secure
    over_http = ALLOW if target.allow_token_over_http else REFUSE
    return RegistryEndpoint(target.address, target.port or DEFAULT_SECURE_PORT, secure, over_http)


def has_userinfo(url: str | None) -> bool:
    """Whether ``url`` carries credentials (``scheme://user[:password]@host``)."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return "@" in url
    return "@" in parts.netloc


def without_userinfo(url: str) -> str:
    """``url`` with its ``user:password@`` masked, for the status."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("://", 1)[0] + "://***"
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def child_name(name: str, suffix: str) -> str:
    """``<name>-<suffix>``, shortened with a hash when longer than a label value allows (63)."""
    full = f"{name}-{suffix}"
    if len(full) <= 63:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: 63 - len(suffix) - 10]}-{digest}-{suffix}"


def job_name(name: str) -> str:
    return child_name(name, "upload")


def config_map_name(name: str) -> str:
    return child_name(name, "metadata")


def progress_rbac_name(name: str) -> str:
    """Role and RoleBinding letting the upload Pod write this upload's ``status.progress``."""
    return child_name(name, "upload-progress")


def service_account_name(name: str) -> str:
    """The ServiceAccount the operator creates for an upload whose spec names none."""
    return child_name(name, "upload")


def url_secret_name(name: str) -> str:
    """The Secret holding the spec's URLs that carry credentials."""
    return child_name(name, "upload-urls")


def labels(name: str) -> dict[str, str]:
    return {
        NAME_LABEL: UPLOAD_COMPONENT,
        INSTANCE_LABEL: name[:63],
        COMPONENT_LABEL: UPLOAD_COMPONENT,
        PART_OF_LABEL: PART_OF,
        MANAGED_BY_LABEL: MANAGED_BY,
        UPLOAD_JOB_LABEL: name[:63],
    }


def owner_references(job: UploadJobRef) -> list[Obj]:
    return [
        {
            "apiVersion": f"{GROUP}/{MODEL_UPLOAD_JOB_VERSION}",
            "kind": MODEL_UPLOAD_JOB_KIND,
            "name": job.name,
            "uid": job.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def spec_hash(raw_spec: Obj) -> str:
    """Digest of the spec as stored: a changed spec gives another hash."""
    text = json.dumps(raw_spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------- metadata


def _properties(value: dict[str, Any] | None) -> str | None:
    return json.dumps(value, sort_keys=True) if value else None


def metadata_data(spec: ModelUploadJobSpec, job: UploadJobRef) -> dict[str, str]:
    """ConfigMap keys the upload program reads (as the upstream async-upload job)."""
    model = spec.model
    rm = model.registered_model if model else None
    mv = model.model_version if model else None
    ma = model.model_artifact if model else None
    values: dict[str, str | None] = {}
    if rm is not None:
        values.update(
            {
                "RegisteredModel.id": rm.id,
                "RegisteredModel.name": rm.name,
                "RegisteredModel.description": rm.description,
                "RegisteredModel.owner": rm.owner,
                "RegisteredModel.custom_properties": _properties(rm.custom_properties),
            }
        )
    if mv is not None:
        values.update(
            {
                "ModelVersion.name": mv.name,
                "ModelVersion.description": mv.description,
                "ModelVersion.author": mv.author,
                "ModelVersion.custom_properties": _properties(mv.custom_properties),
            }
        )
    if ma is not None:
        values.update(
            {
                "ModelArtifact.name": ma.name,
                "ModelArtifact.description": ma.description,
                "ModelArtifact.model_format_name": ma.model_format_name,
                "ModelArtifact.model_format_version": ma.model_format_version,
                "ModelArtifact.storage_key": ma.storage_key,
                "ModelArtifact.storage_path": ma.storage_path,
                "ModelArtifact.service_account_name": ma.service_account_name,
                "ModelArtifact.custom_properties": _properties(ma.custom_properties),
            }
        )
    # Links the artifact back to this upload (the upstream UI reads these).
    values.update(
        {
            "ModelArtifact.model_source_kind": "transfer_job",
            "ModelArtifact.model_source_class": "async-upload",
            "ModelArtifact.model_source_group": job.namespace,
            "ModelArtifact.model_source_name": job.name,
        }
    )
    return {k: v for k, v in values.items() if v is not None}


# ---------------------------------------------------------------------------------- the Job


class _Wiring:
    """Accumulates env, volumes and mounts of the upload container."""

    def __init__(self, url_secret: str) -> None:
        self.env: list[Obj] = []
        self.volumes: list[Obj] = []
        self.mounts: list[Obj] = []
        self.url_secret = url_secret
        self.secret_urls: dict[str, str] = {}
        """env name -> URL with credentials: the Secret's data, referenced by the env."""

    def set(self, parameter: Parameter, value: str | int | bool | None) -> None:
        """A parameter of the upload program (its ``MODEL_SYNC_*`` variable), unless ``None``."""
        self.variable(env_name(parameter), value)

    def variable(self, name: str, value: str | int | bool | None) -> None:
        """A variable that is no parameter (``TMPDIR``, the progress report's, the token file's)."""
        if value is None:
            return
        if isinstance(value, bool):
            value = "true" if value else "false"
        self.env.append({"name": name, "value": no_expansion(str(value))})

    def url(self, parameter: Parameter, value: str | None) -> None:
        """A URL: plain env, or through the Secret when it carries credentials."""
        if value is None:
            return
        if not has_userinfo(value):
            self.set(parameter, value)
            return
        name = env_name(parameter)
        self.secret_urls[name] = value
        self.env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": self.url_secret, "key": name}}})

    def secret_dir(self, volume: str, secret: str, path: str, items: list[Obj] | None = None) -> None:
        source: Obj = {"secretName": secret, "defaultMode": SECRET_MODE}
        if items:
            source["items"] = items
        self.volumes.append({"name": volume, "secret": source})
        self.mounts.append({"name": volume, "mountPath": path, "readOnly": True})


def _s3(w: _Wiring, side: Side, s3: S3Location) -> None:
    path = f"{MOUNT_ROOT}/{side}-s3"
    w.set(side_parameter(side, "aws_bucket"), s3.bucket)
    w.set(side_parameter(side, "aws_key"), s3.key)
    w.set(side_parameter(side, "aws_region"), s3.region)
    w.url(side_parameter(side, "aws_endpoint"), s3.endpoint)
    w.secret_dir(f"{side}-s3-credentials", s3.credentials_secret, path)
    w.set(side_parameter(side, "s3_credentials_path"), path)


def _dockerconfig(w: _Wiring, side: Side, secret: str | None) -> None:
    if not secret:
        return
    path = f"{MOUNT_ROOT}/{side}-oci"
    w.secret_dir(f"{side}-oci-credentials", secret, path, [{"key": DOCKERCONFIG, "path": DOCKERCONFIG}])
    w.set(side_parameter(side, "oci_credentials_path"), f"{path}/{DOCKERCONFIG}")


def _source(w: _Wiring, spec: ModelUploadJobSpec) -> None:
    src = spec.source
    w.set(Parameter.SOURCE_TYPE, src.kind)
    if src.s3 is not None:
        _s3(w, "source", src.s3)
    elif src.uri is not None:
        w.url(Parameter.SOURCE_URI, src.uri.uri)
        if src.uri.credentials_secret:
            path = f"{MOUNT_ROOT}/source-uri"
            w.secret_dir("source-uri-credentials", src.uri.credentials_secret, path, [{"key": "URI", "path": "URI"}])
            w.set(Parameter.SOURCE_URI_CREDENTIALS_PATH, path)
    elif src.oci is not None:
        w.set(Parameter.SOURCE_OCI_URI, src.oci.uri)
        w.set(Parameter.SOURCE_OCI_REGISTRY, src.oci.registry)
        w.set(Parameter.SOURCE_OCI_ENABLE_TLS_VERIFY, src.oci.enable_tls_verify)
        _dockerconfig(w, "source", src.oci.credentials_secret)
    elif src.pvc is not None:
        path = f"{MOUNT_ROOT}/source-pvc"
        w.volumes.append({"name": "source-pvc", "persistentVolumeClaim": {"claimName": src.pvc.claim_name}})
        w.mounts.append({"name": "source-pvc", "mountPath": path, "readOnly": True})
        w.set(Parameter.SOURCE_PATH, f"{path}/{src.pvc.path}".rstrip("/"))


def _destination(w: _Wiring, spec: ModelUploadJobSpec) -> None:
    dst = spec.destination
    w.set(Parameter.DESTINATION_TYPE, dst.kind)
    if dst.oci is not None:
        w.set(Parameter.DESTINATION_OCI_URI, dst.oci.uri.removeprefix("oci://"))
        w.set(Parameter.DESTINATION_OCI_REGISTRY, dst.oci.registry)
        w.set(Parameter.DESTINATION_OCI_BASE_IMAGE, dst.oci.base_image)
        w.set(Parameter.DESTINATION_OCI_ENABLE_TLS_VERIFY, dst.oci.enable_tls_verify)
        _dockerconfig(w, "destination", dst.oci.credentials_secret)
    elif dst.s3 is not None:
        _s3(w, "destination", dst.s3)


def _registry(w: _Wiring, spec: ModelUploadJobSpec, endpoint: RegistryEndpoint) -> None:
    reg = spec.registry
    w.url(Parameter.REGISTRY_SERVER_ADDRESS, endpoint.address)
    w.set(Parameter.REGISTRY_PORT, endpoint.port)
    w.set(Parameter.REGISTRY_IS_SECURE, endpoint.is_secure)
    if endpoint.token_over_http != REFUSE:
        w.set(Parameter.REGISTRY_TOKEN_OVER_HTTP, endpoint.token_over_http)
    w.set(Parameter.REGISTRY_AUTHOR, reg.author)
    if reg.token_secret is not None:
        items = [{"key": reg.token_secret.key, "path": "token"}]
        w.secret_dir("registry-token", reg.token_secret.name, TOKEN_DIR, items)
        w.variable(TOKEN_PATH_ENV, f"{TOKEN_DIR}/token")
        w.set(Parameter.REGISTRY_USER_TOKEN_ENVVAR, TOKEN_PATH_ENV)
    ca = reg.ca_secret or reg.ca_config_map
    if ca is not None:
        items = [{"key": ca.key, "path": "ca.crt"}]
        if reg.ca_secret is not None:
            w.secret_dir("registry-ca", ca.name, CA_DIR, items)
        else:
            w.volumes.append({"name": "registry-ca", "configMap": {"name": ca.name, "items": items}})
            w.mounts.append({"name": "registry-ca", "mountPath": CA_DIR, "readOnly": True})
        w.set(Parameter.REGISTRY_CUSTOM_CA, f"{CA_DIR}/ca.crt")


def _model_ids(w: _Wiring, spec: ModelUploadJobSpec) -> None:
    w.set(Parameter.MODEL_UPLOAD_INTENT, spec.intent)
    model = spec.model
    if model is None:
        return
    w.set(Parameter.MODEL_ID, model.registered_model.id if model.registered_model else None)
    w.set(Parameter.MODEL_VERSION_ID, model.model_version.id if model.model_version else None)
    w.set(Parameter.MODEL_ARTIFACT_ID, model.model_artifact.id if model.model_artifact else None)


def container_wiring(job: UploadJobRef, spec: ModelUploadJobSpec, endpoint: RegistryEndpoint) -> _Wiring:
    """Env, volumes, mounts and the URLs for the Secret of the upload container."""
    w = _Wiring(url_secret_name(job.name))
    _source(w, spec)
    _destination(w, spec)
    _registry(w, spec, endpoint)
    _model_ids(w, spec)
    w.volumes.append({"name": "metadata", "configMap": {"name": config_map_name(job.name)}})
    w.mounts.append({"name": "metadata", "mountPath": METADATA_PATH, "readOnly": True})
    w.set(Parameter.METADATA_CONFIGMAP_PATH, METADATA_PATH)
    scratch_size = DEFAULT_SCRATCH_SIZE
    if spec.job is not None and spec.job.scratch_size is not None:
        scratch_size = str(spec.job.scratch_size)
    w.volumes.append({"name": "scratch", "emptyDir": {"sizeLimit": scratch_size}})
    w.mounts.append({"name": "scratch", "mountPath": SCRATCH_PATH})
    w.set(Parameter.STORAGE_PATH, SCRATCH_PATH)
    # The root filesystem is read-only: whatever a library writes to a temporary file goes here.
    w.volumes.append({"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}})
    w.mounts.append({"name": "tmp", "mountPath": TMP_PATH})
    w.variable("TMPDIR", TMP_PATH)
    # Where the upload program reports its progress (its status_report module).
    w.variable(JOB_NAME_ENV, job.name)
    w.variable(JOB_NAMESPACE_ENV, job.namespace)
    return w


def container_resources(spec: ModelUploadJobSpec) -> Obj:
    """The spec's requests and limits over the defaults: ``resources: {}`` (or one side left out)
    keeps the default requests and memory limit; a memory request above the default limit with
    no limit given raises the limit to the request."""
    options = spec.job.resources if spec.job is not None else None
    given: Obj = options.model_dump(mode="json", exclude_none=True) if options is not None else {}
    requests = {**DEFAULT_RESOURCES["requests"], **(given.get("requests") or {})}
    limits = dict(given.get("limits") or DEFAULT_RESOURCES["limits"])
    if "limits" not in given and "memory" in (given.get("requests") or {}):
        limits["memory"] = given["requests"]["memory"]
    return {"requests": requests, "limits": limits}


def render_model_upload_job(
    job: UploadJobRef,
    spec: ModelUploadJobSpec,
    raw_spec: Obj,
    endpoint: RegistryEndpoint,
    default_image: str,
    *,
    openshift: bool = False,
) -> list[Obj]:
    """The metadata ConfigMap, the Secret of credential URLs (when any), the ServiceAccount (when
    the spec names none), the progress Role and RoleBinding, and the Job, in the order they must
    be created (the Pod mounts the ConfigMap and reports progress from its first second).

    ``openshift``: the cluster assigns ``fsGroup`` itself (its SCCs reject one out of the
    namespace's range), so the Pod sets none."""
    wiring = container_wiring(job, spec, endpoint)
    options = spec.job
    named = options.service_account_name if options is not None else None
    own_account = not named
    account = named or service_account_name(job.name)
    pod_labels = labels(job.name)
    pod_annotations = {NAME_ANNOTATION: job.name}
    if endpoint.mesh:
        pod_labels[ISTIO_INJECT_LABEL] = "true"
        pod_annotations[ISTIO_NATIVE_SIDECAR_ANNOTATION] = "true"
    pod_security: Obj = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if not openshift:
        pod_security["fsGroup"] = FS_GROUP
    job_spec: Obj = {"backoffLimit": options.backoff_limit if options else 3}
    if options is not None and options.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = options.active_deadline_seconds
    if options is not None and options.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = options.ttl_seconds_after_finished
    context: Obj = {
        "job": job,
        "labels": labels(job.name),
        "owner_references": owner_references(job),
        "config_map_name": config_map_name(job.name),
        "progress_rbac_name": progress_rbac_name(job.name),
        "group": GROUP,
        "job_name": job_name(job.name),
        "metadata_data": metadata_data(spec, job),
        "annotations": {SPEC_HASH_ANNOTATION: spec_hash(raw_spec), NAME_ANNOTATION: job.name},
        "pod_labels": pod_labels,
        "pod_annotations": pod_annotations,
        "pod_security_context": pod_security,
        "url_secret_name": url_secret_name(job.name),
        "secret_urls": wiring.secret_urls,
        "own_service_account": own_account,
        "job_spec": job_spec,
        "config_error_exit_code": CONFIG_ERROR_EXIT_CODE,
        "container_name": CONTAINER_NAME,
        "termination_path": DEFAULT_TERMINATION_PATH,  # where the program writes its outcome
        "image": (options.image if options and options.image else default_image),
        "env": wiring.env,
        "volumes": wiring.volumes,
        "mounts": wiring.mounts,
        "resources": container_resources(spec),
        "service_account_name": account,
    }
    objects = render_template("modeluploadjob/configmap.yaml.j2", context)
    if wiring.secret_urls:
        objects.extend(render_template("modeluploadjob/url-secret.yaml.j2", context))
    if own_account:
        objects.extend(render_template("modeluploadjob/serviceaccount.yaml.j2", context))
    objects.extend(render_template("modeluploadjob/progress-rbac.yaml.j2", context))
    objects.extend(render_template("modeluploadjob/job.yaml.j2", context))
    return objects
