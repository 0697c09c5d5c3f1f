"""The admission webhooks' decisions (pure) and their own serving certificate."""

from __future__ import annotations

import base64
import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES, Capabilities
from model_registry_operator.settings import OperatorSettings
from model_registry_operator.webhooks.admission import Registry, default_spec, shared_objects, validate
from model_registry_operator.webhooks.certificates import (
    CA_FILE,
    SERVING_FILE,
    Material,
    generate,
    needs_renewal,
    service_names,
    write_files,
)

OPENSHIFT = Capabilities(openshift_routes=True, openshift_users=True)
PG = {"host": "db", "database": "mr", "username": "u", "passwordSecret": {"name": "s", "key": "k"}}


def spec(**extra: Any) -> dict[str, Any]:
    return {"rest": {}, "postgres": dict(PG), **extra}


def settings(**env: str) -> OperatorSettings:
    return OperatorSettings(**env)  # type: ignore[arg-type]


# -- mutation --------------------------------------------------------------------------------


def test_default_spec_writes_the_upstream_defaults() -> None:
    given = {"rest": {}, "postgres": dict(PG), "kubeRBACProxy": {}}
    assert default_spec(given) == {
        "rest": {"serviceRoute": "disabled"},
        "postgres": PG,
        "kubeRBACProxy": {"serviceRoute": "enabled"},
    }
    assert given == {"rest": {}, "postgres": PG, "kubeRBACProxy": {}}  # not mutated in place


def test_default_spec_keeps_what_the_user_chose() -> None:
    given = {"rest": {"serviceRoute": "enabled"}, "mysql": {"host": "db"}, "oauthProxy": {"serviceRoute": "disabled"}}
    assert default_spec(given) == given


def test_default_spec_drops_database_blocks_without_a_host() -> None:
    """A defaulted-but-empty block (what some tools write) next to the real database goes."""
    assert default_spec({"rest": {}, "mysql": {"host": "db"}, "postgres": {"port": 5432}}) == {
        "rest": {"serviceRoute": "disabled"},
        "mysql": {"host": "db"},
    }
    assert default_spec({"rest": {}, "postgres": dict(PG), "mysql": {"port": 3306}})["postgres"] == PG
    assert "mysql" not in default_spec({"rest": {}, "postgres": dict(PG), "mysql": {"port": 3306}})
    # generateDeployment needs no host; hostAddress is a host.
    kept = {"rest": {"serviceRoute": "disabled"}, "postgres": {"generateDeployment": True}}
    assert default_spec(kept) == kept
    assert default_spec({"rest": {}, "postgres": {"hostAddress": "10.0.0.1"}})["postgres"] == {
        "hostAddress": "10.0.0.1"
    }


def test_default_spec_of_a_missing_rest_and_spec() -> None:
    assert default_spec(None) == {"rest": {"serviceRoute": "disabled"}}


# -- validation ------------------------------------------------------------------------------


def test_a_plain_registry_passes() -> None:
    new = Registry("a", "reg", spec())
    assert validate(new, None, [Registry("b", "reg", spec())], settings(), PLAIN_KUBERNETES) == []


def test_registries_namespace_names_the_field() -> None:
    problems = validate(
        Registry("elsewhere", "reg", spec()), None, [], settings(REGISTRIES_NAMESPACE="mr"), PLAIN_KUBERNETES
    )
    assert [str(p) for p in problems] == [
        "metadata.namespace: registries must be created in namespace mr (REGISTRIES_NAMESPACE), not elsewhere"
    ]
    assert (
        validate(Registry("mr", "reg", spec()), None, [], settings(REGISTRIES_NAMESPACE="mr"), PLAIN_KUBERNETES) == []
    )


def test_same_name_with_a_proxy_in_another_namespace_is_refused_naming_the_binding() -> None:
    first = Registry("a", "reg", spec(kubeRBACProxy={}))
    second = Registry("b", "reg", spec(oauthProxy={}))
    problems = validate(
        second, None, [first, Registry("c", "other", spec(kubeRBACProxy={}))], settings(), PLAIN_KUBERNETES
    )
    assert len(problems) == 1
    assert problems[0].field == "metadata.name"
    assert "ModelRegistry a/reg already has this name" in problems[0].message
    assert "ClusterRoleBinding reg-auth-delegator" in problems[0].message


def test_same_name_without_a_shared_object_passes() -> None:
    """Plain Kubernetes, one side without a proxy: nothing cluster-scoped is named twice."""
    assert (
        validate(
            Registry("b", "reg", spec(kubeRBACProxy={})),
            None,
            [Registry("a", "reg", spec())],
            settings(),
            PLAIN_KUBERNETES,
        )
        == []
    )
    # The same namespace is the same object (an update of itself), not a conflict.
    assert (
        validate(
            Registry("a", "reg", spec(kubeRBACProxy={})),
            None,
            [Registry("a", "reg", spec(kubeRBACProxy={}))],
            settings(),
            PLAIN_KUBERNETES,
        )
        == []
    )


def test_on_openshift_every_registry_names_its_group() -> None:
    problems = validate(
        Registry("b", "reg", spec()), None, [Registry("a", "reg", spec(), deleting=True)], settings(), OPENSHIFT
    )
    assert len(problems) == 1
    assert "ModelRegistry a/reg (being deleted) already has this name" in problems[0].message
    assert "Group reg-users" in problems[0].message


