"""A stand-in for kube-rbac-proxy that the simulated node runs as the sidecar's process.

The real binary is not built here; this program takes the arguments the operator renders for it
and does what kube-rbac-proxy does with them, against the real API server:

* ``--secure-listen-address`` (TLS from ``--tls-cert-file`` / ``--tls-private-key-file``) proxies
  to ``--upstream``; ``--proxy-endpoints-port`` serves ``/healthz`` over TLS on the same host;
* a request whose path matches ``--ignore-paths`` (shell patterns, as Go's ``path.Match``) is
  proxied without authentication; any other one needs a bearer token that a TokenReview
  authenticates (else 401) and a SubjectAccessReview with the ``resourceAttributes`` of
  ``--config-file`` allows (else 403);
* the reviews are made with the in-cluster configuration: the ServiceAccount token, CA and
  namespace under ``/var/run/secrets/kubernetes.io/serviceaccount`` and ``KUBERNETES_SERVICE_*``.
  Without the token the proxy cannot start, as kube-rbac-proxy cannot.

A listen host ``0.0.0.0`` means the pod's own address: on the simulated node every pod shares
the host's network, and the pod's address is what its hostname resolves to in its ``/etc/hosts``.
Unknown flags (``--logtostderr``, ``--v``) are accepted and ignored.
"""

from __future__ import annotations

import argparse
import fnmatch
import http.client
import http.server
import json
import os
import socket
import ssl
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class Reviews:
    """TokenReview and SubjectAccessReview through the in-cluster configuration."""

    def __init__(self) -> None:
        self.token = (SA_DIR / "token").read_text().strip()
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        self.base = f"https://{host}:{port}"
        self.context = ssl.create_default_context(cafile=str(SA_DIR / "ca.crt"))

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - https to the API server
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, context=self.context, timeout=10) as answer:  # noqa: S310
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def user(self, token: str) -> dict[str, Any] | None:
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        status = self._post("/apis/authentication.k8s.io/v1/tokenreviews", review).get("status") or {}
        return status.get("user") if status.get("authenticated") else None

    def allowed(self, user: dict[str, Any], attributes: dict[str, Any]) -> bool:
        group, _, _version = str(attributes.get("apiVersion", "v1")).rpartition("/")
        spec = {
            "user": user.get("username", ""),
            "groups": user.get("groups") or [],
            "uid": user.get("uid", ""),
            "extra": user.get("extra") or {},
            "resourceAttributes": {
                "group": group,
                "resource": attributes.get("resource", ""),
                "verb": attributes.get("verb", "get"),
                "namespace": attributes.get("namespace", ""),
                "name": attributes.get("name", ""),
            },
        }
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        status = self._post("/apis/authorization.k8s.io/v1/subjectaccessreviews", review).get("status") or {}
        return bool(status.get("allowed"))


def handler(
    upstream: urllib.parse.SplitResult, ignore: list[str], attributes: dict[str, Any], reviews: Reviews
) -> type:
    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

        def _answer(self, code: int, text: str) -> None:
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self, path: str) -> bool:
            if any(fnmatch.fnmatchcase(path, pattern) for pattern in ignore):
                return True
            auth = self.headers.get("Authorization", "")
            user = reviews.user(auth[7:]) if auth.startswith("Bearer ") else None
            if user is None:
                self._answer(401, "Unauthorized")
                return False
            if not reviews.allowed(user, attributes):
                self._answer(403, f"Forbidden (user={user.get('username')}, verb=get, resource=services)")
                return False
            return True

        def _proxy(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if not self._authorized(path):
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            conn = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port or 80, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "host")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
            except OSError as exc:
                self._answer(502, f"upstream: {exc}")
                return
            finally:
                conn.close()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _proxy  # noqa: N815

    return Proxy


class Healthz(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        ok = self.path == "/healthz"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"no")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401
        return


def serve(address: tuple[str, int], handler_class: type, context: ssl.SSLContext) -> http.server.HTTPServer:
    server = http.server.ThreadingHTTPServer(address, handler_class)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kube-rbac-proxy")
    parser.add_argument("--secure-listen-address", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--proxy-endpoints-port", type=int, default=0)
    parser.add_argument("--ignore-paths", default="")
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--tls-cert-file", required=True)
    parser.add_argument("--tls-private-key-file", required=True)
    args, _unknown = parser.parse_known_args(argv)
    host, _, port = args.secure_listen_address.rpartition(":")
    if host in ("", "0.0.0.0"):  # noqa: S104 - all of the pod's addresses: its pod IP here
        host = socket.gethostbyname(os.environ["HOSTNAME"])
    config = yaml.safe_load(Path(args.config_file).read_text()) or {}
    attributes = (config.get("authorization") or {}).get("resourceAttributes") or {}
    reviews = Reviews()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.tls_cert_file, args.tls_private_key_file)
    ignore = [p for p in args.ignore_paths.split(",") if p]
    upstream = urllib.parse.urlsplit(args.upstream)
    servers = [serve((host, int(port)), handler(upstream, ignore, attributes, reviews), context)]
    if args.proxy_endpoints_port:
        servers.append(serve((host, args.proxy_endpoints_port), Healthz, context))
    print(f"kube-rbac-proxy stand-in: {host}:{port} -> {args.upstream}, ignoring {ignore}", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
