"""End-to-end inputs against real servers: credentials of the sources (URI credentials
directory with a basic-auth URL, an authenticated OCI source), the progress log lines, and the
model registry parameters (author, CA bundle through an environment variable)."""

from __future__ import annotations

import base64
import json
import os
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from model_registry_upload.errors import EXIT_CONFIG, EXIT_OK, EXIT_TRANSFER
from model_registry_upload.registration import INCOMPLETE_MARKER
from tests.backends.certs import CertificateAuthority
from tests.backends.http import BASIC_PASSWORD, BASIC_USER, NginxServer
from tests.backends.oci import PASSWORD, USER, DistributionRegistry
from tests.backends.registry_server import BearerTLSProxy, RealRegistryServer, official_client_read

from .helpers import (
    MiB,
    metadata_dir,
    placeholder_artifact,
    publish_hf,
    pull_model_layers,
    push_model_image,
    registry_env,
    rest,
    run_upload,
    sha,
    write_dir,
)

MR = RealRegistryServer
SOURCE_ANNOTATION = "io.kubeflow.model-registry.source"


def oci_dest(reg: DistributionRegistry, ref: str) -> dict[str, str]:
    return {
        "MODEL_SYNC_DESTINATION_TYPE": "oci",
        "MODEL_SYNC_DESTINATION_OCI_URI": f"{reg.host}/{ref}",
        "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": "scratch",
        "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY": "false",
    }


def assert_not_live(mr: MR, art: str) -> None:
    got = rest(mr.url, "GET", f"/model_artifacts/{art}")
    assert got.get("state") != "LIVE"  # unset or not LIVE
    assert got["uri"] == "PLACEHOLDER"


# -- URI credentials directory: a URL with basic-auth credentials ---------------------------


