"""A real OCI registry for tests: Debian's CNCF distribution ``docker-registry``.

Auth modes: none, ``htpasswd`` (bcrypt basic auth) and ``token`` (the registry answers 401 with a
``Bearer realm=...`` challenge; :class:`TokenServer` checks basic credentials and issues ES256
JWTs whose ``x5c`` chains to the test CA). Optional TLS with a certificate of the test CA.
Also builds and pushes a small multi-arch busybox base image (from Debian busybox-static).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.backends.certs import CertificateAuthority
from tests.backends.process import LOOPBACK, Backend, ManagedProcess, free_port, require_binary

USER, PASSWORD = "ci-user", "ci-registry-pass-42"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Docker token-auth service: GET /token?service=&scope= with basic auth -> {"token": JWT}."""

    def __init__(self, ca: CertificateAuthority, service: str, issuer: str) -> None:
        pair = ca.issue_server(common_name="token-signer")
        self.cert_der = x509.load_pem_x509_certificate(pair.cert_pem.encode()).public_bytes(serialization.Encoding.DER)
        key = serialization.load_pem_private_key(pair.key_pem.encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.key = key
        self.service = service
        self.issuer = issuer
        self.issued = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401
                pass

            def do_GET(self) -> None:  # noqa: N802
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                query = parse_qs(urlsplit(self.path).query)
                body = json.dumps({"token": server.token(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://{LOOPBACK}:{self.httpd.server_address[1]}/token"

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            for item in scope.split(" "):
                kind, _, rest = item.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": USER,
            "aud": self.service,
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now,
            "jti": str(now) + str(self.issued),
            "access": access,
        }
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        self.issued += 1
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class DistributionRegistry(Backend):
    def __init__(self, auth: bool | str = False, tls: bool = False) -> None:
        self.auth_mode = "htpasswd" if auth is True else (auth or "none")
        self.auth = self.auth_mode != "none"
        self.tls = tls
        self._tmp = tempfile.TemporaryDirectory(prefix="registry-")
        self.workdir = Path(self._tmp.name)
        self.port = 0
        self.proc: ManagedProcess | None = None
        self.ca: CertificateAuthority | None = None
        self.ca_file: Path | None = None
        self.token_server: TokenServer | None = None

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def start(self) -> None:
        binary = require_binary("docker-registry", "/usr/bin/docker-registry")
        self.port = free_port()
        lines = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {self.workdir / 'data'}}}, delete: {{enabled: true}}}}",
            "http:",
            f"  addr: {self.host}",
            "  secret: test-only-secret",
        ]
        if self.tls or self.auth_mode == "token":
            self.ca = CertificateAuthority("upload-test registry CA")
            self.ca_file = self.workdir / "ca.crt"
            self.ca_file.write_text(self.ca.cert_pem)
        if self.tls:
            assert self.ca is not None
            crt, key = self.ca.issue_server().write(self.workdir, "server")
            lines.append(f"  tls: {{certificate: {crt}, key: {key}}}")
        if self.auth_mode == "token":
            self.token_server = TokenServer(self.ca, "test-registry", "test-issuer")  # type: ignore[arg-type]
            lines.append(
                f"auth: {{token: {{realm: '{self.token_server.realm}', service: test-registry, "
                f"issuer: test-issuer, rootcertbundle: {self.ca_file}}}}}"
            )
        elif self.auth:
            htpasswd = require_binary("htpasswd")
            out = subprocess.run([htpasswd, "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True)
            (self.workdir / "htpasswd").write_text(out.stdout.strip() + "\n")
            lines.append(f"auth: {{htpasswd: {{realm: test-registry, path: {self.workdir / 'htpasswd'}}}}}")
        cfg = self.workdir / "config.yml"
        cfg.write_text("\n".join(lines) + "\n")
        self.proc = ManagedProcess("registry", [binary, "serve", str(cfg)], self.workdir)

        def ready() -> bool:
            verify = str(self.ca_file) if self.tls else True
            return requests.get(self.url + "/v2/", timeout=1, verify=verify).status_code in (200, 401)

        self.proc.start(ready)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
        if self.token_server is not None:
            self.token_server.stop()
        self._tmp.cleanup()

    # -- plain distribution-API helpers (independent of the code under test) ---------------

    def session(self) -> requests.Session:
        s = requests.Session()
        if self.tls:
            s.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment beats Session.verify
            s.verify = str(self.ca_file)
        if self.auth_mode == "htpasswd":
            s.auth = (USER, PASSWORD)
        elif self.token_server is not None:
            scope = "registry:catalog:* repository:*:pull,push"
            s.headers["Authorization"] = "Bearer " + self.token_server.token(
                [f"repository:{r}:pull,push" for r in ("base/busybox", "models/tls", "models/token")] + [scope]
            )
        return s

    def push_blob(self, repo: str, data: bytes) -> str:
        s = self.session()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if s.head(f"{self.url}/v2/{repo}/blobs/{digest}", timeout=10).status_code == 200:
            return digest
        r = s.post(f"{self.url}/v2/{repo}/blobs/uploads/", timeout=10)
        assert r.status_code == 202, r.text
        loc = r.headers["Location"]
        loc = loc if "://" in loc else self.url + loc
        sep = "&" if "?" in loc else "?"
        r = s.put(
            f"{loc}{sep}digest={digest}", data=data, headers={"Content-Type": "application/octet-stream"}, timeout=30
        )
        assert r.status_code == 201, r.text
        return digest

    def put_manifest(self, repo: str, ref: str, manifest: dict[str, Any], media_type: str) -> str:
        raw = json.dumps(manifest).encode()
        r = self.session().put(
            f"{self.url}/v2/{repo}/manifests/{ref}", data=raw, headers={"Content-Type": media_type}, timeout=10
        )
        assert r.status_code == 201, r.text
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def get_manifest(self, repo: str, ref: str) -> tuple[dict[str, Any], str]:
        r = self.session().get(
            f"{self.url}/v2/{repo}/manifests/{ref}",
            timeout=10,
            headers={
                "Accept": ", ".join(
                    ["application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"]
                )
            },
        )
        r.raise_for_status()
        return r.json(), "sha256:" + hashlib.sha256(r.content).hexdigest()

    def get_blob(self, repo: str, digest: str) -> bytes:
        r = self.session().get(f"{self.url}/v2/{repo}/blobs/{digest}", timeout=60)
        r.raise_for_status()
        assert "sha256:" + hashlib.sha256(r.content).hexdigest() == digest, "blob digest mismatch"
        return r.content

    def push_busybox_base(self, repo: str = "base/busybox", tag: str = "latest") -> str:
        """Multi-arch index (linux/amd64 with busybox + a linux/arm64 stand-in); returns the ref."""
        busybox = Path(require_binary("busybox", "/bin/busybox", "/usr/bin/busybox")).read_bytes()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for d in ("bin/", "tmp/"):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            info = tarfile.TarInfo("bin/busybox")
            info.size, info.mode = len(busybox), 0o755
            tar.addfile(info, io.BytesIO(busybox))
            link = tarfile.TarInfo("bin/sh")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        layer_tar = buf.getvalue()
        layer = gzip.compress(layer_tar, mtime=0)
        layer_digest = self.push_blob(repo, layer)
        manifests = []
        for arch in ("arm64", "amd64"):
            config = {
                "architecture": arch,
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
                "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "test busybox"}],
            }
            raw_cfg = json.dumps(config).encode()
            cfg_digest = self.push_blob(repo, raw_cfg)
            manifest = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": cfg_digest,
                    "size": len(raw_cfg),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest,
                        "size": len(layer),
                    }
                ],
            }
            raw = json.dumps(manifest).encode()
            digest = self.put_manifest(
                repo,
                "sha256:" + hashlib.sha256(raw).hexdigest(),
                manifest,
                "application/vnd.oci.image.manifest.v1+json",
            )
            manifests.append(
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "size": len(raw),
                    "platform": {"os": "linux", "architecture": arch},
                }
            )
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
        self.put_manifest(repo, tag, index, "application/vnd.oci.image.index.v1+json")
        return f"{self.host}/{repo}:{tag}"
