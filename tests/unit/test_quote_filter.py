"""The `quote` filter: every string a template inserts reads back as exactly that string."""

from __future__ import annotations

import pytest
import yaml

from model_registry_operator.render.engine import environment


@pytest.mark.parametrize(
    "value",
    [
        "quay.io/x:🚀",  # issue 12: beyond the BMP, once a render error retried every 5 s
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and \u2028 line separator, \x85 next line",
        "tls.key\n  - --ignore-paths=/*",
        "a: b",
        '\'"{{ x }}" # not a comment',
        "\t\x00\x1b",
        "",
    ],
)
def test_quote_reads_back_as_the_value(value: str) -> None:
    template = environment().from_string("key: {{ value | quote }}\n")
    assert yaml.safe_load(template.render(value=value)) == {"key": value}