def test_uri_credentials_dir_with_basic_auth_url(
    tmp_path: Path,
    nginx_basic_auth: NginxServer,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The source URI comes only from the file ``URI`` of MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH and
    carries ``user:password@`` for an nginx location behind ``auth_basic``: the file is streamed
    (several ranged GETs, each authenticated) and pulled back intact; the password shows up in no
    log line, no termination message, no image annotation and no registry field."""
    data = os.urandom(2 * 5 * MiB + 77)  # three parts of MODEL_SYNC_PART_SIZE
    public = nginx_basic_auth.publish("protected/weights/model.safetensors", data)
    host = public.split("://", 1)[1].split("/", 1)[0]
    path = public.split(host, 1)[1]
    creds = tmp_path / "uri-creds"
    creds.mkdir()

    def upload(url: str, tag: str) -> tuple[Any, str]:
        (creds / "URI").write_text(url + "\n")
        art = placeholder_artifact(mr_server.url, f"uri-basic-auth-{tag}")
        env = {
            "MODEL_SYNC_SOURCE_TYPE": "uri",
            "MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH": str(creds),
            **oci_dest(oci_registry, f"models/uri-basic:{tag}"),
            **registry_env(mr_server.url),
            "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
        }
        return run_upload(tmp_path, env, caplog, capsys), art

    # the location is really protected: without credentials, and with a wrong password, a clear 401
    r, art = upload(public, "anonymous")
    assert r.code == EXIT_TRANSFER, r.termination
    assert f"GET {public} failed: HTTP 401" in r.termination
    assert_not_live(mr_server, art)
    wrong = "wrong-basic-pass-0042"
    r, art = upload(f"http://{BASIC_USER}:{wrong}@{host}{path}", "wrong")
    assert r.code == EXIT_TRANSFER, r.termination
    assert f"GET {public} failed: HTTP 401" in r.termination
    assert wrong not in r.logs
    assert wrong not in r.termination
    assert_not_live(mr_server, art)

    secret_url = f"http://{BASIC_USER}:{BASIC_PASSWORD}@{host}{path}"
    r, art = upload(secret_url, "v1")
    assert r.code == EXIT_OK, r.termination
    pulled, manifest, _ = pull_model_layers(oci_registry, "models/uri-basic", "v1")
    assert pulled == {"model.safetensors": sha(data)}
    assert manifest["annotations"][SOURCE_ANNOTATION] == public  # the URL without its credentials
    got = rest(mr_server.url, "GET", f"/model_artifacts/{art}")
    assert got["state"] == "LIVE"
    assert got["uri"] == f"oci://{oci_registry.host}/models/uri-basic:v1"
    pair = f"{BASIC_USER}:{BASIC_PASSWORD}"
    for secret in (BASIC_PASSWORD, pair, base64.b64encode(pair.encode()).decode(), secret_url):
        assert secret not in r.logs, f"secret leaked into the logs: {secret[:4]}..."
        assert secret not in r.termination
        assert secret not in json.dumps(manifest)
        assert secret not in json.dumps(got)
    assert public in r.logs  # the source is still named, without the credentials


# -- OCI source behind authentication -------------------------------------------------------


def test_oci_source_with_credentials(
    tmp_path: Path,
    oci_registry_auth: DistributionRegistry,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A modelcar in a registry with htpasswd auth is the source: read with the credentials of a
    dockerconfigjson (MODEL_SYNC_SOURCE_OCI_CREDENTIALS_PATH) and, separately, of
    MODEL_SYNC_SOURCE_OCI_USERNAME / _PASSWORD; no or wrong credentials fail with a clear message."""
    files = {"config.json": b'{"a": 1}', "w/model.bin": os.urandom(700_000)}
    push_model_image(oci_registry_auth, "src/private", "v1", files)
    src_ref = f"{oci_registry_auth.host}/src/private:v1"
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    dockercfg = tmp_path / "source-dockerconfig.json"
    dockercfg.write_text(json.dumps({"auths": {oci_registry_auth.host: {"auth": auth}}}))

    def upload(tag: str, creds: dict[str, str]) -> tuple[Any, str]:
        art = placeholder_artifact(mr_server.url, f"oci-private-{tag}")
        env = {
            "MODEL_SYNC_SOURCE_TYPE": "oci",
            "MODEL_SYNC_SOURCE_OCI_URI": f"oci://{src_ref}",
            "MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY": "false",
            **creds,
            **oci_dest(oci_registry, f"models/from-private:{tag}"),
            **registry_env(mr_server.url),
            "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
        }
        return run_upload(tmp_path, env, caplog, capsys), art

    params = {"MODEL_SYNC_SOURCE_OCI_USERNAME": USER, "MODEL_SYNC_SOURCE_OCI_PASSWORD": PASSWORD}
    for tag, creds in (("dockercfg", {"MODEL_SYNC_SOURCE_OCI_CREDENTIALS_PATH": str(dockercfg)}), ("params", params)):
        r, art = upload(tag, creds)
        assert r.code == EXIT_OK, r.termination
        pulled, manifest, _ = pull_model_layers(oci_registry, "models/from-private", tag)
        assert pulled == {rel: sha(data) for rel, data in files.items()}
        assert manifest["annotations"][SOURCE_ANNOTATION] == f"oci://{src_ref}"
        assert rest(mr_server.url, "GET", f"/model_artifacts/{art}")["state"] == "LIVE"
        for secret in (PASSWORD, auth):
            assert secret not in r.logs
            assert secret not in r.termination

    manifest_path = "/v2/src/private/manifests/v1"
    wrong = "not-the-registry-pass"
    r, art = upload("wrong", {"MODEL_SYNC_SOURCE_OCI_USERNAME": USER, "MODEL_SYNC_SOURCE_OCI_PASSWORD": wrong})
    assert r.code == EXIT_TRANSFER
    assert (
        f"registry {oci_registry_auth.host} refused GET {manifest_path}: HTTP 401 (missing or wrong credentials?)"
    ) in r.termination
    assert wrong not in r.logs
    assert wrong not in r.termination
    assert_not_live(mr_server, art)
    r, art = upload("anonymous", {})
    assert r.code == EXIT_TRANSFER
    assert f"refused GET {manifest_path}: HTTP 401" in r.termination
    assert_not_live(mr_server, art)
    for tag in ("wrong", "anonymous"):
        resp = oci_registry.session().get(f"{oci_registry.url}/v2/models/from-private/manifests/{tag}", timeout=5)
        assert resp.status_code == 404


# -- progress lines -------------------------------------------------------------------------

_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}
_SIZE = r"(\d+(?:\.\d)?) (B|KiB|MiB|GiB|TiB)"
_LINE = re.compile(rf"^upload: {_SIZE} / {_SIZE} \((\d+\.\d)%\), {_SIZE}/s$")
_FINISHED = re.compile(rf"^upload finished: {_SIZE} in (\d+\.\d) s \({_SIZE}/s average\)$")


