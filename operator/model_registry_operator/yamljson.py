"""JSON text that YAML parsers read back as the same value.

JSON is YAML 1.2, but for one case: JSON writes a character beyond the Basic Multilingual Plane
as a UTF-16 surrogate pair (`\\ud83d\\ude80`), which YAML (PyYAML, and the Go parser behind the API
server's apply-patch+yaml) reads as two invalid characters. YAML's own escape for it is
`\\U0001f680`. Writing UTF-8 instead (`ensure_ascii=False`) was tried and dropped: it puts raw
control characters (DEL, C1) into the text, which YAML refuses too. So: ASCII JSON, with each
surrogate pair rewritten as one `\\U` escape.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE_PAIR = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def _astral(match: re.Match[str]) -> str:
    high, low = int(match.group(1), 16) - 0xD800, int(match.group(2), 16) - 0xDC00
    return f"\\U{0x10000 + (high << 10) + low:08x}"


def dumps(value: Any) -> str:
    """``value`` as JSON text that is also YAML for the same value."""
    text = json.dumps(value)
    return _SURROGATE_PAIR.sub(_astral, text) if "\\ud" in text else text
