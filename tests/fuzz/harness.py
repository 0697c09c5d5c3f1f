"""One generated object through the API server, the operator's validation and the pure render.

:func:`check_registry` and :func:`check_upload` raise one :class:`Violation` subclass per
property (hypothesis reports and shrinks each kind of failure on its own); on success they
return what happened, for the statistics.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from model_registry_operator.api.modeluploadjob import ModelUploadJobSpec
from model_registry_operator.api.validation import parse_spec
from model_registry_operator.kinds import (
    AUTHORINO_API,
    CONFIG_API,
    ISTIO_NETWORKING_API,
    ISTIO_SECURITY_API,
    ROUTE_API,
    USER_API,
)
from model_registry_operator.kube import ApiError, Kube, kind_of
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES, Capabilities
from model_registry_operator.render.database import DatabaseSecrets
from model_registry_operator.render.defaults import apply_runtime_defaults
from model_registry_operator.render.features import IngressService, ModeConfigurationError
from model_registry_operator.render.modelregistry import (
    RegistryRef,
    RenderInputs,
    render_features,
    render_model_registry,
)
from model_registry_operator.render.modeluploadjob import (
    UploadJobRef,
    address_endpoint,
    registry_endpoint,
    render_model_upload_job,
    token_problem,
)
from model_registry_operator.settings import OperatorSettings

from . import dsn as dsn_checker
from .crd_schema import MODEL_REGISTRY_CRD, MODEL_UPLOAD_JOB_CRD, api_version

Obj = dict[str, Any]

# The secret values the render gets as inputs: none may appear outside a Secret.
DB_PASSWORD = "p@ss:w/rd?&%#(x)=Zq7kLm"
SSL_PASSWORD = "ssl-Kq9vX2-keypass"
GENERATED_PASSWORD = "gen-Vt5nW8rP3sQ1"
COOKIE_SECRET = "cookie-Hc4mZ7yB6dN2fJ0a"
SECRET_VALUES = (DB_PASSWORD, SSL_PASSWORD, GENERATED_PASSWORD, COOKIE_SECRET)

INPUTS = RenderInputs(
    DatabaseSecrets(password=DB_PASSWORD, ssl_password=SSL_PASSWORD),
    generated_postgres_password=GENERATED_PASSWORD,
    referenced_digest="digest",
    oauth_cookie_secret=COOKIE_SECRET,
    istio_ingress=IngressService("istio-system", "istio-ingressgateway"),
)
CAPABILITIES: dict[str, tuple[Capabilities, OperatorSettings]] = {
    "plain": (PLAIN_KUBERNETES, OperatorSettings()),
    "openshift": (
        Capabilities.from_groups({ROUTE_API, USER_API, CONFIG_API}, "apps.cluster.example"),
        OperatorSettings(),
    ),
    "istio": (
        Capabilities.from_groups({ISTIO_NETWORKING_API, ISTIO_SECURITY_API, AUTHORINO_API}, "apps.cluster.example"),
        OperatorSettings(DEFAULT_AUTH_PROVIDER="authorino"),
    ),
}
UPLOAD_IMAGE = OperatorSettings().upload_job_image


# --------------------------------------------------------------------------- violations


class Violation(AssertionError):
    """A property of the issue's item 8 does not hold."""

    group = ""

    def __init__(self, detail: str, obj: Obj | None = None, mutations: list[str] | None = None) -> None:
        text = f"[{self.group}] {self.__doc__}\n  {detail}"
        if mutations:
            text += f"\n  hostile changes: {'; '.join(mutations)}"
        if obj is not None:
            text += f"\n  object: {json.dumps(obj, ensure_ascii=False)[:3000]}"
        super().__init__(text)


class RejectionWithoutField(Violation):
    """the API server refused the object without naming a field"""

    group = "schema"


class ProblemWithoutField(Violation):
    """the operator's validation reported a problem that names no field"""

    group = "errors"


class OperatorRaised(Violation):
    """the operator's validation or render raised instead of reporting a problem"""

    group = "errors"


class RenderedObjectRejected(Violation):
    """the API server's strict validation refused a rendered object"""

    group = "schema"