def _bytes(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


@pytest.mark.parametrize("interval", [0.2, 0.5])
def test_progress_lines_at_the_configured_interval(
    interval: float,
    tmp_path: Path,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A transfer of a few seconds (a Hugging Face layout served at a limited rate) logs
    ``upload: done / total (pct%), rate/s`` every MODEL_SYNC_PROGRESS_INTERVAL seconds: several
    lines, the done bytes never go back, each rate matches the bytes moved since the previous
    line, and the final line reports the whole model."""
    # nginx sends up to limit_rate bytes per started second of a request, so each 192 KiB file
    # takes up to a second; three layers are in flight: about three files a second
    rate_limit = 128 * 1024
    files = {f"shard-{i:02d}.bin": os.urandom(192 * 1024) for i in range(9)}
    total = sum(map(len, files.values()))
    with NginxServer(rate_limit=rate_limit) as slow:
        publish_hf(slow, "org/paced", "main", files, root="slow/hf")
        monkeypatch.setenv("HF_ENDPOINT", slow.url + "/slow/hf")
        art = placeholder_artifact(mr_server.url, f"paced-{interval}")
        env = {
            "MODEL_SYNC_SOURCE_TYPE": "uri",
            "MODEL_SYNC_SOURCE_URI": "hf://org/paced",
            **oci_dest(oci_registry, f"models/paced:i{interval}"),
            **registry_env(mr_server.url),
            "MODEL_SYNC_MODEL_ARTIFACT_ID": art,
            "MODEL_SYNC_PROGRESS_INTERVAL": str(interval),
        }
        r = run_upload(tmp_path, env, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    assert r.json()["bytes"] == total
    pulled, _, _ = pull_model_layers(oci_registry, "models/paced", f"i{interval}")
    assert pulled == {rel: sha(data) for rel, data in files.items()}

    records = [rec for rec in caplog.records if rec.name == "model_registry_upload.progress"]
    lines: list[tuple[float, float, float, float, int]] = []  # (created, done, pct, rate, unit of done)
    for rec in records:
        m = _LINE.match(rec.getMessage())
        if m is None:
            continue
        done, line_total = _bytes(m[1], m[2]), _bytes(m[3], m[4])
        assert abs(line_total - total) <= 0.05 * _UNITS[m[4]]  # figures are rounded to 0.1 unit
        assert abs(float(m[5]) - 100 * done / total) <= 100 * 0.05 * _UNITS[m[2]] / total + 0.1
        lines.append((rec.created, done, float(m[5]), _bytes(m[6], m[7]), _UNITS[m[2]]))
    finished = [m for m in (_FINISHED.match(rec.getMessage()) for rec in records) if m is not None]
    assert len(finished) == 1, [rec.getMessage() for rec in records]
    end = finished[0]
    duration = float(end[3])
    assert abs(_bytes(end[1], end[2]) - total) <= 0.05 * _UNITS[end[2]]  # the final line: the whole model
    assert duration >= 1.5, "the transfer was too fast to say anything about the cadence"

    # several lines, about duration / interval of them
    assert len(lines) >= max(3, int(0.5 * duration / interval)), (duration, lines)
    assert len(lines) <= duration / interval + 1
    times = [line[0] for line in lines]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.5 * interval, gaps
    assert 0.8 * interval <= statistics.median(gaps) <= 2 * interval, gaps
    dones = [line[1] for line in lines]
    assert dones == sorted(dones), dones
    assert dones[-1] <= total + 0.05 * lines[-1][4]  # 1.69 MiB is written 1.7 MiB
    assert dones[-1] > dones[0]  # the bytes moved while the lines were written
    assert 0 < lines[-1][2] <= 100.0
    # each rate is the bytes since the previous line over the time since then (formatting rounds):
    # line by line where enough bytes moved for the 0.1 unit rounding, and over the whole run
    # (rate x gap summed gives the bytes moved; the record times jitter under load, the sum does not)
    for (t0, d0, _, _, _), (t1, d1, _, rate, unit) in zip(lines, lines[1:], strict=False):
        if d1 - d0 >= 512 * 1024:
            assert 0.5 * (d1 - d0) / (t1 - t0) <= rate <= 2 * (d1 - d0) / (t1 - t0), (d0, d1, t1 - t0, rate)
        elif d1 == d0:
            assert rate <= 0.1 * unit / (t1 - t0), (d0, t1 - t0, rate)
    moved = sum(rate * (t1 - t0) for (t0, *_), (t1, _, _, rate, _) in zip(lines, lines[1:], strict=False))
    rounding = 0.05 * max(line[4] for line in lines) * 2
    assert 0.75 * (dones[-1] - dones[0]) - rounding <= moved <= 1.33 * (dones[-1] - dones[0]) + rounding, (moved, lines)


# -- model registry parameters ---------------------------------------------------------------


def test_registry_author_is_the_default_version_author(
    tmp_path: Path,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--registry-author / MODEL_SYNC_REGISTRY_AUTHOR is the author the registry records for the
    new version when the metadata has no ModelVersion.author (flag over env), and not the model's
    owner; a ModelVersion.author in the metadata wins."""
    src = write_dir(tmp_path / "pvc", {"model.bin": b"authored" * 100})
    meta = metadata_dir(tmp_path / "meta", {"RegisteredModel.name": "authored-model", "ModelVersion.name": "v1"})
    base = {
        "MODEL_SYNC_SOURCE_TYPE": "pvc",
        "MODEL_SYNC_SOURCE_PATH": str(src),
        **registry_env(mr_server.url),
        "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
        "MODEL_SYNC_REGISTRY_AUTHOR": "env-author",
    }

    r = run_upload(
        tmp_path,
        {**base, **oci_dest(oci_registry, "models/authored:v1"), "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_model"},
        caplog,
        capsys,
        argv=["--registry-author", "flag-author"],
    )
    assert r.code == EXIT_OK, r.termination
    model_id = r.json()["RegisteredModel"]["id"]
    back = official_client_read(mr_server.url, "authored-model", "v1")
    assert back["model"]["id"] == model_id
    assert back["version"]["author"] == "flag-author"
    assert back["model"]["owner"] is None  # the owner has no default (as upstream)
    assert back["artifact"]["state"] == "LIVE"

    (meta / "ModelVersion.name").write_text("v2")
    version = {**base, "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_version", "MODEL_SYNC_MODEL_ID": model_id}
    r = run_upload(tmp_path, {**version, **oci_dest(oci_registry, "models/authored:v2")}, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    assert official_client_read(mr_server.url, "authored-model", "v2")["version"]["author"] == "env-author"

    (meta / "ModelVersion.name").write_text("v3")
    (meta / "ModelVersion.author").write_text("meta-author")
    r = run_upload(tmp_path, {**version, **oci_dest(oci_registry, "models/authored:v3")}, caplog, capsys)
    assert r.code == EXIT_OK, r.termination
    assert official_client_read(mr_server.url, "authored-model", "v3")["version"]["author"] == "meta-author"


def test_registry_custom_ca_from_envvar(
    tmp_path: Path,
    oci_registry: DistributionRegistry,
    mr_server: MR,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """MODEL_SYNC_REGISTRY_CUSTOM_CA_ENVVAR names the variable holding the CA bundle path of a
    secure registry (TLS proxy with a bearer token): the right CA works, another CA or an unset
    variable (system trust, as upstream) is a TLS error, a path that does not exist is a
    configuration error naming both; only the successful run registers anything."""
    token = "ca-envvar-registry-token-5521"  # noqa: S105 - test value
    wrong_ca = tmp_path / "other-ca.pem"
    wrong_ca.write_text(CertificateAuthority("some other CA").cert_pem)
    src = write_dir(tmp_path / "pvc", {"model.bin": b"ca" * 500})
    meta = metadata_dir(tmp_path / "meta", {"RegisteredModel.name": "ca-envvar-model"})
    proxy = BearerTLSProxy(mr_server.url, token)
    proxy.start()
    try:
        env = {
            "MODEL_SYNC_SOURCE_TYPE": "pvc",
            "MODEL_SYNC_SOURCE_PATH": str(src),
            **oci_dest(oci_registry, "models/ca-envvar:v1"),
            "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": proxy.url,
            "MODEL_SYNC_REGISTRY_IS_SECURE": "true",
            "MODEL_SYNC_REGISTRY_USER_TOKEN": token,
            "MODEL_SYNC_REGISTRY_CUSTOM_CA_ENVVAR": "MR_CA_BUNDLE",
            "MODEL_SYNC_REGISTRY_AUTHOR": "ca-author",
            "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_model",
            "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
        }
        for ca in (None, str(wrong_ca)):
            r = run_upload(tmp_path, {**env, **({"MR_CA_BUNDLE": ca} if ca else {})}, caplog, capsys)
            assert r.code == EXIT_CONFIG, r.termination
            assert f"model registry {proxy.url}/api/model_registry/v1alpha3: TLS error" in r.termination
        missing = tmp_path / "no-such-ca.pem"
        r = run_upload(tmp_path, {**env, "MR_CA_BUNDLE": str(missing)}, caplog, capsys)
        assert r.code == EXIT_CONFIG
        assert r.termination == (
            f"configuration error: --registry-custom-ca-envvar "
            f"(MODEL_SYNC_REGISTRY_CUSTOM_CA_ENVVAR): CA bundle {missing} (the value of "
            "environment variable MR_CA_BUNDLE) not found"
        )
        assert official_client_read(mr_server.url, "ca-envvar-model", "1.0.0")["model"] is None
        r = run_upload(tmp_path, {**env, "MR_CA_BUNDLE": str(proxy.ca_file)}, caplog, capsys)
        assert r.code == EXIT_OK, r.termination
        assert token not in r.logs
    finally:
        proxy.stop()
    back = official_client_read(mr_server.url, "ca-envvar-model", "1.0.0")
    assert back["model"]["id"] == r.json()["RegisteredModel"]["id"]
    assert back["version"]["author"] == "ca-author"
    assert back["artifact"]["state"] == "LIVE"
    assert back["artifact"]["uri"] == f"oci://{oci_registry.host}/models/ca-envvar:v1"
    assert INCOMPLETE_MARKER not in (back["model"]["custom_properties"] or {})
