"""Values reach the ModelRegistry manifests as the values they are: templates insert them only
through `quote` / `toyaml`, and container arguments carry `$` doubled (the kubelet expands
`$(VAR)`)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from model_registry_operator.api.common import SecretKeyValue
from model_registry_operator.api.modelregistry import ModelRegistrySpec
from model_registry_operator.api.validation import parse_spec
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES
from model_registry_operator.render.database import DatabaseSecrets
from model_registry_operator.render.defaults import apply_runtime_defaults
from model_registry_operator.render.engine import TEMPLATES_DIR
from model_registry_operator.render.escaping import no_expansion
from model_registry_operator.render.modelregistry import RegistryRef, RenderInputs, render_model_registry
from model_registry_operator.settings import OperatorSettings

Obj = dict[str, Any]

EXPRESSION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.DOTALL)
SAFE_ENDINGS = re.compile(r"\|\s*(quote|toyaml(\(\s*\d*\s*\))?|b64)$")
# Integers of validated int fields (ge=1, le=65535): they cannot carry YAML syntax.
NUMBERS = {"proxy.port", "spec.rest.port", "grpc_port", "backend_port"}
PG = {"host": "pg.db.svc", "database": "model_registry", "username": "mlmduser"}


def _expressions() -> list[tuple[str, str]]:
    found = []
    for path in sorted((TEMPLATES_DIR / "modelregistry").rglob("*.j2")):
        text = re.sub(r"{#.*?#}", "", path.read_text(), flags=re.DOTALL)
        found += [(str(path.relative_to(TEMPLATES_DIR)), expr) for expr in EXPRESSION.findall(text)]
    return found


def test_templates_insert_values_only_quoted_or_as_yaml() -> None:
    expressions = _expressions()
    assert len(expressions) > 50
    unsafe = [
        f"{path}: {{{{ {expr} }}}}"
        for path, expr in expressions
        if not SAFE_ENDINGS.search(expr) and expr not in NUMBERS and not expr.startswith("metadata(")
    ]
    assert unsafe == []


def _render(spec: ModelRegistrySpec) -> list[Obj]:
    settings = OperatorSettings()
    ref = RegistryRef("reg", "ns", "uid")
    inputs = RenderInputs(DatabaseSecrets(password="pw"), "", "d", "cookie-0123456789abcdef")
    return render_model_registry(ref, spec, settings, PLAIN_KUBERNETES, inputs)


def _containers(objects: list[Obj]) -> dict[str, Obj]:
    [deployment] = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "reg"]
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def _effective(raw: Obj) -> ModelRegistrySpec:
    spec, problems = parse_spec(raw)
    assert spec is not None, problems
    return apply_runtime_defaults(spec, OperatorSettings(), "reg")


def test_no_expansion_doubles_every_dollar() -> None:
    assert no_expansion("$(A)$$B$") == "$$(A)$$$$B$$"
    assert no_expansion("plain") == "plain"


def test_issue_example_ssl_cipher_variable_stays_literal() -> None:
    """Issue 12: `mysql.sslCipher: "$(MR_EMBEDMD_DATABASE_DSN)"` made the kubelet put the DSN,
    password included, into argv. The schema refuses it now, and an object that skipped the
    schema renders `$$(`, which the kubelet passes on as the literal `$(`."""
    cipher = "$(MR_EMBEDMD_DATABASE_DSN)"
    mysql = {"host": "db", "database": "model_registry", "username": "mlmduser"}
    spec, problems = parse_spec({"rest": {}, "mysql": {**mysql, "sslCipher": cipher}})
    assert spec is None
    assert [p.field for p in problems] == ["spec.mysql.sslCipher"]
    effective = _effective({"rest": {}, "mysql": mysql})
    assert effective.mysql is not None
    unchecked = effective.model_copy(update={"mysql": effective.mysql.model_copy(update={"ssl_cipher": cipher})})
    args = _containers(_render(unchecked))["rest-container"]["args"]
    assert "--embedmd-database-ssl-cipher=$$(MR_EMBEDMD_DATABASE_DSN)" in args
    assert not [a for a in args if re.search(r"(?<!\$)\$\(", a)]


def test_legitimate_cipher_lists_are_accepted() -> None:
    for cipher in ("TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384:!aNULL:@STRENGTH", "AES128-SHA,AES256-SHA"):
        spec, problems = parse_spec({"rest": {}, "mysql": {**PG, "sslCipher": cipher}})
        assert spec is not None, (cipher, problems)


@pytest.mark.parametrize(
    "key",
    ["tls.key\n  - --ignore-paths=/*", "a: b", "k'\"{x}[y]#z", "$(HOME)", "- item"],
    ids=["issue-example-newline-argument", "issue-example-colon-map", "yaml-syntax", "variable", "dash"],
)
@pytest.mark.parametrize("mode", ["kubeRBACProxy", "oauthProxy"])
def test_issue_example_proxy_tls_key_renders_as_one_argument(mode: str, key: str) -> None:
    """Issue 12: `kubeRBACProxy.tlsKeySecret.key: "tls.key\\n  - --ignore-paths=/*"` added an
    argument to kube-rbac-proxy (an auth bypass) and `a: b` turned an argument into a map. The
    schema refuses such keys (naming the field); an object that skipped the schema still renders
    the key inside one string argument, `$` doubled."""
    spec, problems = parse_spec(
        {
            "rest": {},
            "postgres": PG,
            mode: {"tlsCertificateSecret": {"name": "t", "key": "tls.crt"}, "tlsKeySecret": {"name": "t", "key": key}},
        }
    )
    assert spec is None
    assert f"spec.{mode}.tlsKeySecret.key" in [p.field for p in problems]

    effective = _effective({"rest": {}, "postgres": PG, mode: {}})
    attr = "kube_rbac_proxy" if mode == "kubeRBACProxy" else "oauth_proxy"
    proxy = getattr(effective, attr)
    bad = SecretKeyValue.model_construct(name="t", key=key)
    unchecked = effective.model_copy(update={attr: proxy.model_copy(update={"tls_key_secret": bad})})
    container = _containers(_render(unchecked))["kube-rbac-proxy" if mode == "kubeRBACProxy" else "oauth-proxy"]
    args = container["args"]
    assert all(isinstance(a, str) for a in args)
    flag = "--tls-private-key-file" if mode == "kubeRBACProxy" else "--tls-key"
    assert [a for a in args if a.startswith(flag)] == [f"{flag}=/etc/tls/private-key/{no_expansion(key)}"]
    # Only the probes' health paths are left open, nothing the key could add.
    ignored = [a for a in args if a.startswith("--ignore-paths")]
    assert ignored == ([] if mode != "kubeRBACProxy" else ["--ignore-paths=/readyz/isDirty,/readyz/health"])
    expected_count = 9 if mode == "kubeRBACProxy" else 10
    assert len(args) == expected_count, args
