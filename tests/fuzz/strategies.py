"""Hypothesis strategies: objects drawn from the CRD schemas, made realistic, then made hostile.

Each object goes through three passes, all drawn (so hypothesis shrinks every choice):

1. the CRD schema (``hypothesis-jsonschema``), with the spec's one-of rules kept (exactly one
   database, at most one security mode, exactly one source / destination) so that most objects
   get past the API server and reach the operator;
2. realistic values for the fields the operator inserts somewhere (host names, database and
   user names, Secret keys, images, URIs), and a repair of the CEL rules, so that a hostile
   value is the only thing wrong with an object;
3. hostile mutations of one to three values: DSN syntax, kubelet ``$(VAR)`` expansion, YAML
   injected through a newline, unicode, lengths at and past every limit, wrong types, unknown
   fields.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from .crd_schema import MODEL_REGISTRY_CRD, MODEL_UPLOAD_JOB_CRD, spec_schema

Obj = dict[str, Any]
Path = tuple[str | int, ...]

_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {}


def _from_schema(schema: Obj) -> st.SearchStrategy[Any]:
    """A strategy for the schema, built once.

    Objects with ``properties`` become ``fixed_dictionaries`` (required keys always, the others
    now and then) of their properties' strategies; everything else (strings with patterns and
    lengths, numbers with bounds, enums, maps, int-or-string) is ``hypothesis-jsonschema``'s.
    ``from_schema`` of a whole object would rebuild its properties' strategies on every draw.
    """
    key = json.dumps(schema, sort_keys=True)
    if key not in _STRATEGIES:
        props = schema.get("properties")
        if schema.get("type") == "object" and props and schema.get("additionalProperties") is False:
            required = set(schema.get("required", []))
            _STRATEGIES[key] = st.fixed_dictionaries(
                {k: _from_schema(v) for k, v in props.items() if k in required},
                optional={k: _from_schema(v) for k, v in props.items() if k not in required},
            )
        else:
            _STRATEGIES[key] = from_schema(schema)
    return _STRATEGIES[key]


# --------------------------------------------------------------------------- hostile values

DSN_INJECTIONS = [
    "a@tcp(evil.example:3306)/mr?allowCleartextPasswords=true&allowAllFiles=true&x=",
    "pg.db.svc/model_registry?sslmode=disable&application_name=",
    "evil.example:1/x",
    "db?sslmode=disable",
    "a&sslmode=disable",
    "x/y",
    "u@h",
    "u:p@h",
    "(x)",
    "h)/x?allowAllFiles=true&",
    "100%",
    "%2F",
    "%zz",
    "h#frag",
    "a b",
    "a=b c=d",
    "host=evil.example sslmode=disable",
    "'",
    "[::1]",
    "::1",
]
EXPANSIONS = ["$(MR_EMBEDMD_DATABASE_DSN)", "$(VAR)", "$$(VAR)", "$$$(VAR)", "$", "${VAR}", "a$(b)c"]
TEMPLATE_INJECTIONS = [
    "tls.key\n  - --ignore-paths=/*",
    "a: b",
    "\n  - --ignore-paths=/*",
    "x\ny: z",
    "- a",
    "{a: b}",
    "[a, b]",
    '"',
    "'a'",
    "!!binary aGk=",
    "&a x",
    "*a",
    "#c",
    "---",
    "{{ spec }}",
    "{% raw %}",
    "a\r\nb",
    "\t",
    "- --upstream=http://evil.example/",
    "--ignore-paths=/*",
]
UNICODE = [
    "🚀",
    "quay.io/x:🚀",
    "\u202eevil",
    "a\u0000b",
    "\u0000",
    "e\u0301",
    "Ω",
    "²",
    "名前",
    "\ufeffa",
    "a\u200bb",
    "z\u0336\u0337\u0338",
    "\U0001f600@\U0001f600",
    "\x7f",
]
WRONG_TYPES: list[Any] = [0, -1, 65536, 2**63, 1.5, True, False, None, [], {}, ["a"], {"a": "b"}, "lots", "8080", ""]


def _lengths() -> list[str]:
    values = []
    for n in (62, 63, 64, 252, 253, 254, 1000):
        values.append("a" * n)
    values.append(".".join(["a" * 63] * 4)[:253])  # a DNS name at its limit
    values.append("a" * 64 + ".example")  # a DNS label past its limit
    values.append("a" * 62 + "-")  # a label ending in '-'
    values.append("1" + "a" * 62)  # a leading digit
    values.append("A" * 63)
    values.append("a.b")
    return values


LENGTHS = _lengths()
URL_CREDENTIALS = [
    "https://user:pass@example.com/model.tar.gz",
    "http://key:secret@minio.local:9000",
    "https://user:pass@mr.example.com",
    "hf://user:token@org/model",
]
# Drawn by category first, so that each category gets its share whatever its length.
HOSTILE_CATEGORIES = [DSN_INJECTIONS, EXPANSIONS, TEMPLATE_INJECTIONS, UNICODE, LENGTHS, URL_CREDENTIALS]
HOSTILE_STRINGS = [value for category in HOSTILE_CATEGORIES for value in category]

# --------------------------------------------------------------------------- realistic values

REALISTIC: dict[tuple[str, ...], list[Any]] = {
    ("host",): ["pg.example.svc", "mysql.db.svc.cluster.local", "db", "model-registry-db", "10.1.2.3"],
    ("hostAddress",): ["10.1.2.3", "192.168.0.10", "fd00::1"],
    ("database",): ["model_registry", "registry", "mr-db", "db1"],
    ("username",): ["mlmduser", "mr", "model_registry", "root"],
    ("name",): ["db-credentials", "pg-client", "my-tls", "mr-token"],
    ("key",): ["password", "tls.crt", "tls.key", "ca.crt", "token"],
    ("image",): [
        "quay.io/opendatahub/model-registry:v0.2.10",
        "example.com/pg:16",
        "registry.local:5000/x/y@sha256:" + "a" * 64,
        "busybox",
    ],
    ("sslCipher",): ["TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES128-GCM-SHA256"],
    ("domain",): ["apps.example.com", "example.org"],
    ("credentialName",): ["gateway-cert"],
    ("istioIngress",): ["ingressgateway"],
    ("controlPlane",): ["basic"],
    ("authProvider",): ["authorino"],
    ("audiences",): [["https://kubernetes.default.svc"]],
    ("authConfigLabels",): [{"security.opendatahub.io/authorization-group": "default"}],
    ("sslRootCertificatesConfigMapName",): ["ca-bundle"],
    ("sslRootCertificatesSecretName",): ["ca-bundle"],
    ("bucket",): ["models"],
    ("s3", "key"): ["llm/v1", "model.onnx"],
    ("region",): ["us-east-1"],
    ("endpoint",): ["http://minio.local:9000", "https://s3.amazonaws.com"],
    ("credentialsSecret",): ["s3-creds", "push-creds"],
    ("source", "uri", "uri"): ["https://example.com/model.tar.gz", "hf://org/model:main"],
    ("source", "oci", "uri"): ["quay.io/org/model:v1"],
    ("destination", "oci", "uri"): ["registry.local:5000/org/llm:v1", "oci://quay.io/org/m:v2"],
    ("address",): ["https://mr.example.com", "http://mr.ns.svc:8080"],
    ("registry", "name"): ["reg"],
    ("claimName",): ["models"],
    ("path",): ["llm/v1", ""],
    ("author",): ["alice"],
    ("owner",): ["team-a"],
    ("description",): ["a model"],
    ("modelFormatName",): ["onnx"],
    ("modelFormatVersion",): ["1"],
    ("id",): ["1", "42"],
    ("serviceAccountName",): ["uploader"],
    ("baseImage",): ["busybox:1"],
    ("oci", "registry"): ["quay.io"],
    ("scratchSize",): ["20Gi", 1073741824],
}

# Fields whose value reaches a DSN, an argument, an env value or a template: mutated more often.
SENSITIVE = {
    "host",
    "hostAddress",
    "database",
    "username",
    "key",
    "name",
    "image",
    "sslCipher",
    "domain",
    "credentialName",
    "authProvider",
    "istioIngress",
    "controlPlane",
    "uri",
    "address",
    "endpoint",
    "bucket",
    "region",
    "credentialsSecret",
    "claimName",
    "path",
    "serviceAccountName",
    "baseImage",
    "registry",
    "scratchSize",
    "port",
    "routePort",
}


def _realistic_for(path: Path) -> list[Any] | None:
    names = tuple(p for p in path if isinstance(p, str))
    for size in (3, 2, 1):
        if len(names) >= size and names[-size:] in REALISTIC:
            return REALISTIC[names[-size:]]
    return None


def _walk(node: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


def _set(obj: Any, path: Path, value: Any) -> None:
    for part in path[:-1]:
        obj = obj[part]
    obj[path[-1]] = value


def _delete(obj: Any, path: Path) -> None:
    for part in path[:-1]:
        obj = obj[part]
    del obj[path[-1]]


def _make_realistic(draw: st.DrawFn, node: Any, path: Path = ()) -> None:
    """Replace most values of known fields by realistic ones (in place)."""
    items = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
    for key, value in items:
        child = (*path, key)
        choices = _realistic_for(child)
        if choices is not None and draw(st.integers(0, 9)) < 8:
            node[key] = copy.deepcopy(draw(st.sampled_from(choices)))
        else:
            _make_realistic(draw, value, child)


def _schema_at(schema: Obj, path: Path) -> Obj | None:
    """The schema of the value at ``path`` (``None`` off the schema)."""
    node: Any = schema
    for part in path:
        if not isinstance(node, dict):
            return None
        if isinstance(part, int):
            node = node.get("items")
        elif part in (node.get("properties") or {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return node if isinstance(node, dict) else None


def _limits(node: Obj | None) -> list[Any]:
    """Values at and just past every limit the schema sets on a field."""
    if node is None:
        return []
    values: list[Any] = []
    for key, delta in (("maxLength", 1), ("minLength", -1)):
        if key in node:
            n = int(node[key])
            values += ["a" * n, "a" * max(n + delta, 0)]
    for key, delta in (("maximum", 1), ("minimum", -1)):
        if key in node:
            n = int(node[key])
            values += [n, n + delta]
    return values


def _mutate(draw: st.DrawFn, obj: Obj, schema: Obj) -> list[str]:
    """One to three hostile changes; returns what was done (for the failure messages)."""
    done: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        paths = [p for p, _ in _walk(obj) if p]
        if not paths:
            break
        sensitive = [p for p in paths if isinstance(p[-1], str) and p[-1] in SENSITIVE]
        pool = sensitive if sensitive and draw(st.integers(0, 3)) < 3 else paths
        path = draw(st.sampled_from(pool))
        limits = _limits(_schema_at(schema, path))
        how = draw(st.sampled_from(["hostile", "wrong-type", "unknown-field", "delete", "limit"]))
        if how == "limit" and limits:
            value: Any = draw(st.sampled_from(limits))
            _set(obj, path, value)
        elif how in ("hostile", "limit"):
            value = draw(st.sampled_from(draw(st.sampled_from(HOSTILE_CATEGORIES))))
            _set(obj, path, value)
        elif how == "wrong-type":
            value = copy.deepcopy(draw(st.sampled_from(WRONG_TYPES)))
            _set(obj, path, value)
        elif how == "unknown-field":
            parent_path = path[:-1]
            parent: Any = obj
            for part in parent_path:
                parent = parent[part]
            if not isinstance(parent, dict):
                continue
            value = draw(st.sampled_from(["x", "a: b", 1]))
            parent["unknownField"] = value
            path = (*parent_path, "unknownField")
        else:
            _delete(obj, path)
            value = "<deleted>"
        done.append(f"{'.'.join(map(str, path))}={value!r}")
    return done


def _composite(
    draw: st.DrawFn, schema: Obj, exactly_one: list[list[str]], at_most_one: list[list[str]], optional_chance: int
) -> Obj:
    props: dict[str, Obj] = schema["properties"]
    grouped = {k for group in exactly_one + at_most_one for k in group}
    out: Obj = {}
    for key in schema.get("required", []):
        if key not in grouped:
            out[key] = draw(_from_schema(props[key]))
    for group in exactly_one:
        key = draw(st.sampled_from(group))
        out[key] = draw(_from_schema(props[key]))
    for group in at_most_one:
        key = draw(st.sampled_from([None, *group]))
        if key is not None:
            out[key] = draw(_from_schema(props[key]))
    for key, sub in props.items():
        if key in out or key in grouped:
            continue
        if draw(st.integers(0, 9)) < optional_chance:
            out[key] = draw(_from_schema(sub))
    return out


# --------------------------------------------------------------------------- names

NAME_EDGES = [
    "a" * 63,
    "a" * 64,
    "a" * 253,
    "a" * 254,
    "r" * 60,
    "r" * 58,
    "a" * 62 + "b",
    "a" * 61 + "-b",
    "reg.example",
    "1reg",
    "Reg",
    "reg-",
    "-reg",
    "a..b",
    "shared",
]


def names() -> st.SearchStrategy[str]:
    simple = st.from_regex(r"[a-z][a-z0-9-]{0,14}[a-z0-9]", fullmatch=True)
    sized = st.integers(1, 254).map(lambda n: "r" * n)
    dotted = st.lists(st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True), min_size=2, max_size=4).map(".".join)
    hostile = st.one_of(st.sampled_from(NAME_EDGES), sized, dotted)
    # Mostly names that are fine, so that the spec's values get their turn.
    return st.integers(0, 9).flatmap(lambda n: simple if n < 8 else hostile)


# --------------------------------------------------------------------------- ModelRegistry


def _repair_registry(spec: Obj) -> None:
    """Make the spec obey the CEL rules of the CRD (the hostile pass then breaks what it breaks)."""
    pg = spec.get("postgres")
    if isinstance(pg, dict):
        if pg.get("generateDeployment"):
            pg.pop("host", None)
            pg.pop("hostAddress", None)
        elif not pg.get("host") and not pg.get("hostAddress"):
            pg["host"] = "pg.example.svc"
        if pg.get("database") and not pg.get("username"):
            pg["username"] = "mlmduser"
    for db in ("postgres", "mysql"):
        section = spec.get(db)
        if isinstance(section, dict) and ("sslCertificateSecret" in section) != ("sslKeySecret" in section):
            section.pop("sslCertificateSecret", None)
            section.pop("sslKeySecret", None)
    for mode in ("kubeRBACProxy", "oauthProxy"):
        proxy = spec.get(mode)
        if isinstance(proxy, dict) and ("tlsCertificateSecret" in proxy) != ("tlsKeySecret" in proxy):
            proxy.pop("tlsCertificateSecret", None)
            proxy.pop("tlsKeySecret", None)


@st.composite
def registry_specs(draw: st.DrawFn) -> tuple[Obj, list[str]]:
    """A ModelRegistry spec and the hostile changes made to it."""
    schema = spec_schema(MODEL_REGISTRY_CRD)
    spec = _composite(
        draw,
        schema,
        exactly_one=[["postgres", "mysql"]],
        at_most_one=[["kubeRBACProxy", "oauthProxy", "istio"]],
        optional_chance=2,
    )
    spec.setdefault("rest", {})
    _make_realistic(draw, spec)
    if draw(st.integers(0, 9)) < 9:
        _repair_registry(spec)
    return spec, _mutate(draw, spec, schema)


# --------------------------------------------------------------------------- ModelUploadJob


def _repair_upload(spec: Obj) -> None:
    reg = spec.get("registry")
    if isinstance(reg, dict):
        if ("name" in reg) == ("address" in reg):
            reg.pop("address", None)
            reg["name"] = "reg"
        if "name" in reg:
            reg.pop("port", None)
            reg.pop("isSecure", None)
        if "caSecret" in reg and "caConfigMap" in reg:
            reg.pop("caConfigMap")
    src = spec.get("source")
    if isinstance(src, dict) and isinstance(src.get("uri"), dict) and not src["uri"]:
        src["uri"]["uri"] = "https://example.com/model.tar.gz"
    if isinstance(src, dict) and isinstance(src.get("pvc"), dict):
        path = src["pvc"].get("path")
        if isinstance(path, str) and (path.startswith("/") or ".." in path.split("/")):
            src["pvc"]["path"] = "llm/v1"
    intent = spec.get("intent")
    model = spec.setdefault("model", {})
    if not isinstance(model, dict):
        return
    rm = model.setdefault("registeredModel", {})
    mv = model.setdefault("modelVersion", {})
    ma = model.setdefault("modelArtifact", {})
    if intent == "create_model":
        rm.pop("id", None)
        rm.setdefault("name", "llm")
    elif intent == "create_version":
        rm.pop("name", None)
        rm.setdefault("id", "1")
        mv.setdefault("name", "v2")
    else:
        ma.setdefault("id", "12")
        if "id" in rm and "name" in rm:
            rm.pop("name")


@st.composite
def upload_specs(draw: st.DrawFn) -> tuple[Obj, list[str]]:
    """A ModelUploadJob spec and the hostile changes made to it."""
    schema = spec_schema(MODEL_UPLOAD_JOB_CRD)
    props = schema["properties"]
    spec: Obj = {}
    for key in ("registry", "intent", "model", "job"):
        if key in schema.get("required", []) or draw(st.integers(0, 9)) < 5:
            spec[key] = draw(_from_schema(props[key]))
    spec["source"] = _composite(draw, props["source"], [["s3", "uri", "oci", "pvc"]], [], 0)
    spec["destination"] = _composite(draw, props["destination"], [["oci", "s3"]], [], 0)
    _make_realistic(draw, spec)
    if draw(st.integers(0, 9)) < 9:
        _repair_upload(spec)
    return spec, _mutate(draw, spec, schema)


# The ModelRegistry a ModelUploadJob names (registry.name): each way the operator resolves one.
TARGET_REGISTRIES: dict[str, Obj] = {
    "plain": {"rest": {"port": 8080}, "postgres": {"host": "pg", "database": "db", "username": "u"}},
    "kube-rbac-proxy": {"rest": {}, "mysql": {"host": "my", "database": "db", "username": "u"}, "kubeRBACProxy": {}},
    "oauth-proxy": {"rest": {}, "mysql": {"host": "my", "database": "db", "username": "u"}, "oauthProxy": {}},
    "istio": {"rest": {}, "mysql": {"host": "my", "database": "db", "username": "u"}, "istio": {}},
}
