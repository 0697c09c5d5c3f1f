"""The webhook server's certificate when the operator makes it itself (no cert-manager).

A self-signed CA and a serving certificate for the webhook Service's DNS names, generated with
``cryptography`` and kept in a Secret of the operator's namespace, so that every replica serves
the same certificate (the first to start creates it; a create that loses the race reads the
winner's). Each replica writes it to the directory kopf's ``WebhookServer`` reads (which restarts
its listener when the files change), and patches the CA bundle into the webhook configurations,
by name. Renewed when a third of its validity is left: a new CA and certificate, with the
previous CA kept in the bundle while it is valid, so that the API server trusts the replicas
still serving the old certificate until they have read the new one.

Written here rather than taken from a library: kopf's own generator (``certbuilder``, a
self-signed leaf without a CA, no renewal) and cert-manager (the alternative, see
``config/certmanager``) cover the two ends; what is left is the Secret and the patching.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..kinds import SECRET
from ..kube import ApiError, Kube

log = logging.getLogger(__name__)

CA_FILE = "ca.crt"
"""The CA bundle (the current CA, and the previous one while it is valid)."""
SERVING_FILE = "tls.pem"
"""Certificate and key in one file: replaced in one rename, so the server never reads a pair
of a new certificate and an old key."""
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
WEBHOOK_CONFIGURATION_PATHS = (
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{}",
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{}",
)

Clock = Callable[[], datetime.datetime]
SKEW = datetime.timedelta(minutes=1)
"""Certificates start this long before they are made: the API server's clock may be behind ours."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Material:
    """One generation of the webhook's certificates (PEM)."""

    ca: bytes
    cert: bytes
    key: bytes
    bundle: bytes  # ca, then the previous CA while it is valid

    def not_after(self) -> datetime.datetime:
        return x509.load_pem_x509_certificate(self.cert).not_valid_after_utc

    def not_before(self) -> datetime.datetime:
        return x509.load_pem_x509_certificate(self.cert).not_valid_before_utc

    def names(self) -> set[str]:
        cert = x509.load_pem_x509_certificate(self.cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return {str(v) for v in sans.get_values_for_type(x509.DNSName)} | {
            str(v) for v in sans.get_values_for_type(x509.IPAddress)
        }

    def as_secret_data(self) -> dict[str, str]:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        return {"ca.crt": b64(self.bundle), "tls.crt": b64(self.cert), "tls.key": b64(self.key)}

    @classmethod
    def from_secret(cls, secret: dict[str, Any]) -> Material | None:
        data = secret.get("data") or {}
        try:
            bundle, cert, key = (base64.b64decode(data[k]) for k in ("ca.crt", "tls.crt", "tls.key"))
            x509.load_pem_x509_certificate(cert)
        except (KeyError, ValueError):
            return None
        ca = bundle.split(b"-----END CERTIFICATE-----", 1)[0] + b"-----END CERTIFICATE-----\n"
        return cls(ca=ca, cert=cert, key=key, bundle=bundle)


def service_names(service: str, namespace: str, extra: Iterable[str] = ()) -> list[str]:
    """The names the API server may use for the webhook Service (it uses ``<svc>.<ns>.svc``)."""
    names = [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]
    return names + [name for name in extra if name and name not in names]


def generate(
    names: list[str], validity: datetime.timedelta, previous: Material | None = None, now: Clock = _now
) -> Material:
    """A new CA and a serving certificate for ``names`` signed by it, both valid for ``validity``."""
    start = now() - SKEW
    end = now() + validity
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "model-registry-operator-webhook-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    bundle = ca_pem
    if previous is not None and previous.not_after() > now():
        bundle += previous.ca
    return Material(
        ca=ca_pem,
        cert=cert.public_bytes(serialization.Encoding.PEM),
        key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        bundle=bundle,
    )


def needs_renewal(material: Material, names: list[str], now: Clock = _now) -> bool:
    """Renew a third of the validity before expiry, or when the names changed."""
    start, end = material.not_before(), material.not_after()
    return now() >= end - (end - start - SKEW) / 3 or not set(names) <= material.names()


def write_files(directory: Path, material: Material) -> bool:
    """Write the bundle and the serving pair where the server reads them; whether anything changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = False
    # The CA bundle first: the server re-reads both when either changes.
    for name, content, mode in ((CA_FILE, material.bundle, 0o644), (SERVING_FILE, material.cert + material.key, 0o600)):
        path = directory / name
        if path.exists() and path.read_bytes() == content:
            continue
        tmp = directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        tmp.replace(path)
        changed = True
    return changed


def operator_namespace(configured: str) -> str:
    """The namespace the operator runs in: POD_NAMESPACE, else its ServiceAccount's."""
    if configured:
        return configured
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class CertificateKeeper:
    """Keeps the Secret, the files and the webhook configurations' CA bundle current."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        secret: str,
        names: list[str],
        directory: Path,
        configurations: tuple[str, str],
        validity: datetime.timedelta,
        now: Clock = _now,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.secret = secret
        self.names = names
        self.directory = directory
        self.configurations = configurations
        self.validity = validity
        self.now = now

    @property
    def serving_file(self) -> Path:
        return self.directory / SERVING_FILE

    @property
    def ca_file(self) -> Path:
        return self.directory / CA_FILE

    async def ensure(self) -> Material:
        """One pass: renew the Secret when due, write the files, patch the CA bundles."""
        material = await self._current()
        await self._write(material)
        await self.patch_ca_bundles(material.bundle)
        return material

    async def _current(self) -> Material:
        for _ in range(4):  # each lost race re-reads what the other replica wrote
            live = await self.kube.get(SECRET, self.namespace, self.secret)
            material = Material.from_secret(live) if live is not None else None
            if material is not None and not needs_renewal(material, self.names, self.now):
                return material
            fresh = generate(self.names, self.validity, previous=material, now=self.now)
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": self.secret, "namespace": self.namespace},
                "data": fresh.as_secret_data(),
            }
            try:
                if live is None:
                    await self.kube.create(body)
                else:
                    body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
                    await self.kube.merge_patch(SECRET, self.namespace, self.secret, body)
            except ApiError as exc:
                if exc.conflict or exc.not_found:
                    continue
                raise
            log.info(
                "webhook serving certificate %s, valid until %s", "renewed" if live else "created", fresh.not_after()
            )
            return fresh
        raise RuntimeError(f"Secret {self.namespace}/{self.secret} kept changing while being renewed")

    async def _write(self, material: Material) -> None:
        await asyncio.to_thread(write_files, self.directory, material)

    async def patch_ca_bundles(self, bundle: bytes) -> None:
        """Put ``bundle`` into every webhook of both configurations (those missing are skipped:
        the configuration may be applied after the operator starts; the next pass patches it)."""
        encoded = base64.b64encode(bundle).decode()
        for template, name in zip(WEBHOOK_CONFIGURATION_PATHS, self.configurations, strict=True):
            path = template.format(name)
            try:
                live = await self.kube.request("GET", path)
            except ApiError as exc:
                if exc.not_found:
                    continue
                raise
            webhooks = live.get("webhooks") or []
            stale = [w["name"] for w in webhooks if (w.get("clientConfig") or {}).get("caBundle") != encoded]
            if not stale:
                continue
            patch = {
                "metadata": {"resourceVersion": live["metadata"]["resourceVersion"]},
                "webhooks": [{"name": n, "clientConfig": {"caBundle": encoded}} for n in stale],
            }
            try:
                await self.kube.request(
                    "PATCH", path, body=patch, content_type="application/strategic-merge-patch+json"
                )
            except ApiError as exc:
                if not (exc.conflict or exc.not_found):
                    raise
                continue  # changed meanwhile: the next pass sees the new version
            log.info("CA bundle patched into %s (%s)", name, ", ".join(stale))