def test_the_gateway_httproute_is_shared_too() -> None:
    gw = settings(GATEWAY_DOMAIN="apps.example.com")
    caps = Capabilities(gateway_api=True)
    refs = shared_objects(Registry("a", "reg", spec()), gw, caps)
    assert ("HTTPRoute", "redhat-ods-applications", "model-registry-reg") in refs
    assert validate(Registry("b", "reg", spec()), None, [Registry("a", "reg", spec())], gw, caps)


def test_updates_are_refused_only_for_what_they_add() -> None:
    first = Registry("a", "reg", spec(kubeRBACProxy={}))
    before = Registry("b", "reg", spec())
    after = Registry("b", "reg", spec(kubeRBACProxy={}))
    assert validate(after, before, [first, before], settings(), PLAIN_KUBERNETES)  # adds the binding
    # Already in conflict (created while the webhook was down): other edits still pass.
    edited = Registry("b", "reg", spec(kubeRBACProxy={"port": 8444}))
    assert validate(edited, after, [first, after], settings(), PLAIN_KUBERNETES) == []


def test_metadata_only_updates_and_deletions_always_pass() -> None:
    """kopf's finalizer on a registry stored before REGISTRIES_NAMESPACE was set must come off."""
    strict = settings(REGISTRIES_NAMESPACE="mr")
    stored = Registry("elsewhere", "reg", spec())
    assert validate(stored, stored, [], strict, PLAIN_KUBERNETES) == []
    assert validate(Registry("elsewhere", "reg", spec(), deleting=True), None, [], strict, PLAIN_KUBERNETES) == []


def test_spec_rules_and_mode_settings_name_the_field() -> None:
    both = validate(
        Registry(
            "a", "reg", {"rest": {}, "postgres": dict(PG), "mysql": {"host": "m", "database": "d", "username": "u"}}
        ),
        None,
        [],
        settings(),
        PLAIN_KUBERNETES,
    )
    assert [p.field for p in both] == ["spec.mysql"]
    istio = validate(
        Registry("a", "reg", spec(istio={})),
        None,
        [],
        settings(),
        Capabilities(istio=True, istio_security=True, authorino=True),
    )
    assert [str(p) for p in istio] == [
        "spec.istio.authProvider: missing, and the operator environment variable DEFAULT_AUTH_PROVIDER is not set"
    ]


# -- certificates ----------------------------------------------------------------------------


def test_generated_certificate_serves_the_service_names_and_verifies_against_the_bundle(tmp_path: Path) -> None:
    names = service_names("webhook", "ops", ["127.0.0.1"])
    assert names[:3] == ["webhook", "webhook.ops", "webhook.ops.svc"]
    material = generate(names, datetime.timedelta(days=1))
    assert {"webhook.ops.svc", "127.0.0.1"} <= material.names()
    write_files(tmp_path, material)
    assert (tmp_path / SERVING_FILE).stat().st_mode & 0o077 == 0  # the key is the operator's alone
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / SERVING_FILE, tmp_path / SERVING_FILE)  # one file: cert and key
    client = ssl.create_default_context(cafile=str(tmp_path / CA_FILE))
    leaf = x509.load_pem_x509_certificate(material.cert)
    ca = x509.load_pem_x509_certificate(material.ca)
    leaf.verify_directly_issued_by(ca)
    assert client.verify_mode == ssl.CERT_REQUIRED
    assert not write_files(tmp_path, material)  # unchanged: nothing rewritten, the server not restarted


def test_renewal_is_due_a_third_before_expiry_and_keeps_the_previous_ca() -> None:
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    names = ["webhook.ops.svc"]
    first = generate(names, datetime.timedelta(hours=3), now=lambda: start)
    assert not needs_renewal(first, names, now=lambda: start + datetime.timedelta(hours=1))
    assert needs_renewal(first, names, now=lambda: start + datetime.timedelta(hours=2, minutes=1))
    assert needs_renewal(first, [*names, "other.name"], now=lambda: start)  # names changed
    later = start + datetime.timedelta(hours=2, minutes=1)
    second = generate(names, datetime.timedelta(hours=3), previous=first, now=lambda: later)
    assert second.bundle == second.ca + first.ca  # replicas still serving the old one stay trusted
    expired = generate(
        names, datetime.timedelta(hours=3), previous=first, now=lambda: start + datetime.timedelta(hours=4)
    )
    assert expired.bundle == expired.ca


def test_material_round_trips_through_the_secret() -> None:
    first = generate(["a"], datetime.timedelta(hours=3))
    second = generate(["a"], datetime.timedelta(hours=3), previous=first)
    secret = {"data": second.as_secret_data()}
    assert Material.from_secret(secret) == second
    assert base64.b64decode(secret["data"]["tls.crt"]) == second.cert
    assert Material.from_secret({"data": {"tls.crt": "bm9wZQ=="}}) is None


@pytest.mark.parametrize("value", ["files", "operator"])
def test_cert_source_setting(value: str) -> None:
    assert settings(WEBHOOK_CERT_SOURCE=value).webhook_cert_source == value
