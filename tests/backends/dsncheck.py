"""DSNs parsed by the registry server's own drivers (hack/dsncheck, built by `make deps`).

`parse_dsns([(driver, dsn), ...])` runs the checker once for the whole batch and returns one
dict per DSN, in order: `{"ok": True, "host", "port", "database", "user", "password", "tls",
"params"}` or `{"ok": False, "error"}` (see hack/dsncheck/main.go for the fields' meaning).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.backends.process import require_binary

__all__ = ["parse_dsns"]


def parse_dsns(items: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Parse (driver, dsn) pairs, driver "mysql" or "postgres", with one checker process."""
    if not items:
        return []
    binary = require_binary("dsncheck")
    lines = "".join(json.dumps({"driver": driver, "dsn": dsn}) + "\n" for driver, dsn in items)
    done = subprocess.run(  # noqa: S603 - our own checker, fixed argv
        [binary], input=lines, capture_output=True, text=True, timeout=120, check=False, env={}
    )
    if done.returncode != 0:
        raise RuntimeError(f"dsncheck exited with {done.returncode}: {done.stderr.strip()}")
    # Lines end at "\n" only: splitlines() would also split at \x85 or U+2028 inside a value.
    results = [json.loads(line) for line in done.stdout.split("\n") if line.strip()]
    if len(results) != len(items):
        raise RuntimeError(f"dsncheck answered {len(results)} lines for {len(items)} DSNs: {done.stderr.strip()}")
    return results
