"""The ModelUploadJob custom resource: copy a model and register it, once, through a Job.

The operator turns one ModelUploadJob into a metadata ConfigMap and a ``batch/v1`` Job running
``model-registry-upload`` (the upload program), follows the Job and its Pod and reports
phase, conditions, the registered ids and the artifact URI in the status. The spec is immutable:
an upload is a one-shot action; create a new ModelUploadJob to upload again.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..names import MODEL_UPLOAD_JOB_PLURAL, MODEL_UPLOAD_JOB_VERSION
from .common import (
    IMAGE_DOMAIN,
    IMAGE_PATH,
    IMAGE_PATTERN,
    IMAGE_TAG_DIGEST,
    QUANTITY_SCHEMA,
    SUBDOMAIN_PATTERN,
    ApiModel,
    Condition,
    ResourceRequirements,
    SecretKeyValue,
    cel,
    with_rules,
)

# Re-exported for the upload program, which reports its progress on the status.
PLURAL = MODEL_UPLOAD_JOB_PLURAL
VERSION = MODEL_UPLOAD_JOB_VERSION

Intent = Literal["create_model", "create_version", "update_artifact"]
Phase = Literal["Pending", "Running", "Succeeded", "Failed"]

_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_NAME_LENGTH = 63
"""The name is a label value of every child (``modelregistry.opendatahub.io/upload-job``) and the
prefix of the Job's Pods' host names: an RFC 1123 label, at most 63 characters (longer child names
are shortened with a hash)."""
NAME_RULES = [
    cel(
        f"self.metadata.name.size() <= {MAX_NAME_LENGTH} && self.metadata.name.matches('{_NAME_PATTERN}')",
        f"metadata.name must be an RFC 1123 label of at most {MAX_NAME_LENGTH} characters (lower-case letters, "
        "digits and '-'; it labels the upload's Job and Pods)",
    )
]

# The OCI reference grammar of api/common.py, with the prefixes upload images may carry.
PUSH_IMAGE_PATTERN = rf"^(oci://)?{IMAGE_DOMAIN}/{IMAGE_PATH}{IMAGE_TAG_DIGEST}$"
"""An image reference with its registry host (where to push), optionally prefixed ``oci://``."""
SOURCE_IMAGE_PATTERN = rf"^((oci|docker)://)?({IMAGE_DOMAIN}/)?{IMAGE_PATH}{IMAGE_TAG_DIGEST}$"
MAX_IMAGE_LENGTH = 512
_QUANTITY = re.compile(QUANTITY_SCHEMA["pattern"])

# Custom property values: string, number or boolean (lists and objects are stored as JSON strings).
_FREE_FORM: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}


def _secret_name(description: str) -> Any:  # noqa: ANN401 - a pydantic FieldInfo
    return Field(
        default=None,
        alias="credentialsSecret",
        min_length=1,
        max_length=253,
        pattern=SUBDOMAIN_PATTERN,
        description=description,
    )


REGISTRY_RULES = [
    cel(
        "(has(self.name) ? 1 : 0) + (has(self.address) ? 1 : 0) == 1",
        "exactly one of name (a ModelRegistry) or address must be set",
    ),
    cel(
        "!has(self.name) || (!has(self.port) && !has(self.isSecure))",
        "port and isSecure are only used with address (the operator resolves them for a ModelRegistry)",
    ),
    cel("!(has(self.caSecret) && has(self.caConfigMap))", "at most one of caSecret and caConfigMap may be set"),
    cel(
        "!has(self.address) || !self.address.startsWith('http://') || "
        "!(has(self.tokenSecret) || (has(self.isSecure) && self.isSecure)) || "
        "(has(self.allowTokenOverHTTP) && self.allowTokenOverHTTP)",
        "a token (tokenSecret or isSecure) is only sent over https://: use the registry's https:// address, or set "
        "allowTokenOverHTTP to send it unencrypted",
        ".address",
    ),
]


