"""The metrics endpoint: ``/metrics`` of prometheus_client's default registry, served by aiohttp
on the operator's event loop, as controller-runtime's metrics server does upstream: HTTPS with
:mod:`.auth` by default (``--metrics-secure``), plain HTTP only with ``--metrics-secure=false``;
``--metrics-bind-address=0`` turns it off.

The serving certificate comes from ``--metrics-cert-dir`` (``tls.crt`` / ``tls.key`` unless
named otherwise; re-read when the files change, as cert-manager rotates them), else a
self-signed one is generated at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
from pathlib import Path

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from ..kube import Kube
from ..settings import OperatorSettings, parse_bind_address
from .auth import Authorizer

log = logging.getLogger(__name__)

PATH = "/metrics"
# How often the certificate files are checked for a new version.
CERT_CHECK_SECONDS = 10.0
SELF_SIGNED_DAYS = 365


def self_signed(hostnames: list[str]) -> tuple[bytes, bytes]:
    """A certificate (PEM) for ``hostnames`` and loopback, and its key: ECDSA P-256, one year."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in dict.fromkeys([*hostnames, "localhost"])]
    names += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _load_pem(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """The ssl module loads certificates from files only: anonymous in-memory files on Linux (the
    key never touches a disk, and a read-only root filesystem is fine), else a private
    temporary directory."""
    if hasattr(os, "memfd_create"):
        fds = [os.memfd_create("metrics-tls.crt"), os.memfd_create("metrics-tls.key")]
        try:
            for fd, pem in zip(fds, (cert, key), strict=True):
                os.write(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="metrics-tls-") as tmp:
        cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        cert_file.write_bytes(cert)
        key_file.touch(0o600)
        key_file.write_bytes(key)
        context.load_cert_chain(cert_file, key_file)


class EndpointError(Exception):
    """The endpoint cannot start (its address is taken, its certificate unreadable): a start-up error."""


class MetricsEndpoint:
    """Serve ``/metrics`` at ``host:port``; with an authorizer, over HTTPS (``tls``)."""

    def __init__(
        self,
        host: str | None,
        port: int,
        authorizer: Authorizer | None,
        *,
        secure: bool = True,
        cert_file: Path | None = None,
        key_file: Path | None = None,
    ) -> None:
        self.host, self.port, self.authorizer, self.secure = host, port, authorizer, secure
        self.cert_file, self.key_file = cert_file, key_file
        self._runner: web.AppRunner | None = None
        self._watch: asyncio.Task[None] | None = None
        self._cert_version: tuple[float, float] | None = None

    @classmethod
    def from_settings(cls, settings: OperatorSettings, kube: Kube) -> MetricsEndpoint | None:
        """The endpoint the settings ask for, None when turned off (``0``)."""
        bind = parse_bind_address(settings.metrics_bind_address)
        if bind is None:
            return None
        cert_dir = Path(settings.metrics_cert_dir) if settings.metrics_cert_dir else None
        return cls(
            bind[0],
            bind[1],
            Authorizer(kube, PATH) if settings.metrics_secure else None,
            secure=settings.metrics_secure,
            cert_file=cert_dir / settings.metrics_cert_name if cert_dir else None,
            key_file=cert_dir / settings.metrics_key_name if cert_dir else None,
        )

    @property
    def scheme(self) -> str:
        return "https" if self.secure else "http"

    async def start(self) -> None:
        """Listen; :class:`EndpointError` when the address cannot be bound or the certificate read."""
        app = web.Application()
        app.router.add_get(PATH, self._metrics)
        try:
            context = await asyncio.to_thread(self._tls_context) if self.secure else None
        except (OSError, ssl.SSLError) as exc:
            raise EndpointError(f"the metrics serving certificate (METRICS_CERT_DIR): {exc}") from exc
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=context)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            where = f"{self.host or ''}:{self.port}"
            raise EndpointError(f"metrics cannot listen on {where} (METRICS_BIND_ADDRESS): {exc.strerror}") from exc
        if context is not None and self.cert_file is not None:
            self._watch = asyncio.get_running_loop().create_task(self._reload_certificate(context))
        log.info("serving metrics at %s://%s:%d%s", self.scheme, self.host or "0.0.0.0", self.port, PATH)  # noqa: S104

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        if self.authorizer is not None:
            decision = await self.authorizer.check(request.headers.get("Authorization"))
            if not decision.allowed:
                return web.Response(status=decision.status, text=decision.message + "\n")
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        # Collecting reads /proc and unpacks every registry's status: not on the event loop.
        body = await asyncio.to_thread(encoder, REGISTRY)
        return web.Response(body=body, headers={"Content-Type": content_type})

    # -- TLS -----------------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext:
        context = _server_context()
        if self.cert_file is not None and self.key_file is not None:
            self._cert_version = self._version()
            context.load_cert_chain(self.cert_file, self.key_file)
            log.info("metrics: serving certificate %s", self.cert_file)
        else:
            cert, key = self_signed([socket.gethostname() or "localhost"])
            _load_pem(context, cert, key)
            log.info("metrics: no --metrics-cert-dir, serving a self-signed certificate generated at start")
        return context

    def _version(self) -> tuple[float, float]:
        assert self.cert_file is not None
        assert self.key_file is not None
        return os.stat(self.cert_file).st_mtime, os.stat(self.key_file).st_mtime

    async def _reload_certificate(self, context: ssl.SSLContext) -> None:
        """New connections get the new certificate once its files changed (cert-manager's rotation)."""
        while True:
            await asyncio.sleep(CERT_CHECK_SECONDS)
            try:
                version = await asyncio.to_thread(self._version)
                if version != self._cert_version:
                    await asyncio.to_thread(context.load_cert_chain, self.cert_file, self.key_file)  # type: ignore[arg-type]
                    self._cert_version = version
                    log.info("metrics: reloaded the serving certificate %s", self.cert_file)
            except (OSError, ssl.SSLError) as exc:  # half-written during a rotation: next time
                log.warning("metrics: could not reload the serving certificate: %s", exc)