class ApplyCannotEncode(Violation):
    """the operator's server-side apply cannot send a rendered object (the API server cannot decode it)"""

    group = "errors"


class DsnMismatch(Violation):
    """the DSN does not parse (with the drivers' rules) to the host, port, database, user and TLS of the spec"""

    group = "DSN"


class UnescapedExpansion(Violation):
    """a container argument or env value holds an unescaped kubelet expansion $( (every $ must be doubled)"""

    group = "escaping"


class InjectedStructure(Violation):
    """a container argument or env value is not one string, or an argument is not one the operator renders"""

    group = "templates"


class BadName(Violation):
    """a rendered name or label value is longer than, or not of the form, Kubernetes allows"""

    group = "names"


class SecretOutsideSecret(Violation):
    """a secret value (an input password, URL credentials) appears outside a Secret"""

    group = "secrets"


class RestReachableAroundProxy(Violation):
    """with a proxy, the REST port is reachable from other pods (bound to all addresses, no NetworkPolicy)"""

    group = "proxy"


class TokenOverPlainHttp(Violation):
    """an upload Job would send a bearer token over plain HTTP (no TLS, no mesh sidecar, no explicit opt-out)"""

    group = "proxy"


# --------------------------------------------------------------------------- the API server


@dataclass
class ApiServer:
    """Dry-run requests from a thread pool (the API server answers them in parallel)."""

    kube: Kube = field(repr=False)
    namespace: str
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=8), repr=False)
    _namespaces: set[str] = field(default_factory=set, repr=False)
    _created: set[str] = field(default_factory=set, repr=False)
    # Rendered objects already validated (many differ in nothing but a value the render drops).
    _validated: dict[str, str | None] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis shows the failing case
        printer.text(f"ApiServer(namespace={self.namespace!r})")

    def create_dry_run(self, obj: Obj, plural: str) -> Obj | ApiError:
        """``POST ?dryRun=All&fieldValidation=Strict``: the stored object (defaults applied) or the refusal."""
        path = f"/apis/{obj['apiVersion']}/namespaces/{self.namespace}/{plural}"
        try:
            result: Obj = self.kube.request_sync(
                "POST", path, [("dryRun", "All"), ("fieldValidation", "Strict")], body=obj
            )
        except ApiError as exc:
            return exc
        return result

    def _ensure_namespace(self, name: str | None) -> None:
        """Rendered objects may go to another namespace (the Istio ingress gateway's): create it."""
        if not name or name == self.namespace or name in self._namespaces:
            return
        created = True
        try:
            self.kube.request_sync("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
        except ApiError as exc:
            if not exc.conflict:
                raise
            created = False
        with self._lock:
            self._namespaces.add(name)
            if created:
                self._created.add(name)

    def created_namespaces(self) -> set[str]:
        """The namespaces this made (to delete afterwards)."""
        return set(self._created)

    def _apply_one(self, obj: Obj) -> str | None:
        key = json.dumps(obj, sort_keys=True)
        if key in self._validated:
            return self._validated[key]
        meta = obj["metadata"]
        try:
            kind_of(obj)  # a kind the operator knows how to apply
            self._ensure_namespace(meta.get("namespace"))
            # The operator's own apply (its transport, its encoding), as a dry run.
            asyncio.run(self.kube.apply(obj, dry_run=True, strict=True))
            outcome = None
        except (ApiError, ValueError) as exc:
            outcome = f"{obj.get('kind')}/{meta.get('name')}: {exc}"
        with self._lock:
            self._validated[key] = outcome
        return outcome

    def rejected(self, objects: list[Obj]) -> list[str]:
        """Server-side dry-run apply (strict) of every object; the refusals."""
        return [r for r in self.pool.map(self._apply_one, objects) if r is not None]


def check_applies(api: ApiServer, objects: list[Obj], obj: Obj, mutations: list[str]) -> None:
    """Server-side dry-run apply, as the operator applies (``Kube``'s transport), strict field validation."""
    failures = api.rejected(objects)
    undecodable = [f for f in failures if "error decoding patch" in f]
    if undecodable:
        raise ApplyCannotEncode("; ".join(undecodable[:2]), obj, mutations)
    if failures:
        raise RenderedObjectRejected("; ".join(failures[:3]), obj, mutations)


# --------------------------------------------------------------------------- object walks


def pod_specs(objects: Iterable[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """``(object, pod spec)`` of every pod template rendered."""
    for obj in objects:
        spec = obj.get("spec") or {}
        template = spec.get("template") if isinstance(spec, dict) else None
        if obj.get("kind") == "Pod":
            yield obj, spec
        elif isinstance(template, dict) and isinstance(template.get("spec"), dict):
            yield obj, template["spec"]


def containers(pod: Obj) -> Iterator[Obj]:
    for key in ("initContainers", "containers"):
        yield from pod.get(key) or []


def _unescaped_expansion(value: str) -> bool:
    """What the kubelet would expand: ``$(`` left after taking every ``$$`` as a literal ``$``."""
    return "$(" in value.replace("$$", "")


_FLAG = re.compile(r"--[A-Za-z0-9][A-Za-z0-9-]*")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]*@")


def _known_flags() -> set[str]:
    """Every flag the operator renders for the unit tests' specs (the argument lists' vocabulary)."""
    from tests.unit.cases import DATABASES, spec_for
    from tests.unit.test_render_security import MODES

    flags: set[str] = set()
    for database in DATABASES:
        for mode in MODES.values():
            raw = {**spec_for(database, "custom"), **mode}
            for objects in render_all("flags", "default", raw).values():
                if isinstance(objects, list):
                    for _, pod in pod_specs(objects):
                        for c in containers(pod):
                            for arg in c.get("args") or []:
                                match = _FLAG.match(str(arg))
                                if match:
                                    flags.add(match.group())
    return flags


_KNOWN: dict[str, Any] = {}


def known_flags() -> set[str]:
    if "flags" not in _KNOWN:
        _KNOWN["flags"] = _known_flags()
    flags: set[str] = _KNOWN["flags"]
    return flags


# --------------------------------------------------------------------------- properties on manifests


def check_containers(objects: list[Obj], obj: Obj, mutations: list[str], *, flags: set[str] | None) -> None:
    for owner, pod in pod_specs(objects):
        where = f"{owner['kind']}/{owner['metadata']['name']}"
        for c in containers(pod):
            cname = c.get("name")
            for key in ("command", "args"):
                items = c.get(key)
                if items is None:
                    continue
                if not isinstance(items, list):
                    raise InjectedStructure(f"{where} container {cname}: {key} is {items!r}", obj, mutations)
                for item in items:
                    if not isinstance(item, str):
                        raise InjectedStructure(f"{where} container {cname}: {key} item {item!r}", obj, mutations)
                    if _unescaped_expansion(item):
                        raise UnescapedExpansion(f"{where} container {cname}: {key} item {item!r}", obj, mutations)
                    if key == "args" and flags is not None:
                        match = _FLAG.match(item)
                        if match is None or match.group() not in flags:
                            raise InjectedStructure(
                                f"{where} container {cname}: unexpected argument {item!r}", obj, mutations
                            )
            for env in c.get("env") or []:
                if "value" not in env:
                    continue
                value = env["value"]
                if not isinstance(value, str):
                    raise InjectedStructure(
                        f"{where} container {cname}: env {env.get('name')}={value!r}", obj, mutations
                    )
                if _unescaped_expansion(value):
                    raise UnescapedExpansion(
                        f"{where} container {cname}: env {env.get('name')}={value!r}", obj, mutations
                    )


def _labels_of(obj: Obj) -> Iterator[tuple[str, Any]]:
    yield "metadata.labels", (obj.get("metadata") or {}).get("labels") or {}
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    yield "spec.template.metadata.labels", (template.get("metadata") or {}).get("labels") or {}
    selector = spec.get("selector")
    if isinstance(selector, dict):
        yield "spec.selector", selector.get("matchLabels", selector)


def check_names(objects: list[Obj], obj: Obj, mutations: list[str]) -> None:
    for o in objects:
        name = str(o["metadata"].get("name", ""))
        where = f"{o['kind']}/{name}"
        if (
            len(name) > 253
            or not _DNS_SUBDOMAIN.fullmatch(name)
            and o["kind"] not in ("ClusterRoleBinding", "Role", "RoleBinding", "Group")
        ):
            raise BadName(f"{where}: name of {len(name)} characters, not a DNS subdomain", obj, mutations)
        if o["kind"] == "Service" and (len(name) > 63 or not _DNS_LABEL.fullmatch(name)):
            raise BadName(f"{where}: Service name of {len(name)} characters, not a DNS-1035 label", obj, mutations)
        for place, labels in _labels_of(o):
            if not isinstance(labels, dict):
                continue
            for key, value in labels.items():
                text = str(value)
                if len(text) > 63 or not _LABEL_VALUE.fullmatch(text):
                    raise BadName(f"{where} {place}: label {key}={text!r} ({len(text)} characters)", obj, mutations)


def _secret_forms(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote(value), base64.b64encode(value.encode()).decode()}


SECRET_FORMS = {form for value in SECRET_VALUES for form in _secret_forms(value)}


def check_secrets(objects: list[Obj], obj: Obj, mutations: list[str]) -> None:
    for o in objects:
        if o["kind"] == "Secret":
            continue
        text = json.dumps(o, ensure_ascii=False)
        for form in SECRET_FORMS:
            if form in text:
                raise SecretOutsideSecret(f"{o['kind']}/{o['metadata']['name']} holds {form!r}", obj, mutations)
        for _, pod in pod_specs([o]):
            for c in containers(pod):
                for env in c.get("env") or []:
                    value = env.get("value")
                    if isinstance(value, str) and _URL_CREDENTIALS.search(value):
                        raise SecretOutsideSecret(
                            f"{o['kind']}/{o['metadata']['name']}: env {env.get('name')} holds URL credentials "
                            f"{value!r} (they belong in a Secret)",
                            obj,
                            mutations,
                        )


def _names_field(message: str) -> bool:
    return re.search(r"\b(spec|metadata)(\.[A-Za-z0-9_]+|\[|:)", message) is not None


# --------------------------------------------------------------------------- ModelRegistry


def render_all(name: str, namespace: str, raw_spec: Obj) -> dict[str, list[Obj] | str]:
    """The render with each capability set: its objects, or the problem it reported."""
    spec, problems = parse_spec(raw_spec)
    if spec is None:
        return {"validation": "; ".join(f"{p.field}: {p.message}" for p in problems)}
    out: dict[str, list[Obj] | str] = {}
    for label, (capabilities, settings) in CAPABILITIES.items():
        effective = apply_runtime_defaults(spec, settings, name, capabilities)
        ref = RegistryRef(name, namespace, "00000000-0000-0000-0000-000000000000")
        try:
            features = render_features(ref, effective, settings, capabilities, INPUTS)
        except ModeConfigurationError as exc:
            out[label] = str(exc)
            continue
        out[label] = render_model_registry(ref, effective, settings, capabilities, INPUTS, features)
    return out


@dataclass
class Outcome:
    stage: str  # "rejected", "problem", "rendered"
    kinds: set[str] = field(default_factory=set)


def _dsn_of(objects: list[Obj]) -> str | None:
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    for _, pod in pod_specs(objects):
        for c in containers(pod):
            for env in c.get("env") or []:
                if env.get("name") != "MR_EMBEDMD_DATABASE_DSN":
                    continue
                if "value" in env:
                    return str(env["value"])
                ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
                secret = secrets.get(ref.get("name"))
                if secret is None:
                    return None
                if ref.get("key") in (secret.get("stringData") or {}):
                    return str(secret["stringData"][ref["key"]])
                data = (secret.get("data") or {}).get(ref.get("key"))
                return base64.b64decode(data).decode() if data else None
    return None


def _expected_dsn(name: str, raw_spec: Obj, settings: OperatorSettings) -> tuple[str, dict[str, Any]]:
    spec, _ = parse_spec(raw_spec)
    assert spec is not None
    effective = apply_runtime_defaults(spec, settings, name)
    if effective.mysql is not None:
        my = effective.mysql
        password = DB_PASSWORD if my.password_secret is not None else ""
        return "mysql", {
            "host": my.host,
            "port": my.port,
            "database": my.database,
            "user": my.username,
            "password": password,
        }
    pg = effective.postgres
    assert pg is not None
    password = DB_PASSWORD if pg.password_secret is not None else ""
    has_root_certificate = (pg.ssl_root_certificate_config_map or pg.ssl_root_certificate_secret) is not None
    if pg.generate_deployment:  # the password of the database the operator deploys
        password = GENERATED_PASSWORD
    return "postgres", {
        "host": pg.address,
        "port": pg.port,
        "database": pg.database or "",
        "user": pg.username or "",
        "password": password,
        # libpq's rule, which pgconn follows: with a root certificate, require verifies the CA.
        "tls": "verify-ca" if pg.ssl_mode == "require" and has_root_certificate else pg.ssl_mode,
    }


def _baseline_dsn_params() -> dict[str, set[str]]:
    """Parameter names (and MySQL tls values) the DSNs of the unit tests' specs carry."""
    from tests.unit.cases import DATABASES, spec_for

    items = []
    for database in DATABASES:
        rendered = render_all("baseline", "default", spec_for(database, "defaults"))["plain"]
        assert isinstance(rendered, list)
        dsn = _dsn_of(rendered)
        assert dsn is not None
        items.append(("mysql" if database.startswith("mysql") else "postgres", dsn))
    keys: dict[str, set[str]] = {"mysql": set(), "postgres": set(), "mysql-tls": {""}}
    for (driver, _), parsed in zip(items, dsn_checker.parse_dsns(items), strict=True):
        assert parsed["ok"], parsed
        keys[driver] |= set(parsed.get("params") or {})
        if driver == "mysql":
            keys["mysql-tls"].add(str(parsed.get("tls") or ""))
    return keys


def baseline_dsn_params() -> dict[str, set[str]]:
    if "dsn" not in _KNOWN:
        _KNOWN["dsn"] = _baseline_dsn_params()
    params: dict[str, set[str]] = _KNOWN["dsn"]
    return params


def check_dsn(name: str, raw_spec: Obj, objects: list[Obj], obj: Obj, mutations: list[str]) -> None:
    dsn = _dsn_of(objects)
    if dsn is None:
        raise DsnMismatch("no DSN rendered (MR_EMBEDMD_DATABASE_DSN from a rendered Secret)", obj, mutations)
    driver, expected = _expected_dsn(name, raw_spec, OperatorSettings())
    (parsed,) = dsn_checker.parse_dsns([(driver, dsn)])
    shown = dsn.replace(DB_PASSWORD, "<password>").replace(GENERATED_PASSWORD, "<password>")
    where = f"{driver} DSN {shown!r} ({dsn_checker.CHECKER})"
    if not parsed.get("ok"):
        raise DsnMismatch(f"{where}: the driver refuses it: {parsed.get('error')}", obj, mutations)
    for key, want in expected.items():
        got = parsed.get(key)
        if key in ("user", "database") and want == "":
            continue  # none in the spec: the driver's default (pgconn takes the OS user)
        if key == "host":
            same = str(got).strip("[]").lower() == str(want).strip("[]").lower()
        elif key == "port":
            same = str(got) == str(want)
        else:
            same = got == want
        if not same:
            shown_got = "<other password>" if key == "password" else got
            shown_want = "<password>" if key == "password" else want
            raise DsnMismatch(f"{where}: {key} is {shown_got!r}, the spec says {shown_want!r}", obj, mutations)
    allowed = baseline_dsn_params()
    extra = set(parsed.get("params") or {}) - allowed[driver]
    if extra:
        raise DsnMismatch(f"{where}: parameters the spec never asked for: {sorted(extra)}", obj, mutations)
    if driver == "mysql" and str(parsed.get("tls") or "") not in allowed["mysql-tls"]:
        raise DsnMismatch(f"{where}: tls={parsed.get('tls')!r}, which the spec never asked for", obj, mutations)


_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def check_proxy(raw_spec: Obj, objects: list[Obj], obj: Obj, mutations: list[str]) -> None:
    """In a proxy mode the REST port is bound to loopback, or NetworkPolicies admit only other ports."""
    spec, _ = parse_spec(raw_spec)
    assert spec is not None
    proxy = spec.kube_rbac_proxy or spec.oauth_proxy
    if proxy is None:
        return
    rest_port = spec.rest.port
    for owner, pod in pod_specs(objects):
        if owner["kind"] != "Deployment" or not any(c.get("name") == "rest-container" for c in containers(pod)):
            continue
        rest = next(c for c in containers(pod) if c.get("name") == "rest-container")
        args = [str(a) for a in rest.get("args") or []]
        bind = next((a.split("=", 1)[1] for a in args if a.startswith("--hostname=")), "0.0.0.0")  # noqa: S104
        if bind in _LOOPBACK:
            return
        pod_labels = ((owner["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        policies = [
            p
            for p in objects
            if p["kind"] == "NetworkPolicy"
            and (p["spec"].get("podSelector") or {}).get("matchLabels", {}).items() <= pod_labels.items()
            and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])
        ]
        if not policies:
            raise RestReachableAroundProxy(
                f"REST server bound to {bind}:{rest_port} and no NetworkPolicy selects the registry pods",
                obj,
                mutations,
            )
        for policy in policies:
            for rule in policy["spec"].get("ingress") or []:
                ports = rule.get("ports")
                if not ports or any(p.get("port") in (rest_port, "http-api") for p in ports):
                    raise RestReachableAroundProxy(
                        f"REST server bound to {bind}:{rest_port} and NetworkPolicy {policy['metadata']['name']} "
                        f"admits it: {rule}",
                        obj,
                        mutations,
                    )


def check_registry(api: ApiServer, name: str, raw_spec: Obj, mutations: list[str]) -> Outcome:
    """A ModelRegistry through the API server, ``parse_spec`` (the reconcile's validation) and the render.

    A check the reconcile makes beyond ``parse_spec`` (of the name, say) belongs in
    :func:`render_all` too, so that what it refuses counts as a problem here.
    """
    body = {
        "apiVersion": api_version(MODEL_REGISTRY_CRD),
        "kind": "ModelRegistry",
        "metadata": {"name": name, "namespace": api.namespace},
        "spec": raw_spec,
    }
    stored = api.create_dry_run(body, "modelregistries")
    if isinstance(stored, ApiError):
        if stored.status >= 500 or not _names_field(stored.message):
            raise RejectionWithoutField(f"{stored.status} {stored.reason}: {stored.message}", body, mutations)
        return Outcome("rejected")
    spec_raw: Obj = stored.get("spec") or {}
    try:
        rendered = render_all(name, api.namespace, spec_raw)
    except Exception as exc:
        raise OperatorRaised(f"{type(exc).__name__}: {exc}", body, mutations) from exc
    if "validation" in rendered:
        _, problems = parse_spec(spec_raw)
        for problem in problems:
            if not problem.field.startswith(("spec", "metadata")) or "Traceback" in problem.message:
                raise ProblemWithoutField(str(problem), body, mutations)
        return Outcome("problem")
    outcome = Outcome("rendered")
    flags = known_flags()
    all_objects: list[Obj] = []
    for label, objects in rendered.items():
        if isinstance(objects, str):
            if not objects.startswith(("spec", "metadata")):
                raise ProblemWithoutField(f"{label}: {objects}", body, mutations)
            continue
        all_objects.extend(objects)
        outcome.kinds |= {o["kind"] for o in objects}
    # The rarer failures first: an object shows only the first property it breaks.
    if all_objects:
        check_containers(all_objects, body, mutations, flags=flags)
        check_secrets(all_objects, body, mutations)
        check_dsn(name, spec_raw, all_objects, body, mutations)
    for objects in rendered.values():
        if isinstance(objects, list):
            check_proxy(spec_raw, objects, body, mutations)
    check_names(all_objects, body, mutations)
    check_applies(api, all_objects, body, mutations)
    return outcome


# --------------------------------------------------------------------------- ModelUploadJob


def upload_problems(raw_spec: Obj) -> tuple[ModelUploadJobSpec | None, list[str]]:
    """The reconcile's validation of a ModelUploadJob spec (``reconcile/modeluploadjob.py``)."""
    try:
        return ModelUploadJobSpec.model_validate(raw_spec), []
    except ValidationError as exc:
        return None, [
            "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]) + ": " + err["msg"]
            for err in exc.errors()
        ]


_INJECT = "sidecar.istio.io/inject"


def check_tokens(raw_spec: Obj, objects: list[Obj], obj: Obj, mutations: list[str]) -> None:
    registry = raw_spec.get("registry") or {}
    explicit_opt_out = registry.get("isSecure") is False or registry.get("allowTokenOverHTTP") is True
    for owner, pod in pod_specs(objects):
        template_meta = (owner["spec"].get("template") or {}).get("metadata") or {}
        meshed = "true" in (
            str((template_meta.get("labels") or {}).get(_INJECT)).lower(),
            str((template_meta.get("annotations") or {}).get(_INJECT)).lower(),
        )
        for c in containers(pod):
            env = {e.get("name"): e.get("value") for e in c.get("env") or []}
            address = str(env.get("MODEL_SYNC_REGISTRY_SERVER_ADDRESS") or "")
            token = bool(env.get("MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR") or env.get("MODEL_SYNC_REGISTRY_USER_TOKEN"))
            token = token or str(env.get("MODEL_SYNC_REGISTRY_IS_SECURE")).lower() == "true"
            if token and address.startswith("http://") and not meshed and not explicit_opt_out:
                raise TokenOverPlainHttp(
                    f"{owner['kind']}/{owner['metadata']['name']}: address {address}, "
                    f"MODEL_SYNC_REGISTRY_IS_SECURE={env.get('MODEL_SYNC_REGISTRY_IS_SECURE')}, token "
                    f"{'file' if env.get('MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR') else 'of the service account'}",
                    obj,
                    mutations,
                )


def check_upload(api: ApiServer, name: str, raw_spec: Obj, target: Obj, mutations: list[str]) -> Outcome:
    """A ModelUploadJob through the API server, the reconcile's validation and the render; a
    ``registry.name`` resolves to ``target`` (the named ModelRegistry's spec)."""
    body = {
        "apiVersion": api_version(MODEL_UPLOAD_JOB_CRD),
        "kind": "ModelUploadJob",
        "metadata": {"name": name, "namespace": api.namespace},
        "spec": raw_spec,
    }
    stored = api.create_dry_run(body, "modeluploadjobs")
    if isinstance(stored, ApiError):
        if stored.status >= 500 or not _names_field(stored.message):
            raise RejectionWithoutField(f"{stored.status} {stored.reason}: {stored.message}", body, mutations)
        return Outcome("rejected")
    spec_raw: Obj = stored.get("spec") or {}
    try:
        spec, problems = upload_problems(spec_raw)
        if spec is None:
            for problem in problems:
                if not problem.startswith(("spec", "metadata")) or "Traceback" in problem:
                    raise ProblemWithoutField(problem, body, mutations)
            return Outcome("problem")
        if spec.registry.address is not None:
            endpoint = address_endpoint(spec.registry)
        else:
            endpoint = registry_endpoint(
                str(spec.registry.name),
                api.namespace,
                target,
                allow_token_over_http=bool(spec.registry.allow_token_over_http),
            )
            if token_problem(spec.registry, endpoint):  # the reconcile's check: a condition naming the field
                return Outcome("problem")
        objects = render_model_upload_job(
            UploadJobRef(name, api.namespace, "00000000-0000-0000-0000-000000000000"),
            spec,
            spec_raw,
            endpoint,
            UPLOAD_IMAGE,
        )
    except Violation:
        raise
    except Exception as exc:
        raise OperatorRaised(f"{type(exc).__name__}: {exc}", body, mutations) from exc
    body["registryTarget"] = target
    check_containers(objects, body, mutations, flags=None)
    check_secrets(objects, body, mutations)
    check_names(objects, body, mutations)
    check_applies(api, objects, body, mutations)
    check_tokens(spec_raw, objects, body, mutations)
    return Outcome("rendered", {o["kind"] for o in objects})
