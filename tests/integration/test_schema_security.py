"""Objects of every security mode validated by the real API server (server-side dry-run, strict)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from model_registry_operator.api.validation import parse_spec
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES
from model_registry_operator.render.database import DatabaseSecrets, database_wiring
from model_registry_operator.render.defaults import apply_runtime_defaults
from model_registry_operator.render.modelregistry import RegistryRef, RenderInputs, render_model_registry
from model_registry_operator.settings import OperatorSettings
from tests.backends.certs import CertificateAuthority
from tests.backends.databases import LOOPBACK, PostgresServer, ServerTLS
from tests.backends.process import ManagedProcess, free_port
from tests.backends.registry_server import server_binary
from tests.unit.test_render_security import DATABASES, MODES

from .kube import Cluster

pytestmark = pytest.mark.integration


def test_security_mode_objects_are_accepted_by_the_api_server(cluster: Cluster, namespace: str) -> None:
    """Core kinds only (the optional APIs are stand-ins here): Deployments with sidecars and
    volumes, Services, ConfigMaps, Secrets, ClusterRoleBindings, NetworkPolicies."""
    settings = OperatorSettings(DEFAULT_AUTH_PROVIDER="authorino")
    objects = []
    for database in DATABASES:
        for mode, extra in MODES.items():
            spec, problems = parse_spec({"rest": {}, **DATABASES[database], **extra})
            assert spec is not None, problems
            name = f"s-{database}-{mode}"[:50]
            ref = RegistryRef(name, namespace, "00000000-0000-0000-0000-000000000000")
            effective = apply_runtime_defaults(spec, settings, name, PLAIN_KUBERNETES)
            inputs = RenderInputs(DatabaseSecrets("pw"), "", "digest", "0123456789abcdef0123456789abcdef")
            objects += render_model_registry(ref, effective, settings, PLAIN_KUBERNETES, inputs)

    failures = cluster.rejected_by_dry_run(objects)
    assert not failures, "\n".join(failures)
    assert {o["kind"] for o in objects} >= {"ClusterRoleBinding", "ConfigMap", "Deployment", "Service"}


def _run_registry_server(workdir: Path, name: str, dsn: str, extra_args: list[str]) -> tuple[bool, str]:
    """The real registry server against a database: (became healthy, log tail)."""
    port = free_port()
    argv = [
        str(server_binary()),
        "proxy",
        "--hostname",
        LOOPBACK,
        "--port",
        str(port),
        "--embedmd-database-type=postgres",
    ]
    proc = ManagedProcess(name, [*argv, *extra_args], workdir, env={**os.environ, "MR_EMBEDMD_DATABASE_DSN": dsn})

    def settled() -> bool:
        if "certificate" in proc.log_path.read_text(errors="replace"):
            return True
        return requests.get(f"http://{LOOPBACK}:{port}/readyz/health", timeout=1).status_code == 200

    try:
        proc.start(settled, timeout=60)
        log = proc.log_path.read_text(errors="replace")
        return "certificate" not in log, proc.tail()
    finally:
        proc.stop()


def test_postgres_verify_full_is_kept_by_the_real_registry_server(tmp_path: Path) -> None:
    """sslMode verify-full with a CA reaches the server as verify-full: a server certificate for
    another host name is refused. The certificate files are DSN parameters; with the server's
    file flags instead (as rendered before) the server replaces sslmode with `require`, which
    connects to that server (shown last, the reason for the change)."""
    ca = CertificateAuthority()
    wrong = ca.issue_server(common_name="elsewhere", dns_names=("elsewhere.example",), ip_addresses=())
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(ca.cert_pem)
    raw = {
        "host": LOOPBACK,
        "username": "registry",
        "database": "model_registry",
        "passwordSecret": {"name": "db", "key": "password"},
        "sslMode": "verify-full",
        "sslRootCertificateSecret": {"name": "ca", "key": "ca.crt"},
    }
    with PostgresServer(tls=ServerTLS(wrong.cert_pem, wrong.key_pem)) as db:
        spec, problems = parse_spec({"rest": {}, "postgres": {**raw, "port": db.port}})
        assert spec is not None, problems
        wiring = database_wiring("reg", spec, DatabaseSecrets(password=db.password))
        assert wiring.args == ["--embedmd-database-type=postgres"]
        # The kubelet mounts the CA at the path the DSN names; here it is a local file.
        dsn = wiring.dsn.replace(quote("/etc/postgres_ssl_rootcert/ca.crt", safe=""), quote(str(ca_file), safe=""))
        healthy, log = _run_registry_server(tmp_path, "mr-verify-full", dsn, [])
        assert not healthy, log
        assert "cannot validate certificate for 127.0.0.1" in log  # the host name check

        no_files = dsn.split("&sslrootcert=")[0]
        healthy, log = _run_registry_server(
            tmp_path, "mr-flags", no_files, [f"--embedmd-database-ssl-root-cert={ca_file}"]
        )
        assert healthy, log  # the downgrade the DSN parameters avoid

    right = ca.issue_server(common_name=LOOPBACK, dns_names=(), ip_addresses=(LOOPBACK,))
    with PostgresServer(tls=ServerTLS(right.cert_pem, right.key_pem)) as db:
        spec, problems = parse_spec({"rest": {}, "postgres": {**raw, "port": db.port}})
        assert spec is not None, problems
        wiring = database_wiring("reg", spec, DatabaseSecrets(password=db.password))
        dsn = wiring.dsn.replace(quote("/etc/postgres_ssl_rootcert/ca.crt", safe=""), quote(str(ca_file), safe=""))
        healthy, log = _run_registry_server(tmp_path, "mr-verified", dsn, [])
        assert healthy, log
