"""Spec validation that names the offending field.

The CRD carries the same rules as CEL, but an older API server, a CRD installed without
them, or an object stored before a rule existed can still bring an invalid spec; the
reconcile re-checks here and reports the field in a status condition.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from . import modelregistry
from .common import RULES as PATTERN_RULES
from .modelregistry import ModelRegistrySpec


@dataclass(frozen=True)
class SpecProblem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _loc(loc: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _message(err: ErrorDetails) -> str:
    """pydantic's message, with a pattern mismatch told in words instead of the regex."""
    ctx = err.get("ctx") or {}
    if err["type"] == "string_pattern_mismatch" and ctx.get("pattern") in PATTERN_RULES:
        return str(PATTERN_RULES[ctx["pattern"]])
    message = err["msg"]
    return message.removeprefix("Value error, ")


def _has(obj: Any, attr: str) -> bool:
    value = getattr(obj, attr, None)
    return value is not None and value != ""


Rule = Callable[[ModelRegistrySpec], list[SpecProblem]]


def _one_database(spec: ModelRegistrySpec) -> list[SpecProblem]:
    count = int(spec.postgres is not None) + int(spec.mysql is not None)
    if count == 1:
        return []
    field = "spec.postgres" if count == 0 else "spec.mysql"
    return [SpecProblem(field, "exactly one of postgres or mysql must be set")]


def _one_security_mode(spec: ModelRegistrySpec) -> list[SpecProblem]:
    modes = [
        name
        for name, value in (
            ("oauthProxy", spec.oauth_proxy),
            ("kubeRBACProxy", spec.kube_rbac_proxy),
            ("istio", spec.istio),
        )
        if value is not None
    ]
    if len(modes) <= 1:
        return []
    return [
        SpecProblem(
            f"spec.{modes[1]}",
            f"at most one of oauthProxy, kubeRBACProxy and istio may be set (found {', '.join(modes)})",
        )
    ]


def _postgres(spec: ModelRegistrySpec) -> list[SpecProblem]:
    pg = spec.postgres
    if pg is None:
        return []
    problems = []
    generate = bool(pg.generate_deployment)
    has_host = _has(pg, "host") or _has(pg, "host_address")
    if not generate and not has_host:
        problems.append(
            SpecProblem(
                "spec.postgres.host", "GenerateDeployment must be set to true if host/hostAddress are not provided"
            )
        )
    if generate and has_host:
        problems.append(
            SpecProblem("spec.postgres.host", "host and hostAddress must not be set when generateDeployment is true")
        )
    if _has(pg, "database") and not _has(pg, "username"):
        problems.append(SpecProblem("spec.postgres.username", "Username must be set if database is specified"))
    if (pg.ssl_certificate_secret is None) != (pg.ssl_key_secret is None):
        problems.append(
            SpecProblem("spec.postgres.sslKeySecret", "sslCertificateSecret and sslKeySecret MUST be set together")
        )
    if generate:
        for attr, message in (
            ("username", modelregistry.GENERATED_USER_MESSAGE),
            ("database", modelregistry.GENERATED_DATABASE_MESSAGE),
        ):
            value = getattr(pg, attr)
            if value and not re.fullmatch(modelregistry.GENERATED_USER_PATTERN, value):
                problems.append(SpecProblem(f"spec.postgres.{attr}", message))
    return problems


def _mysql(spec: ModelRegistrySpec) -> list[SpecProblem]:
    my = spec.mysql
    if my is None or (my.ssl_certificate_secret is None) == (my.ssl_key_secret is None):
        return []
    return [SpecProblem("spec.mysql.sslKeySecret", "sslCertificateSecret and sslKeySecret MUST be set together")]


def _proxies(spec: ModelRegistrySpec) -> list[SpecProblem]:
    problems = []
    for field, proxy in (("oauthProxy", spec.oauth_proxy), ("kubeRBACProxy", spec.kube_rbac_proxy)):
        if proxy is not None and (proxy.tls_certificate_secret is None) != (proxy.tls_key_secret is None):
            problems.append(
                SpecProblem(f"spec.{field}.tlsKeySecret", "tlsCertificateSecret and tlsKeySecret MUST be set together")
            )
        if proxy is not None and proxy.port == spec.rest.port:
            problems.append(
                SpecProblem(
                    f"spec.{field}.port",
                    f"{field}.port must differ from rest.port (the REST server listens on it behind the proxy)",
                )
            )
    return problems


RULES: list[Rule] = [_one_database, _one_security_mode, _postgres, _mysql, _proxies]


def parse_spec(
    raw: dict[str, Any] | None, name: str | None = None
) -> tuple[ModelRegistrySpec | None, list[SpecProblem]]:
    """Parse and check a stored spec; returns the model or the problems (never raises).

    With ``name`` (the object's metadata.name) the name is checked against the spec too: every
    name derived from it must be valid (the CRD's root rule).
    """
    if raw is not None and not isinstance(raw, dict):
        return None, [SpecProblem("spec", f"must be an object, not {type(raw).__name__}")]
    try:
        spec = ModelRegistrySpec.model_validate(raw or {})
    except ValidationError as exc:
        return None, [SpecProblem(_loc(err["loc"]), _message(err)) for err in exc.errors()]
    problems = [problem for rule in RULES for problem in rule(spec)]
    if name is not None:
        name_problem = modelregistry.name_problem(name, spec)
        if name_problem:
            problems.append(SpecProblem("metadata.name", name_problem))
    return (None, problems) if problems else (spec, [])
