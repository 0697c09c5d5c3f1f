"""A real S3 server for tests: SeaweedFS ``weed mini`` on free 127.0.0.1 ports, SigV4 enforced.

Two identities: ``admin`` (every action) and ``reader`` (List only, so GetObject answers
AccessDenied).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

import requests

from tests.backends.process import LOOPBACK, ManagedProcess, free_port, require_binary

ADMIN_KEY, ADMIN_SECRET = "admin-akid", "admin-secret-0123456789"
READER_KEY, READER_SECRET = "reader-akid", "reader-secret-9876543210"


class SeaweedS3:
    def __init__(self, workdir: Path | None = None) -> None:
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="weed-")
        self.workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.port = 0
        self.proc: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        weed = require_binary("weed")
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": ADMIN_KEY, "secretKey": ADMIN_SECRET}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                },
                {
                    "name": "reader",
                    "credentials": [{"accessKey": READER_KEY, "secretKey": READER_SECRET}],
                    "actions": ["List"],
                },
            ]
        }
        cfg = self.workdir / "s3.json"
        cfg.write_text(json.dumps(identities))
        self.port = free_port()
        ports = {
            name: free_port()
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port.grpc",
                "admin.port",
                "admin.port.grpc",
            )
        }
        argv = [
            weed,
            "mini",
            f"-dir={data}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            f"-s3.port={self.port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={cfg}",
            "-master.volumeSizeLimitMB=256",
        ]
        argv += [f"-{k}={v}" for k, v in ports.items()]
        self.proc = ManagedProcess("weed", argv, self.workdir)

        def ready() -> bool:
            return requests.get(self.endpoint + "/", timeout=1).status_code in (200, 403)

        self.proc.start(ready, timeout=60)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
