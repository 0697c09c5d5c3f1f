"""S3 credentials, addressing, regions and TLS against moto's server mode (:mod:`tests.backends.moto`).

Each upload runs the program as a process (``python -m model_registry_upload``) with
only the environment a Pod would give it: the AWS credential chain reads the process
environment and files, so nothing of the developer's own AWS set-up may leak in (``HOME`` is
a fresh directory, no ``AWS_*`` variable is inherited, the instance metadata service is off as
no test can serve it). The model goes from an S3 prefix on moto to another one (both sides
use the credentials under test) and is read back with the admin's own boto3 client.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model_registry_upload.config import load_config
from model_registry_upload.errors import EXIT_CONFIG, EXIT_OK, ConfigError
from tests.backends.certs import CertificateAuthority
from tests.backends.faults import FaultProxy
from tests.backends.http import NginxServer
from tests.backends.moto import ACCOUNT, VIRTUAL_HOST, MotoServer
from tests.backends.registry_server import RealRegistryServer

from .helpers import MiB, Run, placeholder_artifact, registry_env, sha

PART = 5 * MiB
FILES = {"config.json": b'{"a": 1}', "w/big.bin": os.urandom(2 * PART + 7)}
_names = itertools.count(1)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        server.bucket("models")
        server.bucket("out")
        yield server


def _model(server: MotoServer, prefix: str) -> None:
    s3 = server.client("s3")
    for rel, data in FILES.items():
        s3.put_object(Bucket="models", Key=f"{prefix}/{rel}", Body=data)


def _read_back(server: MotoServer, prefix: str) -> dict[str, str]:
    s3 = server.client("s3")
    return {rel: sha(s3.get_object(Bucket="out", Key=f"{prefix}/{rel}")["Body"].read()) for rel in FILES}


def run_program(tmp_path: Path, env: dict[str, str]) -> Run:
    """The upload program as a process with ``env`` (and nothing of this process's AWS set-up)."""
    term = tmp_path / "termination-log"
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_EC2_METADATA_DISABLED": "true",
        "TERMINATION_MESSAGE_PATH": str(term),
        "LOGLEVEL": "DEBUG",
        "MODEL_SYNC_STORAGE_PATH": str(tmp_path / "scratch"),
        "MODEL_SYNC_PART_SIZE": str(PART),
        "MODEL_SYNC_PARALLELISM": "3",
        "MODEL_SYNC_TIMEOUT": "20",
        **env,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "model_registry_upload"],
        env=full,
        capture_output=True,
        timeout=180,
        cwd=tmp_path,
        check=False,
    )
    logs = proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")
    return Run(proc.returncode, term.read_text() if term.exists() else "", logs)


def s3_to_s3(server: MotoServer | str, mr: RealRegistryServer, name: str, **extra: str) -> dict[str, str]:
    """Parameters of an upload from ``models/<name>`` to ``out/<name>``, no credentials given."""
    endpoint = server if isinstance(server, str) else server.endpoint
    return {
        "MODEL_SYNC_SOURCE_TYPE": "s3",
        "MODEL_SYNC_SOURCE_AWS_BUCKET": "models",
        "MODEL_SYNC_SOURCE_AWS_KEY": name,
        "MODEL_SYNC_SOURCE_AWS_ENDPOINT": endpoint,
        "MODEL_SYNC_DESTINATION_TYPE": "s3",
        "MODEL_SYNC_DESTINATION_AWS_BUCKET": "out",
        "MODEL_SYNC_DESTINATION_AWS_KEY": name,
        "MODEL_SYNC_DESTINATION_AWS_ENDPOINT": endpoint,
        "MODEL_SYNC_MODEL_ARTIFACT_ID": placeholder_artifact(mr.url, f"{name}-{next(_names)}"),
        **registry_env(mr.url),
        **extra,
    }


