"""Resource quantities: the operator's own parser accepts and refuses what Kubernetes does (the
cases of apimachinery's quantity_test.go, less the negative ones our schema refuses) and returns
the same numbers as the ``kubernetes`` client's parser the API models used before."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity as k8s_parse_quantity

from model_registry_operator.api.common import QUANTITY_SCHEMA, ResourceRequirements
from model_registry_operator.api.quantity import QUANTITY_PATTERN, parse_quantity

ACCEPTED = {
    "0": Decimal(0),
    "0n": Decimal(0),
    "0Ki": Decimal(0),
    "1": Decimal(1),
    "+1": Decimal(1),
    "100m": Decimal("0.1"),
    "1.5": Decimal("1.5"),
    ".5": Decimal("0.5"),
    "5.": Decimal(5),
    "1n": Decimal("1e-9"),
    "1u": Decimal("1e-6"),
    "1k": Decimal(1000),
    "1M": Decimal(10**6),
    "1G": Decimal(10**9),
    "1T": Decimal(10**12),
    "1P": Decimal(10**15),
    "1E": Decimal(10**18),
    "1Ki": Decimal(1024),
    "256Mi": Decimal(256 * 2**20),
    "1.5Gi": Decimal(3 * 2**29),
    "1Ti": Decimal(2**40),
    "1Pi": Decimal(2**50),
    "1Ei": Decimal(2**60),
    "1e3": Decimal(1000),
    "1E3": Decimal(1000),
    "1.5e-3": Decimal("0.0015"),
    "2e+2": Decimal(200),
    "123456789012345678901234567890": Decimal("123456789012345678901234567890"),
    0: Decimal(0),
    3: Decimal(3),
}
"""Quantities Kubernetes accepts, and their values."""

REFUSED = [
    "",
    " 1",
    "1 ",
    "-1",
    "-100m",
    "1.1.M",
    "1+1.0M",
    "0.1mi",
    "0.1am",
    "aoeu",
    ".5i",
    "1i",
    "1ki",
    "1Ki ",
    "1KB",
    "1K",
    "1e",
    "1ee",
    "1e3Mi",
    "1e.5",  # the pattern lets a fractional exponent through, Kubernetes' parser does not
    "1e1.5",
    ".",
    "Mi",
    "0x10",
    "1_000",
    "NaN",
    "Infinity",
    "١",  # an Arabic-Indic digit: Decimal reads it, Kubernetes does not
    -1,
    True,
]
"""Quantities Kubernetes refuses, or that our schema refuses (negative resources)."""


def _previous(value: int | str) -> Decimal:
    """The parser the API models used before: the schema's pattern, then the kubernetes client's."""
    if isinstance(value, bool) or (isinstance(value, str) and not re.fullmatch(QUANTITY_SCHEMA["pattern"], value)):
        raise ValueError(f"refused: {value!r}")
    quantity = Decimal(k8s_parse_quantity(value))  # type: ignore[no-untyped-call]
    if quantity < 0:
        raise ValueError(f"refused: {value!r}")
    return quantity


@pytest.mark.parametrize(("text", "value"), ACCEPTED.items(), ids=[repr(k) for k in ACCEPTED])
def test_accepted(text: int | str, value: Decimal) -> None:
    assert parse_quantity(text) == value
    assert parse_quantity(text) == _previous(text)


@pytest.mark.parametrize("text", REFUSED, ids=repr)
def test_refused(text: int | str) -> None:
    with pytest.raises(ValueError, match="is not a quantity|is negative"):
        parse_quantity(text)
    with pytest.raises(ValueError, match="refused|Invalid|unknown suffix"):
        _previous(text)


def test_schema_pattern_is_the_parsers() -> None:
    assert QUANTITY_SCHEMA["pattern"] == QUANTITY_PATTERN


def _same_as_before(text: int | str) -> None:
    try:
        expected: Decimal | None = _previous(text)
    except (ValueError, ArithmeticError):
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match="is not a quantity|is negative"):
            parse_quantity(text)
    else:
        assert parse_quantity(text) == expected


@given(st.from_regex(QUANTITY_PATTERN, fullmatch=True))
def test_same_as_before_for_what_the_pattern_allows(text: str) -> None:
    """A fractional exponent (``1e.5``) passes the pattern: both parsers refuse it."""
    _same_as_before(text)


@given(st.text(alphabet="0123456789.+-eEiKkMGTPEnum _x", max_size=12) | st.integers(-(10**20), 10**20))
def test_same_as_before_for_any_input(text: int | str) -> None:
    _same_as_before(text)


def test_resources_refuse_what_kubernetes_refuses() -> None:
    """What a user sees: the spec's resources name the key and the bad quantity."""
    with pytest.raises(ValueError, match=r"memory: '1KB' is not a quantity"):
        ResourceRequirements.model_validate({"limits": {"memory": "1KB"}})
    with pytest.raises(ValueError, match=r"requests.memory \(1Gi\) must not exceed limits.memory \(1000Mi\)"):
        ResourceRequirements.model_validate({"limits": {"memory": "1000Mi"}, "requests": {"memory": "1Gi"}})
    ResourceRequirements.model_validate({"limits": {"memory": "1Gi", "cpu": "1.5e3"}, "requests": {"memory": "1G"}})
