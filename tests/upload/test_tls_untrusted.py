"""A server whose certificate is not trusted (a CA the program was not given) is a configuration
error: each server the program talks to over https (the model registry, an OCI registry as
destination or source, an S3 endpoint as destination or source, an https source URI) is tried
once, the program exits at once with exit code 2 (which fails the Job without retrying it) and a
message naming the CA parameter, and no credential appears in its output.

The untrusted server is a real TLS server (Python's ``ssl``, a certificate for 127.0.0.1 from a
throwaway CA) that counts the connections made to it: one connection is one attempt.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from model_registry_upload.errors import EXIT_CONFIG
from model_registry_upload_contract import Parameter, env_name
from tests.backends.certs import CertificateAuthority
from tests.backends.oci import DistributionRegistry
from tests.backends.process import Backend
from tests.backends.registry_server import RealRegistryServer, official_client_read

from .helpers import metadata_dir, registry_env, run_upload, write_dir

SECRET = "untrusted-tls-secret-8813"  # noqa: S105 - test value: must not appear in any output


class UntrustedTLSServer(Backend):
    """Accepts TLS connections on 127.0.0.1 with a certificate no client here trusts."""

    def __init__(self, tmp_path: Path) -> None:
        cert, key = CertificateAuthority("a CA nobody was given").issue_server().write(tmp_path, "untrusted")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.connections = 0
        self.handshakes_done = 0
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    @property
    def address(self) -> str:
        assert self._sock is not None
        return f"127.0.0.1:{self._sock.getsockname()[1]}"

    def start(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # stopped
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            with self.context.wrap_socket(conn, server_side=True), self._lock:
                self.handshakes_done += 1  # a client that accepted the certificate
        except (OSError, ssl.SSLError):
            pass  # the client refused the certificate
        finally:
            conn.close()


@pytest.fixture
def untrusted(tmp_path: Path) -> Iterator[UntrustedTLSServer]:
    with UntrustedTLSServer(tmp_path / "untrusted-certs") as server:
        yield server


def _registry(addr: str) -> dict[str, str]:
    return {
        env_name(Parameter.REGISTRY_SERVER_ADDRESS): f"https://{addr}",
        env_name(Parameter.REGISTRY_IS_SECURE): "true",
        env_name(Parameter.REGISTRY_USER_TOKEN): SECRET,
        env_name(Parameter.MODEL_UPLOAD_INTENT): "create_model",
    }


def _oci_destination(addr: str) -> dict[str, str]:
    return {
        env_name(Parameter.DESTINATION_TYPE): "oci",
        env_name(Parameter.DESTINATION_OCI_URI): f"{addr}/models/untrusted:v1",
        env_name(Parameter.DESTINATION_OCI_BASE_IMAGE): "scratch",
        env_name(Parameter.DESTINATION_OCI_USERNAME): "user",
        env_name(Parameter.DESTINATION_OCI_PASSWORD): SECRET,
    }


def _s3(side: str, addr: str) -> dict[str, str]:
    return {
        f"MODEL_SYNC_{side}_TYPE": "s3",
        f"MODEL_SYNC_{side}_AWS_BUCKET": "models",
        f"MODEL_SYNC_{side}_AWS_KEY": "untrusted",
        f"MODEL_SYNC_{side}_AWS_ENDPOINT": f"https://{addr}",
        f"MODEL_SYNC_{side}_AWS_ACCESS_KEY_ID": "untrusted-akid",
        f"MODEL_SYNC_{side}_AWS_SECRET_ACCESS_KEY": SECRET,
    }


def _oci_source(addr: str) -> dict[str, str]:
    return {
        env_name(Parameter.SOURCE_TYPE): "oci",
        env_name(Parameter.SOURCE_OCI_URI): f"oci://{addr}/src/model:v1",
        env_name(Parameter.SOURCE_OCI_USERNAME): "user",
        env_name(Parameter.SOURCE_OCI_PASSWORD): SECRET,
    }


def _uri_source(addr: str) -> dict[str, str]:
    return {
        env_name(Parameter.SOURCE_TYPE): "uri",
        env_name(Parameter.SOURCE_URI): f"https://user:{SECRET}@{addr}/models/model.bin?token={SECRET}",
    }


Case = Callable[[str], dict[str, str]]
# (server parameters, which side of the upload is untrusted, the CA parameter the message names)
CASES: dict[str, tuple[Case, str, Parameter]] = {
    "model registry": (_registry, "registry", Parameter.REGISTRY_CUSTOM_CA),
    "OCI destination": (_oci_destination, "destination", Parameter.DESTINATION_OCI_CA_BUNDLE),
    "S3 destination": (lambda a: _s3("DESTINATION", a), "destination", Parameter.DESTINATION_AWS_CA_BUNDLE),
    "OCI source": (_oci_source, "source", Parameter.SOURCE_OCI_CA_BUNDLE),
    "S3 source": (lambda a: _s3("SOURCE", a), "source", Parameter.SOURCE_AWS_CA_BUNDLE),
    "https source URI": (_uri_source, "source", Parameter.SOURCE_URI_CA_BUNDLE),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_untrusted_certificate_is_one_attempt_and_a_configuration_error(
    case: str,
    tmp_path: Path,
    untrusted: UntrustedTLSServer,
    oci_registry: DistributionRegistry,
    mr_server: RealRegistryServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server_env, side, ca_parameter = CASES[case]
    name = f"untrusted-{case.replace(' ', '-').lower()}"
    meta = metadata_dir(tmp_path / "meta", {"RegisteredModel.name": name})
    # the other sides are real servers that work: the untrusted one is the only failure
    env = {
        env_name(Parameter.SOURCE_TYPE): "pvc",
        env_name(Parameter.SOURCE_PATH): str(write_dir(tmp_path / "pvc", {"model.bin": b"untrusted" * 100})),
        env_name(Parameter.DESTINATION_TYPE): "oci",
        env_name(Parameter.DESTINATION_OCI_URI): f"{oci_registry.host}/models/{name}:v1",
        env_name(Parameter.DESTINATION_OCI_BASE_IMAGE): "scratch",
        env_name(Parameter.DESTINATION_OCI_ENABLE_TLS_VERIFY): "false",
        **registry_env(mr_server.url),
        env_name(Parameter.METADATA_CONFIGMAP_PATH): str(meta),
        env_name(Parameter.MODEL_UPLOAD_INTENT): "create_model",
    }
    if side == "destination":
        for key in [k for k in env if k.startswith("MODEL_SYNC_DESTINATION_")]:
            del env[key]
    if side == "source":
        for key in [k for k in env if k.startswith("MODEL_SYNC_SOURCE_")]:
            del env[key]
    env.update(server_env(untrusted.address))

    r = run_upload(tmp_path, env, caplog, capsys)

    assert r.code == EXIT_CONFIG, r.termination
    assert r.termination.startswith("configuration error: "), r.termination
    assert "TLS verification failed: the server's certificate is not trusted" in r.termination
    assert f"--{ca_parameter.value.replace('_', '-')} ({env_name(ca_parameter)})" in r.termination
    assert untrusted.address in r.termination  # the server it could not trust
    assert untrusted.connections == 1, f"{untrusted.connections} attempts: {r.logs[-2000:]}"
    assert untrusted.handshakes_done == 0
    assert SECRET not in r.termination
    assert SECRET not in r.logs
    assert "Traceback" not in r.logs
    if side != "registry":  # stopped before anything was registered
        assert official_client_read(mr_server.url, name, "1.0.0")["model"] is None
