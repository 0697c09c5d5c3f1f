"""nginx for tests on a free 127.0.0.1 port: :class:`NginxProcess`, and on it :class:`NginxServer`, a real HTTP
file server with Range support."""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from pathlib import Path

import requests

from tests.backends.process import LOOPBACK, Backend, ManagedProcess, free_port, require_binary

BASIC_USER, BASIC_PASSWORD = "web-user", "web-basic-pass-5173"
"""The credentials of :class:`NginxServer` ``/protected/`` in the ``nginx_basic_auth`` fixture."""


class NginxProcess(Backend):
    """nginx run from a throwaway directory on a free 127.0.0.1 port; a subclass gives what goes in its
    ``http`` block after the temp paths (:meth:`http_config`) and when it is up (:meth:`ready`)."""

    scheme = "http"
    process_name = "nginx"

    def __init__(self, prefix: str = "nginx-") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.workdir = Path(self._tmp.name)
        self.port = 0
        self.proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}"

    def http_config(self) -> str:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        nginx = require_binary("nginx", "/usr/sbin/nginx")
        self.port = free_port()
        tmp = self.workdir / "tmp"
        tmp.mkdir()
        conf = self.workdir / "nginx.conf"
        conf.write_text(f"""
daemon off;
worker_processes 1;
pid {self.workdir}/nginx.pid;
error_log {self.workdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
{self.http_config()}}}
""")
        self.proc = ManagedProcess(self.process_name, [nginx, "-p", str(self.workdir), "-c", str(conf)], self.workdir)
        self.proc.start(self.ready)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
        self._tmp.cleanup()


class NginxServer(NginxProcess):
    """Static files from :attr:`root` (:meth:`publish`), with Range support.

    Optional locations: with ``basic_auth=(user, password)`` the files under ``/protected/``
    answer 401 without those credentials (``auth_basic``); with ``rate_limit`` (bytes per second)
    the files under ``/slow/`` are sent at most that fast, per request (``limit_rate``: up to
    ``rate_limit`` bytes at once, then as much again at each further second of the request).
    """

    def __init__(self, *, basic_auth: tuple[str, str] | None = None, rate_limit: int | None = None) -> None:
        super().__init__("nginx-")
        self.root = self.workdir / "www"
        self.basic_auth = basic_auth
        self.rate_limit = rate_limit

    def start(self) -> None:
        self.root.mkdir()
        for p in (self.workdir, self.root):
            p.chmod(0o755)  # workers run as nobody
        if self.basic_auth is not None:
            user, password = self.basic_auth
            salt = os.urandom(8)
            digest = base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()  # noqa: S324
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(f"{user}:{{SSHA}}{digest}\n")  # RFC 2307 salted SHA-1, read by nginx
            htpasswd.chmod(0o644)
        super().start()

    def http_config(self) -> str:
        locations = ""
        if self.basic_auth is not None:
            locations += f"""    location /protected/ {{
      auth_basic "upload tests";
      auth_basic_user_file {self.workdir / "htpasswd"};
    }}
"""
        if self.rate_limit is not None:
            locations += f"""    location /slow/ {{
      limit_rate {self.rate_limit};
    }}
"""
        return f"""  default_type application/octet-stream;
  sendfile on;
  server {{
    listen {LOOPBACK}:{self.port};
    root {self.root};
{locations}  }}
"""

    def ready(self) -> bool:
        return requests.get(self.url + "/", timeout=1).status_code in (200, 403, 404)

    def publish(self, rel: str, data: bytes) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in [path.parent, *path.parent.parents]:
            if parent == self.root.parent:
                break
            parent.chmod(0o755)
        path.write_bytes(data)
        path.chmod(0o644)
        return f"{self.url}/{rel}"