def _temporary(server: MotoServer, role: str) -> dict[str, str]:
    """Temporary credentials (key, secret, session token) of a new role, from moto's STS."""
    arn = server.role(role, {"Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    creds = server.client("sts").assume_role(RoleArn=arn, RoleSessionName="model-upload-test")["Credentials"]
    return {"key": creds["AccessKeyId"], "secret": creds["SecretAccessKey"], "token": creds["SessionToken"]}


def _assert_uploaded(run: Run, server: MotoServer, name: str) -> None:
    assert run.code == EXIT_OK, run.termination + run.logs[-3000:]
    assert _read_back(server, name) == {rel: sha(data) for rel, data in FILES.items()}


def _upload_through_proxy(
    tmp_path: Path, moto: MotoServer, mr_server: RealRegistryServer, name: str, **env: str
) -> tuple[Run, FaultProxy]:
    """``models/<name>`` put in moto, copied to ``out/<name>`` by the program with ``env`` through
    a proxy that records every S3 request (for :func:`_signed_with`), and read back intact."""
    _model(moto, name)
    with FaultProxy(moto.port) as proxy:
        run = run_program(tmp_path, s3_to_s3(proxy.url, mr_server, name, **env))
    _assert_uploaded(run, moto, name)
    return run, proxy


def _signed_with(proxy: FaultProxy) -> set[tuple[str, str, str | None]]:
    """``(access key, signing region, session token)`` of the S3 requests ``proxy`` saw."""
    out = set()
    for r in proxy.requests:
        m = re.search(r"Credential=([^/]+)/\d{8}/([^/]+)/s3/", r.headers.get("authorization", ""))
        if m:
            out.add((m.group(1), m.group(2), r.headers.get("x-amz-security-token")))
    return out


def _assert_role_session(server: MotoServer, proxy: FaultProxy, session: str, region: str) -> None:
    """Every S3 request was signed in ``region`` with temporary credentials (a session token)
    of the role session ``<role>/<session name>`` that moto's STS issued."""
    signed = _signed_with(proxy)
    assert signed
    assert {signed_region for _, signed_region, _ in signed} == {region}
    assert all(token for _, _, token in signed)
    keys = {key for key, _, _ in signed}  # the source's and the destination's session
    assert {server.caller(key) for key in keys} == {f"arn:aws:sts::{ACCOUNT}:assumed-role/{session}"}


# -- temporary credentials with a session token -----------------------------------------------


def test_temporary_credentials_as_parameters_and_in_the_credentials_secret(
    tmp_path: Path, moto: MotoServer, mr_server: RealRegistryServer
) -> None:
    """STS credentials: the source's from a mounted credentials Secret (``AWS_SESSION_TOKEN``
    file), the destination's as ``MODEL_SYNC_*`` parameters; every S3 request carries the
    token, and no message shows it."""
    temp = _temporary(moto, "uploader-params")
    name = f"params-{next(_names)}"
    secret_dir = tmp_path / "aws-connection"
    secret_dir.mkdir()
    for key, value in (
        ("AWS_ACCESS_KEY_ID", temp["key"]),
        ("AWS_SECRET_ACCESS_KEY", temp["secret"]),
        ("AWS_SESSION_TOKEN", temp["token"]),
    ):
        (secret_dir / key).write_text(value + "\n")
    run, proxy = _upload_through_proxy(
        tmp_path,
        moto,
        mr_server,
        name,
        MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH=str(secret_dir),
        MODEL_SYNC_DESTINATION_AWS_ACCESS_KEY_ID=temp["key"],
        MODEL_SYNC_DESTINATION_AWS_SECRET_ACCESS_KEY=temp["secret"],
        MODEL_SYNC_DESTINATION_AWS_SESSION_TOKEN=temp["token"],
    )
    assert _signed_with(proxy) == {(temp["key"], "us-east-1", temp["token"])}
    assert "S3 credentials of the source: the parameters" in run.logs
    assert temp["token"] not in run.logs


def test_credentials_from_the_environment(tmp_path: Path, moto: MotoServer, mr_server: RealRegistryServer) -> None:
    """No key parameter: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``."""
    temp = _temporary(moto, "uploader-env")
    name = f"env-{next(_names)}"
    run, proxy = _upload_through_proxy(
        tmp_path,
        moto,
        mr_server,
        name,
        AWS_ACCESS_KEY_ID=temp["key"],
        AWS_SECRET_ACCESS_KEY=temp["secret"],
        AWS_SESSION_TOKEN=temp["token"],
    )
    assert _signed_with(proxy) == {(temp["key"], "us-east-1", temp["token"])}
    assert "S3 credentials of the source: env" in run.logs
    assert "S3 credentials of the destination: env" in run.logs


def test_a_shared_config_profile_that_assumes_a_role(
    tmp_path: Path, moto: MotoServer, mr_server: RealRegistryServer
) -> None:
    """``AWS_PROFILE`` names a profile of ``AWS_CONFIG_FILE`` that assumes a role with the keys
    of another profile (``source_profile``, in ``AWS_SHARED_CREDENTIALS_FILE``); its region
    signs the requests. moto's STS issues the role session the upload uses."""
    arn = moto.role("uploader-profile", {"Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    config = tmp_path / "aws-config"
    config.write_text(
        f"[profile base]\nregion = us-east-1\n\n"
        f"[profile uploader]\nrole_arn = {arn}\nsource_profile = base\nrole_session_name = from-profile\n"
        f"region = eu-central-1\nendpoint_url = {moto.endpoint}\n"
    )
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        f"[base]\naws_access_key_id = {moto.admin_key}\naws_secret_access_key = {moto.admin_secret}\n"
    )
    name = f"profile-{next(_names)}"
    run, proxy = _upload_through_proxy(
        tmp_path,
        moto,
        mr_server,
        name,
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        AWS_PROFILE="uploader",
    )
    _assert_role_session(moto, proxy, "uploader-profile/from-profile", "eu-central-1")
    assert "S3 credentials of the source: assume-role" in run.logs


def test_web_identity_token_file_as_on_eks(tmp_path: Path, moto: MotoServer, mr_server: RealRegistryServer) -> None:
    """IRSA: ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN`` and nothing else. The program
    exchanges the token for the role's credentials at STS (``AssumeRoleWithWebIdentity``) and
    signs every S3 request with them; the token file's content never reaches a log."""
    server = moto
    arn = server.role(
        "uploader-irsa",
        {
            "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.example"},
            "Action": "sts:AssumeRoleWithWebIdentity",
        },
    )
    token = tmp_path / "token"
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bWw6dXBsb2FkZXIifQ.c2lnbmF0dXJlLXRlc3Q"
    token.write_text(jwt)
    name = f"irsa-{next(_names)}"
    _model(server, name)
    with FaultProxy(server.port) as proxy:
        env = s3_to_s3(
            proxy.url,
            mr_server,
            name,
            AWS_WEB_IDENTITY_TOKEN_FILE=str(token),
            AWS_ROLE_ARN=arn,
            AWS_ROLE_SESSION_NAME="model-upload-irsa",
            AWS_ENDPOINT_URL_STS=server.endpoint,
            AWS_REGION="us-east-1",
        )
        run = run_program(tmp_path, env)
    _assert_uploaded(run, server, name)
    _assert_role_session(server, proxy, "uploader-irsa/model-upload-irsa", "us-east-1")
    assert "assume-role-with-web-identity" in run.logs
    assert jwt not in run.logs


def test_container_credentials_endpoint(
    tmp_path: Path, moto: MotoServer, nginx: NginxServer, mr_server: RealRegistryServer
) -> None:
    """ECS / EKS Pod Identity: ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` answers temporary
    credentials as JSON (served by nginx here)."""
    temp = _temporary(moto, "uploader-container")
    body = {
        "AccessKeyId": temp["key"],
        "SecretAccessKey": temp["secret"],
        "Token": temp["token"],
        "Expiration": "2099-01-01T00:00:00Z",
    }
    url = nginx.publish(f"creds/{next(_names)}.json", json.dumps(body).encode())
    name = f"container-{next(_names)}"
    run, proxy = _upload_through_proxy(tmp_path, moto, mr_server, name, AWS_CONTAINER_CREDENTIALS_FULL_URI=url)
    assert _signed_with(proxy) == {(temp["key"], "us-east-1", temp["token"])}
    assert "S3 credentials of the source: container-role" in run.logs


def test_instance_metadata_credentials_as_on_ec2(
    tmp_path: Path, moto: MotoServer, mr_server: RealRegistryServer
) -> None:
    """EC2 / a node's instance role: no key anywhere, the instance metadata service answers the
    role's temporary credentials (IMDSv2: a session token first). moto's server serves the
    metadata API too (its ``default-role``); botocore is pointed at it with
    ``AWS_EC2_METADATA_SERVICE_ENDPOINT``, as at 169.254.169.254 on a real instance."""
    name = f"imds-{next(_names)}"
    run, proxy = _upload_through_proxy(
        tmp_path,
        moto,
        mr_server,
        name,
        AWS_EC2_METADATA_DISABLED="false",
        AWS_EC2_METADATA_SERVICE_ENDPOINT=moto.endpoint + "/",
    )
    assert _signed_with(proxy) == {("test-key", "us-east-1", "test-session-token")}
    assert "S3 credentials of the source: iam-role" in run.logs
    assert "test-secret-key" not in run.logs


def test_no_credentials_anywhere_is_a_configuration_error(
    tmp_path: Path, moto: MotoServer, mr_server: RealRegistryServer
) -> None:
    name = f"none-{next(_names)}"
    run = run_program(tmp_path, s3_to_s3(moto, mr_server, name))
    assert run.code == EXIT_CONFIG, run.termination
    assert "no S3 credentials" in run.termination
    assert "--destination-aws-access-key-id (MODEL_SYNC_DESTINATION_AWS_ACCESS_KEY_ID)" in run.termination
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" in run.termination


def test_a_web_identity_token_file_that_is_not_there_is_a_configuration_error(
    tmp_path: Path, moto: MotoServer, mr_server: RealRegistryServer
) -> None:
    """``AWS_WEB_IDENTITY_TOKEN_FILE`` set (say by the EKS webhook) but the token not mounted."""
    missing = tmp_path / "no-such-token"
    env = s3_to_s3(moto, mr_server, f"notoken-{next(_names)}", AWS_WEB_IDENTITY_TOKEN_FILE=str(missing))
    run = run_program(tmp_path, {**env, "AWS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/none"})
    assert run.code == EXIT_CONFIG, run.termination
    assert f"cannot read {missing}: No such file or directory" in run.termination
    assert "--destination-aws-access-key-id" in run.termination


# -- addressing, regions, TLS ----------------------------------------------------------------


@pytest.mark.parametrize("style", ["virtual", "path"])
def test_addressing_styles(style: str, tmp_path: Path, moto: MotoServer, mr_server: RealRegistryServer) -> None:
    """Virtual-hosted (``<bucket>.<endpoint host>/<key>``) and path-style requests, set by the
    parameter on one side and ``AWS_S3_ADDRESSING_STYLE`` on the other. The endpoint's name
    resolves nowhere: the requests go through an HTTP proxy (``HTTP_PROXY``) that connects to
    moto, which serves the bucket named in the Host header."""
    name = f"{style}-{next(_names)}"
    _model(moto, name)
    with FaultProxy(moto.port) as proxy:
        env = s3_to_s3(
            moto.virtual_endpoint,
            mr_server,
            name,
            MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID=moto.admin_key,
            MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY=moto.admin_secret,
            MODEL_SYNC_DESTINATION_AWS_ACCESS_KEY_ID=moto.admin_key,
            MODEL_SYNC_DESTINATION_AWS_SECRET_ACCESS_KEY=moto.admin_secret,
            MODEL_SYNC_DESTINATION_AWS_ADDRESSING_STYLE=style,
            AWS_S3_ADDRESSING_STYLE=style,
            HTTP_PROXY=proxy.url,
            NO_PROXY="127.0.0.1",  # the model registry
        )
        run = run_program(tmp_path, env)
    _assert_uploaded(run, moto, name)
    s3_requests = [r for r in proxy.requests if "authorization" in r.headers]
    hosts = {r.headers["host"].split(":")[0] for r in s3_requests}
    if style == "virtual":
        assert hosts == {f"models.{VIRTUAL_HOST}", f"out.{VIRTUAL_HOST}"}
        assert any(r.path.endswith(f"/{name}/w/big.bin?uploads") for r in s3_requests)
    else:
        assert hosts == {VIRTUAL_HOST}
        assert any(f"/out/{name}/w/big.bin" in r.path for r in s3_requests)


def test_the_region_comes_from_the_bucket_unless_given(
    tmp_path: Path, moto: MotoServer, mr_server: RealRegistryServer
) -> None:
    """No region anywhere: the program asks the bucket (HeadBucket's ``x-amz-bucket-region``)
    and signs with it; a region parameter is used as given."""
    moto.bucket("models-eu", "eu-west-1")
    name = f"region-{next(_names)}"
    s3 = moto.client("s3", "eu-west-1")
    for rel, data in FILES.items():
        s3.put_object(Bucket="models-eu", Key=f"{name}/{rel}", Body=data)
    keys = {
        "MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID": moto.admin_key,
        "MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY": moto.admin_secret,
        "MODEL_SYNC_DESTINATION_AWS_ACCESS_KEY_ID": moto.admin_key,
        "MODEL_SYNC_DESTINATION_AWS_SECRET_ACCESS_KEY": moto.admin_secret,
    }
    with FaultProxy(moto.port) as proxy:
        env = {**s3_to_s3(proxy.url, mr_server, name, **keys), "MODEL_SYNC_SOURCE_AWS_BUCKET": "models-eu"}
        run = run_program(tmp_path, env)
        assert run.code == EXIT_OK, run.termination
        assert "S3 bucket models-eu is in region eu-west-1" in run.logs
        assert _regions(proxy, "models-eu") == {"eu-west-1"}
        assert _regions(proxy, "out") == {"us-east-1"}

        proxy.reset()
        given = run_program(tmp_path, {**env, "MODEL_SYNC_SOURCE_AWS_REGION": "ap-south-1"})
        assert given.code == EXIT_OK, given.termination
        assert "S3 bucket models-eu is in region" not in given.logs
        assert _regions(proxy, "models-eu") == {"ap-south-1"}


def _regions(proxy: FaultProxy, bucket: str) -> set[str]:
    """The signing regions of the path-style requests to ``bucket`` (but the HeadBucket that
    asks for the region, signed with the default one)."""
    return {
        _scope_region(r.headers)
        for r in proxy.requests
        if r.path.split("?")[0].split("/")[1] == bucket and (r.method, r.path) != ("HEAD", f"/{bucket}")
    }


def _scope_region(headers: dict[str, str]) -> str:
    m = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", headers.get("authorization", ""))
    return m.group(1) if m else ""


def test_https_endpoint_needs_its_ca_bundle(tmp_path: Path, mr_server: RealRegistryServer) -> None:
    """An https:// endpoint with a private CA: a TLS error (not retried) without the CA bundle
    parameter, the upload with it (botocore sends the checksums as aws-chunked trailers over TLS)."""
    with MotoServer(tls=CertificateAuthority()) as server:
        server.bucket("models")
        server.bucket("out")
        name = f"tls-{next(_names)}"
        _model(server, name)
        env = s3_to_s3(server, mr_server, name, AWS_ACCESS_KEY_ID="tls-akid", AWS_SECRET_ACCESS_KEY="tls-secret")
        run = run_program(tmp_path, env)
        assert run.code == EXIT_CONFIG, run.termination
        assert "TLS verification failed" in run.termination
        assert server.ca_file is not None
        ca = str(server.ca_file)
        run = run_program(
            tmp_path, {**env, "MODEL_SYNC_SOURCE_AWS_CA_BUNDLE": ca, "MODEL_SYNC_DESTINATION_AWS_CA_BUNDLE": ca}
        )
        _assert_uploaded(run, server, name)


# -- the parameters ---------------------------------------------------------------------------


def _s3_env(**extra: str) -> dict[str, str]:
    return {
        "MODEL_SYNC_SOURCE_TYPE": "s3",
        "MODEL_SYNC_SOURCE_AWS_BUCKET": "b",
        "MODEL_SYNC_SOURCE_AWS_KEY": "k",
        "MODEL_SYNC_DESTINATION_OCI_URI": "registry.example:5000/m:v1",
        "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": "http://127.0.0.1:9",
        "MODEL_SYNC_REGISTRY_IS_SECURE": "false",
        "MODEL_SYNC_MODEL_ARTIFACT_ID": "7",
        **extra,
    }


def test_access_keys_are_optional_but_go_together() -> None:
    loc: Any = load_config([], _s3_env()).source
    assert loc.s3.access_key_id is None
    assert loc.s3.addressing_style == "auto"
    with pytest.raises(ConfigError, match=re.escape("--source-aws-secret-access-key (MODEL_SYNC_SOURCE_AWS_SECRET")):
        load_config([], _s3_env(MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID="akid"))
    with pytest.raises(
        ConfigError, match=re.escape("--source-aws-session-token (MODEL_SYNC_SOURCE_AWS_SESSION_TOKEN)")
    ):
        load_config([], _s3_env(MODEL_SYNC_SOURCE_AWS_SESSION_TOKEN="token"))


def test_session_token_and_addressing_style_precedence(tmp_path: Path) -> None:
    """Argument > ``MODEL_SYNC_*`` > credentials Secret file > ``AWS_S3_ADDRESSING_STYLE``."""
    creds = tmp_path / "creds"
    creds.mkdir()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "file-akid",
        "AWS_SECRET_ACCESS_KEY": "file-secret",
        "AWS_SESSION_TOKEN": "file-token",
        "AWS_S3_ADDRESSING_STYLE": "virtual",
    }.items():
        (creds / key).write_text(value)
    env = _s3_env(MODEL_SYNC_SOURCE_S3_CREDENTIALS_PATH=str(creds), AWS_S3_ADDRESSING_STYLE="path")
    s3: Any = load_config([], env).source.s3
    assert s3.session_token.get_secret_value() == "file-token"
    assert s3.addressing_style == "virtual"  # file > AWS_S3_ADDRESSING_STYLE
    s3 = load_config(["--source-aws-session-token", "arg-token"], env).source.s3
    assert s3.session_token.get_secret_value() == "arg-token"
    (creds / "AWS_S3_ADDRESSING_STYLE").unlink()
    assert load_config([], env).source.s3.addressing_style == "path"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=re.escape("--source-aws-addressing-style")):
        load_config([], {**env, "MODEL_SYNC_SOURCE_AWS_ADDRESSING_STYLE": "sideways"})
