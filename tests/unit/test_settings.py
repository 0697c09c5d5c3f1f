"""Operator settings: upstream env names, typed, a bad value names the variable."""

from __future__ import annotations

import pytest

from model_registry_operator.settings import load_settings, parse_labels


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE", "REGISTRIES_NAMESPACE", "REST_IMAGE"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    assert settings.registry_image == "quay.io/opendatahub/model-registry:latest"
    assert settings.postgres_image == "quay.io/sclorg/postgresql-16-c10s:latest"
    assert settings.registries_namespace == ""
    assert settings.resync_seconds == 300


def test_upstream_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELATED_IMAGE_ODH_MODEL_REGISTRY_IMAGE", "mirror/mr:2")
    monkeypatch.setenv("RELATED_IMAGE_POSTGRESQL_16_IMAGE", "mirror/pg:16")
    monkeypatch.setenv("REGISTRIES_NAMESPACE", "odh-model-registries")
    monkeypatch.setenv("DEFAULT_DOMAIN", "apps.example.com")
    monkeypatch.setenv("DEFAULT_AUTH_CONFIG_LABELS", "security.opendatahub.io/authorization-group=default, a=b")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.registry_image == "mirror/mr:2"
    assert settings.postgres_image == "mirror/pg:16"
    assert settings.registries_namespace == "odh-model-registries"
    assert settings.default_domain == "apps.example.com"
    assert settings.auth_config_labels == {"security.opendatahub.io/authorization-group": "default", "a": "b"}
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("RESYNC_INTERVAL_SECONDS", "soon"),
        ("DATABASE_PROBE", "maybe"),
        ("HEALTH_PROBE_PORT", "0"),
        ("DEFAULT_AUTH_CONFIG_LABELS", "novalue"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=var):
        load_settings()


def test_parse_labels() -> None:
    assert parse_labels("") == {}
    assert parse_labels("a=1,b=") == {"a": "1", "b": ""}
    with pytest.raises(ValueError, match="key=value"):
        parse_labels("=x")
