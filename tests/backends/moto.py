"""moto's server mode (``moto_server``) on a free 127.0.0.1 port: S3, IAM and STS in one process,
for what SeaweedFS cannot do (temporary credentials with a session token, roles assumed with a
web identity token or from a shared config profile, bucket regions, virtual-hosted requests).

moto runs without its request authentication (``INITIAL_NO_AUTH_ACTION_COUNT``): with it on,
it cannot answer an unsigned ``AssumeRoleWithWebIdentity`` (it wants an ``Authorization``
header on every action), and it rejects the SigV4 signature of any query holding an encoded
``/`` (``ListObjectsV2`` with ``prefix=model%2F``: it checks the query as werkzeug re-quotes
it). So the tests check credentials on the wire instead: each upload reaches moto through a
:class:`tests.backends.faults.FaultProxy`, whose recorded request heads show the access key
and session token of every S3 request, compared with what moto's STS issued
(:meth:`MotoServer.caller`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import boto3
import requests

from tests.backends.certs import CertificateAuthority
from tests.backends.process import LOOPBACK, Backend, ManagedProcess, free_port, require_binary

VIRTUAL_HOST = "s3.moto.test"
ACCOUNT = "123456789012"
"""moto's default account."""
ALLOW_S3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


class MotoServer(Backend):
    def __init__(self, *, tls: CertificateAuthority | None = None) -> None:
        self.tls = tls
        self._tmp = tempfile.TemporaryDirectory(prefix="moto-")
        self.workdir = Path(self._tmp.name)
        self.port = 0
        self.proc: ManagedProcess | None = None
        self.admin_key = "moto-admin-akid"
        self.admin_secret = "moto-admin-secret"  # noqa: S105 - moto takes any key
        self.ca_file: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    @property
    def virtual_endpoint(self) -> str:
        """An endpoint whose name resolves nowhere: reached through an HTTP proxy (``HTTP_PROXY``)
        that connects to this server, so that ``<bucket>.<name>`` needs no DNS entry either."""
        return f"http://{VIRTUAL_HOST}:{self.port}"

    def start(self) -> None:
        binary = require_binary("moto_server", str(Path(sys.executable).parent / "moto_server"))
        self.port = free_port()
        argv = [binary, "-H", LOOPBACK, "-p", str(self.port)]
        if self.tls is not None:
            crt, key = self.tls.issue_server().write(self.workdir, "server")
            self.ca_file = self.workdir / "ca.crt"
            self.ca_file.write_text(self.tls.cert_pem)
            argv += ["-c", str(crt), "-k", str(key)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        # requests to this host name are path-style; to <bucket>.<it>, virtual-hosted
        env["MOTO_S3_CUSTOM_ENDPOINTS"] = self.virtual_endpoint
        self.proc = ManagedProcess("moto_server", argv, self.workdir, env=env)

        def ready() -> bool:
            return requests.get(self.endpoint + "/moto-api/", timeout=1, verify=str(self.ca_file or True)).ok

        self.proc.start(ready, timeout=60)

    def client(self, service: str, region: str = "us-east-1", **credentials: str) -> Any:  # noqa: ANN401
        """A boto3 client of this server, the admin's unless ``credentials`` are given."""
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            verify=str(self.ca_file) if self.ca_file else True,
            aws_access_key_id=credentials.get("key", self.admin_key),
            aws_secret_access_key=credentials.get("secret", self.admin_secret),
            aws_session_token=credentials.get("token"),
        )

    def role(self, name: str, trust: dict[str, Any], policy: dict[str, Any] = ALLOW_S3) -> str:
        """A role that ``trust`` may assume, allowed ``policy``; returns its ARN."""
        iam = self.client("iam")
        document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **trust}]}
        arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(document))["Role"]["Arn"]
        iam.put_role_policy(RoleName=name, PolicyName="s3", PolicyDocument=json.dumps(policy))
        return arn

    def bucket(self, name: str, region: str = "us-east-1") -> None:
        s3 = self.client("s3", region)
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})

    def caller(self, access_key: str) -> str:
        """The ARN moto's STS gives the identity of ``access_key`` (an assumed role's session:
        ``arn:aws:sts::<account>:assumed-role/<role>/<session name>``)."""
        arn: str = self.client("sts", key=access_key).get_caller_identity()["Arn"]
        return arn

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
        self._tmp.cleanup()