class RegistryTarget(ApiModel):
    """The model registry to register in: a ModelRegistry of this namespace, or an explicit address."""

    model_config = with_rules(REGISTRY_RULES)

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=SUBDOMAIN_PATTERN,
        description=(
            "Name of a ModelRegistry in the same namespace. The operator resolves its Service and REST port and "
            "waits until the registry is Available."
        ),
    )
    address: str | None = Field(
        default=None,
        min_length=1,
        pattern=r"^https?://[^\s]+$",
        description="REST address of the registry with its scheme, e.g. https://registry.example.com.",
    )
    port: int | None = Field(default=None, ge=1, le=65535, description="REST port, when address has none. Default 443.")
    is_secure: bool | None = Field(
        default=None,
        alias="isSecure",
        description="Require TLS and a token (default true). With false, plain HTTP and no token are accepted.",
    )
    token_secret: SecretKeyValue | None = Field(
        default=None,
        alias="tokenSecret",
        description=(
            "Secret key holding the bearer token sent to the registry. Default: the Job's service account token "
            "when isSecure is true."
        ),
    )
    ca_secret: SecretKeyValue | None = Field(
        default=None, alias="caSecret", description="Secret key holding a PEM CA bundle to verify the registry."
    )
    ca_config_map: SecretKeyValue | None = Field(
        default=None,
        alias="caConfigMap",
        description="ConfigMap key holding a PEM CA bundle to verify the registry.",
    )
    author: str | None = Field(
        default=None, description="Default author of created model versions (ModelVersion.author wins)."
    )
    allow_token_over_http: bool | None = Field(
        default=None,
        alias="allowTokenOverHTTP",
        description=(
            "Send the bearer token (tokenSecret, or the service account token with isSecure) to a plain http:// "
            "address, unencrypted. Default false: such a spec is rejected, and the upload program refuses to send "
            "a token without TLS. Only for test setups or a network secured otherwise; prefer an https:// address."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> RegistryTarget:
        if (self.name is None) == (self.address is None):
            raise ValueError(REGISTRY_RULES[0]["message"])
        if self.name is not None and (self.port is not None or self.is_secure is not None):
            raise ValueError(REGISTRY_RULES[1]["message"])
        if self.ca_secret is not None and self.ca_config_map is not None:
            raise ValueError(REGISTRY_RULES[2]["message"])
        if (
            self.address is not None
            and self.address.startswith("http://")
            and (self.token_secret is not None or self.is_secure)
            and not self.allow_token_over_http
        ):
            raise ValueError(REGISTRY_RULES[3]["message"])
        return self


class S3Location(ApiModel):
    """An S3 bucket and key or prefix."""

    bucket: str | None = Field(
        default=None,
        min_length=1,
        description="Bucket name. Default: AWS_S3_BUCKET / AWS_BUCKET of the credentials Secret.",
    )
    key: str = Field(
        min_length=1,
        description="Object key or prefix (a directory of objects; the prefix is bounded at '/').",
    )
    region: str | None = Field(
        default=None, description="Region. Default: AWS_DEFAULT_REGION / AWS_REGION of the credentials Secret."
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="Endpoint URL of an S3-compatible store. Default: AWS_S3_ENDPOINT of the credentials Secret.",
    )
    credentials_secret: str = Field(
        alias="credentialsSecret",
        min_length=1,
        max_length=253,
        pattern=SUBDOMAIN_PATTERN,
        description=(
            "Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and optionally AWS_DEFAULT_REGION, "
            "AWS_S3_ENDPOINT and AWS_S3_BUCKET (the data connection format), mounted into the Job."
        ),
    )


URI_RULES = [cel("has(self.uri) || has(self.credentialsSecret)", "uri or credentialsSecret must be set")]


class UriSource(ApiModel):
    """A model at an http(s):// URL (archives are unpacked) or on Hugging Face (hf://repo/model[:revision])."""

    model_config = with_rules(URI_RULES)

    uri: str | None = Field(
        default=None,
        pattern=r"^(https?|hf)://[^\s]+$",
        description="http://, https:// or hf:// URI of the model. Wins over the Secret's URI key.",
    )
    credentials_secret: str | None = _secret_name(
        "Secret with a URI key holding the URI, for URIs that carry credentials (signed URLs, user:password)."
    )

    @model_validator(mode="after")
    def _check(self) -> UriSource:
        if self.uri is None and self.credentials_secret is None:
            raise ValueError(URI_RULES[0]["message"])
        return self


class OciSource(ApiModel):
    """An OCI image (e.g. a modelcar) whose /models files are the model."""

    uri: str = Field(
        min_length=1,
        max_length=MAX_IMAGE_LENGTH,
        pattern=SOURCE_IMAGE_PATTERN,
        description="Image reference, host[:port]/repository:tag or @digest.",
    )
    registry: str | None = Field(
        default=None, description="Registry host used to look up credentials. Default: the host of uri."
    )
    enable_tls_verify: bool = Field(
        default=True, alias="enableTLSVerify", description="Verify the registry's TLS certificate."
    )
    credentials_secret: str | None = _secret_name(
        "Secret of type kubernetes.io/dockerconfigjson with credentials for the registry."
    )


PVC_RULES = [
    cel(
        "!self.path.startsWith('/') && !self.path.matches('(^|/)[.][.](/|$)')",
        "path must be relative to the volume root and must not contain '..'",
        ".path",
    )
]


class PvcSource(ApiModel):
    """Model files on a PersistentVolumeClaim of this namespace, mounted read-only."""

    model_config = with_rules(PVC_RULES)

    claim_name: str = Field(
        alias="claimName",
        min_length=1,
        max_length=253,
        pattern=SUBDOMAIN_PATTERN,
        description="Name of the PersistentVolumeClaim.",
    )
    path: str = Field(
        default="",
        description="Directory or file inside the volume, relative to its root (default: the whole volume).",
    )

    @model_validator(mode="after")
    def _check(self) -> PvcSource:
        if self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(PVC_RULES[0]["message"])
        return self


SOURCE_RULES = [
    cel(
        "(has(self.s3) ? 1 : 0) + (has(self.uri) ? 1 : 0) + (has(self.oci) ? 1 : 0) + (has(self.pvc) ? 1 : 0) == 1",
        "exactly one of s3, uri, oci or pvc must be set",
    )
]


class Source(ApiModel):
    """Where the model comes from: exactly one of s3, uri, oci or pvc."""

    model_config = with_rules(SOURCE_RULES)

    s3: S3Location | None = Field(default=None, description="Objects under an S3 key or prefix.")
    uri: UriSource | None = Field(default=None, description="An http(s) or Hugging Face URI.")
    oci: OciSource | None = Field(default=None, description="The /models files of an OCI image.")
    pvc: PvcSource | None = Field(default=None, description="Files on a PersistentVolumeClaim.")

    @model_validator(mode="after")
    def _check(self) -> Source:
        if sum(x is not None for x in (self.s3, self.uri, self.oci, self.pvc)) != 1:
            raise ValueError(SOURCE_RULES[0]["message"])
        return self

    @property
    def kind(self) -> str:
        return "s3" if self.s3 else "uri" if self.uri else "oci" if self.oci else "pvc"


class OciDestination(ApiModel):
    """Push the model as an OCI modelcar image (files under /models on top of a base image)."""

    uri: str = Field(
        min_length=1,
        max_length=MAX_IMAGE_LENGTH,
        pattern=PUSH_IMAGE_PATTERN,
        description="Image reference to push, host[:port]/repository:tag (no http scheme).",
    )
    registry: str | None = Field(
        default=None, description="Registry host used to look up credentials. Default: the host of uri."
    )
    base_image: str | None = Field(
        default=None,
        alias="baseImage",
        max_length=MAX_IMAGE_LENGTH,
        pattern=IMAGE_PATTERN,
        description="Base image of the modelcar. Default: public.ecr.aws/docker/library/busybox:latest.",
    )
    enable_tls_verify: bool = Field(
        default=True, alias="enableTLSVerify", description="Verify the registry's TLS certificate."
    )
    credentials_secret: str | None = _secret_name(
        "Secret of type kubernetes.io/dockerconfigjson with push credentials (and pull credentials of the base "
        "image's registry)."
    )


DESTINATION_RULES = [
    cel("(has(self.oci) ? 1 : 0) + (has(self.s3) ? 1 : 0) == 1", "exactly one of oci or s3 must be set")
]


class Destination(ApiModel):
    """Where the model goes: exactly one of oci or s3."""

    model_config = with_rules(DESTINATION_RULES)

    oci: OciDestination | None = Field(default=None, description="An OCI modelcar image.")
    s3: S3Location | None = Field(default=None, description="Objects under an S3 prefix.")

    @model_validator(mode="after")
    def _check(self) -> Destination:
        if (self.oci is None) == (self.s3 is None):
            raise ValueError(DESTINATION_RULES[0]["message"])
        return self

    @property
    def kind(self) -> str:
        return "oci" if self.oci else "s3"


class RegisteredModelInfo(ApiModel):
    """The RegisteredModel: a name to create (create_model) or the id of an existing one (create_version)."""

    id: str | None = Field(default=None, pattern=r"^[0-9]+$", description="Id of an existing RegisteredModel.")
    name: str | None = Field(default=None, min_length=1, description="Name of the RegisteredModel to create.")
    description: str | None = Field(default=None, description="Description of the created RegisteredModel.")
    owner: str | None = Field(default=None, description="Owner of the created RegisteredModel.")
    custom_properties: dict[str, Any] | None = Field(
        default=None,
        alias="customProperties",
        description="Custom properties: string, number or boolean values (lists and objects are stored as JSON).",
        json_schema_extra=_FREE_FORM,
    )


class ModelVersionInfo(ApiModel):
    """The ModelVersion: metadata of the version to create, or the id of an existing one (update_artifact)."""

    id: str | None = Field(
        default=None, pattern=r"^[0-9]+$", description="Id of an existing ModelVersion (reported back only)."
    )
    name: str | None = Field(default=None, min_length=1, description="Version name (create_model default 1.0.0).")
    description: str | None = Field(default=None, description="Description of the created ModelVersion.")
    author: str | None = Field(default=None, description="Author of the created ModelVersion.")
    custom_properties: dict[str, Any] | None = Field(
        default=None,
        alias="customProperties",
        description="Custom properties: string, number or boolean values (lists and objects are stored as JSON).",
        json_schema_extra=_FREE_FORM,
    )


class ModelArtifactInfo(ApiModel):
    """The ModelArtifact: metadata of the created artifact, or the id of the one to update (update_artifact)."""

    id: str | None = Field(default=None, pattern=r"^[0-9]+$", description="Id of the ModelArtifact to update.")
    name: str | None = Field(default=None, min_length=1, description="Artifact name (default: the model name).")
    description: str | None = Field(default=None, description="Description of the created ModelArtifact.")
    model_format_name: str | None = Field(
        default=None, alias="modelFormatName", description="Model format, e.g. onnx, safetensors."
    )
    model_format_version: str | None = Field(
        default=None, alias="modelFormatVersion", description="Version of the model format."
    )
    storage_key: str | None = Field(default=None, alias="storageKey", description="Storage key (data connection).")
    storage_path: str | None = Field(default=None, alias="storagePath", description="Storage path.")
    service_account_name: str | None = Field(
        default=None, alias="serviceAccountName", description="Service account that can read the artifact."
    )
    custom_properties: dict[str, Any] | None = Field(
        default=None,
        alias="customProperties",
        description="Custom properties: string, number or boolean values (lists and objects are stored as JSON).",
        json_schema_extra=_FREE_FORM,
    )


class ModelInfo(ApiModel):
    """What to register: metadata of new entities, or ids of existing ones, depending on the intent."""

    registered_model: RegisteredModelInfo | None = Field(
        default=None, alias="registeredModel", description="The RegisteredModel."
    )
    model_version: ModelVersionInfo | None = Field(default=None, alias="modelVersion", description="The ModelVersion.")
    model_artifact: ModelArtifactInfo | None = Field(
        default=None, alias="modelArtifact", description="The ModelArtifact."
    )


class JobOptions(ApiModel):
    """Options of the Job that runs the upload."""

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IMAGE_LENGTH,
        pattern=IMAGE_PATTERN,
        description="Image with the upload program. Default: the operator's RELATED_IMAGE_MODEL_UPLOAD_JOB_IMAGE.",
    )
    resources: ResourceRequirements | None = Field(
        default=None,
        description=(
            "Resources of the upload container. Defaults: requests cpu 100m and memory 256Mi, limit memory 1Gi, "
            "each kept when left out (resources: {} keeps them all; a memory request without limits raises the "
            "memory limit to it)."
        ),
    )
    service_account_name: str | None = Field(
        default=None,
        alias="serviceAccountName",
        min_length=1,
        max_length=253,
        pattern=SUBDOMAIN_PATTERN,
        description=(
            "Service account of the Job's Pod (its token authenticates to a secure registry by default). Default: "
            "the ServiceAccount <name>-upload that the operator creates for this upload, allowed only to report "
            "its progress."
        ),
    )
    backoff_limit: int = Field(
        default=3,
        alias="backoffLimit",
        ge=0,
        le=20,
        description=(
            "Retries of a failed upload (a retry resumes with the entities it created). Configuration errors "
            "(exit code 2) are never retried."
        ),
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        alias="activeDeadlineSeconds",
        ge=1,
        description="Time limit of the whole Job, in seconds.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        alias="ttlSecondsAfterFinished",
        ge=0,
        le=2**31 - 1,  # the Job's field is an int32 (found by the fuzz suite: a larger one refused the Job)
        description="Delete the finished Job (and its Pods) after this many seconds; the status is kept.",
    )
    scratch_size: int | str | None = Field(
        default=None,
        alias="scratchSize",
        description=(
            "Size limit of the scratch volume (emptyDir) used for archives and OCI layers, a quantity such as 50Gi. "
            "Default 20Gi."
        ),
        json_schema_extra={"pattern": QUANTITY_SCHEMA["pattern"]},
    )

    @field_validator("scratch_size")
    @classmethod
    def _quantity(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and not _QUANTITY.fullmatch(value):
            raise ValueError(f"scratchSize must be a quantity such as 20Gi or 500M, got {value[:40]!r}")
        if isinstance(value, int) and value < 0:
            raise ValueError("scratchSize must not be negative")
        return value


SPEC_RULES = [
    cel(
        "self.intent != 'create_model' || "
        "(has(self.model) && has(self.model.registeredModel) && has(self.model.registeredModel.name))",
        "intent create_model needs model.registeredModel.name",
        ".intent",
    ),
    cel(
        "self.intent != 'create_version' || "
        "(has(self.model) && has(self.model.registeredModel) && has(self.model.registeredModel.id) "
        "&& has(self.model.modelVersion) && has(self.model.modelVersion.name))",
        "intent create_version needs model.registeredModel.id and model.modelVersion.name",
        ".intent",
    ),
    cel(
        "self.intent != 'update_artifact' || "
        "(has(self.model) && has(self.model.modelArtifact) && has(self.model.modelArtifact.id))",
        "intent update_artifact needs model.modelArtifact.id",
        ".intent",
    ),
    cel(
        "!has(self.model) || !has(self.model.registeredModel) || "
        "!(has(self.model.registeredModel.id) && has(self.model.registeredModel.name))",
        "model.registeredModel takes a name (create_model) or an id, not both",
    ),
]


class ModelUploadJobSpec(ApiModel):
    """Copy a model from a source to a destination and register it in a model registry. Immutable."""

    model_config = with_rules(SPEC_RULES)

    registry: RegistryTarget = Field(description="The model registry to register the model in.")
    intent: Intent = Field(
        description=(
            "create_model: a new RegisteredModel, ModelVersion and ModelArtifact; create_version: a new version of "
            "model.registeredModel.id; update_artifact: upload for the existing model.modelArtifact.id."
        )
    )
    source: Source = Field(description="Where the model files come from.")
    destination: Destination = Field(description="Where the model files are copied to.")
    model: ModelInfo | None = Field(default=None, description="Metadata and ids of the registry entities.")
    job: JobOptions | None = Field(default=None, description="Options of the Job that runs the upload.")

    @model_validator(mode="after")
    def _check(self) -> ModelUploadJobSpec:
        model = self.model or ModelInfo()
        rm, mv, ma = model.registered_model, model.model_version, model.model_artifact
        if self.intent == "create_model" and (rm is None or not rm.name):
            raise ValueError(SPEC_RULES[0]["message"])
        if self.intent == "create_version" and (rm is None or not rm.id or mv is None or not mv.name):
            raise ValueError(SPEC_RULES[1]["message"])
        if self.intent == "update_artifact" and (ma is None or not ma.id):
            raise ValueError(SPEC_RULES[2]["message"])
        if rm is not None and rm.id and rm.name:
            raise ValueError(SPEC_RULES[3]["message"])
        return self


IMMUTABLE_RULES = [cel("self == oldSelf", "spec is immutable: create a new ModelUploadJob to upload again")]


class UploadProgress(ApiModel):
    """Byte progress of a running upload, written by the upload program itself."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="ignore")

    stage: Literal["Transferring", "Registering", "Completed"] | None = Field(
        default=None,
        description="Transferring while bytes move, Registering once they all arrived, Completed on success.",
    )
    bytes_transferred: int | None = Field(
        default=None, alias="bytesTransferred", ge=0, description="Bytes of the model copied so far."
    )
    bytes_total: int | None = Field(
        default=None, alias="bytesTotal", ge=0, description="Bytes of the model (all files)."
    )
    percent: int | None = Field(default=None, ge=0, le=100, description="bytesTransferred of bytesTotal, in percent.")
    bytes_per_second: int | None = Field(
        default=None, alias="bytesPerSecond", ge=0, description="Transfer rate over the last interval."
    )
    update_time: str | None = Field(
        default=None,
        alias="updateTime",
        description="When the upload program last reported.",
        json_schema_extra={"format": "date-time"},
    )


class ModelUploadJobStatus(ApiModel):
    """Observed state of an upload."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="ignore")

    phase: Phase | None = Field(default=None, description="Pending, Running, Succeeded or Failed.")
    observed_generation: int | None = Field(
        default=None, alias="observedGeneration", description="The .metadata.generation last reconciled."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="RegistryResolved, Started, Complete, Failed and SpecChanged.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    job_name: str | None = Field(default=None, alias="jobName", description="Name of the Job running the upload.")
    config_map_name: str | None = Field(
        default=None, alias="configMapName", description="Name of the metadata ConfigMap mounted into the Job."
    )
    registry_url: str | None = Field(
        default=None, alias="registryURL", description="REST address of the registry the Job registers in."
    )
    start_time: str | None = Field(
        default=None,
        alias="startTime",
        description="When the upload started running.",
        json_schema_extra={"format": "date-time"},
    )
    completion_time: str | None = Field(
        default=None,
        alias="completionTime",
        description="When the upload succeeded or failed for good.",
        json_schema_extra={"format": "date-time"},
    )
    attempts: int | None = Field(default=None, description="Pods started so far (1 + retries).")
    registered_model_id: str | None = Field(
        default=None, alias="registeredModelId", description="Id of the RegisteredModel."
    )
    model_version_id: str | None = Field(default=None, alias="modelVersionId", description="Id of the ModelVersion.")
    model_artifact_id: str | None = Field(default=None, alias="modelArtifactId", description="Id of the ModelArtifact.")
    artifact_uri: str | None = Field(
        default=None, alias="artifactURI", description="URI of the uploaded model (oci://... or s3://...)."
    )
    digest: str | None = Field(default=None, description="Manifest digest of the pushed image (OCI destination).")
    bytes: int | None = Field(default=None, description="Bytes copied.")
    files: int | None = Field(default=None, description="Files copied.")
    message: str | None = Field(default=None, description="Why the upload failed or waits, in one line.")
    progress: UploadProgress | None = Field(
        default=None,
        description=(
            "Byte progress reported by the running upload every few seconds (the Job's service account may "
            "patch this ModelUploadJob's status, nothing else)."
        ),
    )
