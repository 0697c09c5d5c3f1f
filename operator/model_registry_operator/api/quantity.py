"""Kubernetes resource quantities (``100m``, ``256Mi``, ``1.5e3``) as numbers.

Hand-written, because the API models and the pure render layer must not import a Kubernetes
client. What was tried (December 2026): ``kubernetes.utils.parse_quantity``, used here before,
is part of the whole ``kubernetes`` client; ``lightkube.utils.quantity`` and ``kr8s`` are
Kubernetes clients too (the same dependency in another name); ``pint`` knows physical units,
not Kubernetes' suffixes (``Ki`` / ``Mi`` are base 1024, ``m`` is milli, ``E`` is exa, not an
exponent); no maintained package on PyPI parses quantities alone. The grammar is
apimachinery's (``k8s.io/apimachinery/pkg/api/resource/quantity.go``), the arithmetic the
``kubernetes`` client's, so every value compares equal to what it returned
(``tests/unit/test_quantity.py`` checks both against each other).
"""

from __future__ import annotations

import re
from decimal import Decimal, DecimalException, InvalidOperation

QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
"""apimachinery's quantity grammar without its sign (Kubernetes refuses negative resources):
a decimal number, then a binary suffix, a decimal SI suffix or a decimal exponent."""
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)

_EXPONENTS = {"n": -3, "u": -2, "m": -1, "k": 1, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
"""Suffix -> power of 1000 (of 1024 with a trailing ``i``: ``Ki`` .. ``Ei``)."""


def parse_quantity(value: int | str) -> Decimal:
    """A Kubernetes quantity as a number; ``ValueError`` for anything Kubernetes refuses and for
    a negative integer."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a quantity (e.g. 100m, 256Mi, 1)")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return Decimal(value)
    if not _QUANTITY_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a quantity (e.g. 100m, 256Mi, 1)")
    number, base, power = value, 1, 0
    if value.endswith("i"):
        number, base, power = value[:-2], 1024, _EXPONENTS[value[-2]]
    elif value[-1] in _EXPONENTS:
        number, base, power = value[:-1], 1000, _EXPONENTS[value[-1]]
    try:
        parsed = Decimal(number)  # the exponent form (1.5e3) is Decimal's own syntax
    except InvalidOperation:  # a fractional exponent (1e.5): the pattern allows it, Kubernetes does not
        raise ValueError(f"{value!r} is not a quantity (e.g. 100m, 256Mi, 1)") from None
    try:
        return parsed if base == 1 else parsed * (base ** Decimal(power))
    except DecimalException as exc:
        raise ValueError(f"{value!r} is out of range") from exc
