"""HTTP and S3 under network faults: a real nginx behind :class:`tests.backends.faults.FaultProxy`,
which cuts, stalls or refuses connections on the wire (faults nginx cannot be made to produce on
demand); every byte that passes is nginx's own, Range / If-Range / If-Match answers included.

Two read paths: an archive is downloaded whole into the storage path (resumed from where a cut
left it), a plain file is read as parallel ranged parts (a failed part is fetched again).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from model_registry_upload.destinations.s3 import FINGERPRINT_META
from model_registry_upload.errors import EXIT_OK, EXIT_TRANSFER
from model_registry_upload.registration import UPLOADED_LAYERS
from model_registry_upload.sources.uri import HTTP_ATTEMPTS
from tests.backends.faults import Fault, FaultProxy, Request
from tests.backends.http import NginxServer
from tests.backends.oci import DistributionRegistry
from tests.backends.registry_server import RealRegistryServer
from tests.backends.s3 import ADMIN_KEY, ADMIN_SECRET, SeaweedS3

from .helpers import (
    TITLE,
    Run,
    count_layer_uploads,
    metadata_dir,
    placeholder_artifact,
    publish_hf,
    pull_model_layers,
    registry_env,
    rest,
    run_upload,
    s3_admin,
    s3_bucket,
    s3_upload,
    sha,
    write_dir,
)

PART = 5 * 1024 * 1024
"""``MODEL_SYNC_PART_SIZE`` of these tests (the smallest allowed): a plain file of
:data:`PLAIN_SIZE` is read in 5 parts."""
PLAIN_SIZE = 4 * PART + 1000

_names = itertools.count()


@pytest.fixture
def proxy(nginx: NginxServer) -> Iterator[FaultProxy]:
    with FaultProxy(nginx.port) as p:
        yield p


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for rel, data in files.items():
            zf.writestr(rel, data)
    return buf.getvalue()


def _zip_model() -> dict[str, bytes]:
    return {
        "config.json": b'{"architectures": ["Zipped"]}',
        "weights/part-1.bin": os.urandom(700 * 1024),
        "tokenizer/vocab/tokenizer.json": b'{"vocab": {}}',
    }


def _publish(nginx: NginxServer, proxy: FaultProxy, rel: str, data: bytes, mtime: int | None = None) -> str:
    """``rel`` on nginx; the URL through the proxy."""
    nginx.publish(rel, data)
    if mtime is not None:  # nginx's ETag is mtime + size: a rewrite within the same second needs a new mtime
        os.utime(nginx.root / rel, (mtime, mtime))
    return f"{proxy.url}/{rel}"


def _etag(nginx: NginxServer, rel: str) -> str:
    etag = requests.head(f"{nginx.url}/{rel}", timeout=5).headers["ETag"]
    assert not etag.startswith("W/")
    return etag


def _is_probe(req: Request) -> bool:
    return req.headers.get("range") == "bytes=0-0"


def _whole_file(path: str) -> Callable[[Request], bool]:
    """Matches the GETs of the whole of ``path`` or of the rest of it (a download, not its probe)."""
    return lambda r: r.path == path and not _is_probe(r)


class _Upload:
    """One update_artifact run into ``models/faults-N:v1`` of the local registry."""

    def __init__(self, tmp_path: Path, oci: DistributionRegistry, mr: RealRegistryServer) -> None:
        self.tmp_path, self.oci, self.mr = tmp_path, oci, mr
        n = next(_names)
        self.repo = f"models/faults-{n}"
        self.artifact = placeholder_artifact(mr.url, f"faults-{n}")

    def run(self, url: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], **extra: str) -> Run:
        env = {
            "MODEL_SYNC_SOURCE_TYPE": "uri",
            "MODEL_SYNC_SOURCE_URI": url,
            "MODEL_SYNC_DESTINATION_TYPE": "oci",
            "MODEL_SYNC_DESTINATION_OCI_URI": f"{self.oci.host}/{self.repo}:v1",
            "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": "scratch",
            "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY": "false",
            "MODEL_SYNC_PART_SIZE": str(PART),
            "MODEL_SYNC_PARALLELISM": "2",
            "MODEL_SYNC_MODEL_ARTIFACT_ID": self.artifact,
            **registry_env(self.mr.url),
            **extra,
        }
        return run_upload(self.tmp_path, env, caplog, capsys)

    def files(self) -> dict[str, str]:
        return pull_model_layers(self.oci, self.repo, "v1")[0]

    def assert_live(self, run: Run) -> None:
        assert run.code == EXIT_OK, run.termination
        art = rest(self.mr.url, "GET", f"/model_artifacts/{self.artifact}")
        assert (art["state"], art["uri"]) == ("LIVE", f"oci://{self.oci.host}/{self.repo}:v1")

    def assert_nothing_done(self, run: Run) -> None:
        """Failed with a transfer error: the artifact is untouched and nothing was tagged."""
        assert run.code == EXIT_TRANSFER, run.termination
        art = rest(self.mr.url, "GET", f"/model_artifacts/{self.artifact}")
        assert art.get("state") != "LIVE"
        assert art["uri"] == "PLACEHOLDER"
        tags = self.oci.session().get(f"{self.oci.url}/v2/{self.repo}/tags/list", timeout=5)
        assert tags.status_code == 404, tags.text


@pytest.fixture
def upload(tmp_path: Path, oci_registry: DistributionRegistry, mr_server: RealRegistryServer) -> _Upload:
    return _Upload(tmp_path, oci_registry, mr_server)


def test_zip_download_resumes_from_where_the_cut_left_it(
    nginx: NginxServer,
    proxy: FaultProxy,
    upload: _Upload,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The connection drops 300 kB into the archive: the download goes on with ``Range: bytes=N-``
    from the bytes it has (``If-Range`` with the ETag first seen), and the unpacked zip (sub-
    directories kept) is the model."""
    files = _zip_model()
    rel = f"faults/resume-{next(_names)}/model.zip"
    url = _publish(nginx, proxy, rel, _zip(files))
    cut = 300_000
    proxy.add(Fault("cut", match=_whole_file("/" + rel), after=cut))

    run = upload.run(url, caplog, capsys)
    upload.assert_live(run)
    assert upload.files() == {k: sha(v) for k, v in files.items()}
    probe, first, resumed = proxy.requests_for("/" + rel)
    assert _is_probe(probe)
    assert first.range_start is None
    # everything the cut let through, minus the answer's head (a few hundred bytes), is kept
    assert resumed.range_start is not None
    assert cut - 1024 < resumed.range_start < cut
    assert resumed.headers["if-range"] == _etag(nginx, rel)
    assert "interrupted" in run.logs


@pytest.mark.parametrize(
    ("path_kind", "cuts"),
    [
        ("archive", HTTP_ATTEMPTS - 1),
        ("archive", HTTP_ATTEMPTS),
        ("parts", HTTP_ATTEMPTS - 1),
        ("parts", HTTP_ATTEMPTS),
    ],
)
def test_cuts_are_retried_up_to_the_limit(
    path_kind: str,
    cuts: int,
    nginx: NginxServer,
    proxy: FaultProxy,
    upload: _Upload,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each GET is tried ``HTTP_ATTEMPTS`` times: one cut fewer succeeds; that many fail the
    upload with a transfer error naming the attempts, with nothing LIVE and nothing pushed."""
    n = next(_names)
    if path_kind == "archive":
        files = _zip_model()
        rel = f"faults/retries-{n}/model.zip"
        url = _publish(nginx, proxy, rel, _zip(files))
        match = _whole_file("/" + rel)
        expected = {k: sha(v) for k, v in files.items()}
    else:
        data = os.urandom(PLAIN_SIZE)
        rel = f"faults/retries-{n}/model.bin"
        url = _publish(nginx, proxy, rel, data)
        part = f"bytes={2 * PART}-{3 * PART - 1}"  # the third part, every time it is asked for

        def match(r: Request) -> bool:
            return r.headers.get("range") == part

        expected = {"model.bin": sha(data)}
    proxy.add(Fault("cut", match=match, after=50_000, times=cuts))

    run = upload.run(url, caplog, capsys)
    tried = [r for r in proxy.requests_for("/" + rel) if match(r)]
    if cuts < HTTP_ATTEMPTS:
        upload.assert_live(run)
        assert upload.files() == expected
        assert len(tried) == cuts + 1
    else:
        upload.assert_nothing_done(run)
        assert f"after {HTTP_ATTEMPTS} attempts" in run.termination
        assert len(tried) == HTTP_ATTEMPTS
    if path_kind == "archive":  # each try resumes where the previous one stopped
        starts = [r.range_start or 0 for r in tried]
        assert starts == sorted(starts)
        assert len(set(starts)) == len(starts)
        assert starts[0] == 0
    else:  # a part is fetched again whole, from its first byte
        assert {r.range_start for r in tried} == {2 * PART}


def test_a_stalled_answer_times_out_and_the_part_is_fetched_again(
    nginx: NginxServer,
    proxy: FaultProxy,
    upload: _Upload,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The server stops sending in the middle of a part for longer than ``MODEL_SYNC_TIMEOUT``:
    the read times out, the part is asked for again and the upload completes."""
    data = os.urandom(PLAIN_SIZE)
    rel = f"faults/stall-{next(_names)}/model.bin"
    url = _publish(nginx, proxy, rel, data)
    part = f"bytes={PART}-{2 * PART - 1}"
    proxy.add(Fault("stall", match=lambda r: r.headers.get("range") == part, after=20_000, seconds=4))

    run = upload.run(url, caplog, capsys, MODEL_SYNC_TIMEOUT="1")
    upload.assert_live(run)
    assert upload.files() == {"model.bin": sha(data)}
    assert len([r for r in proxy.requests_for("/" + rel) if r.headers.get("range") == part]) == 2
    assert f"bytes {PART}-{2 * PART - 1} failed (attempt 1/{HTTP_ATTEMPTS})" in run.logs


def test_a_refused_connection_is_retried(
    nginx: NginxServer,
    proxy: FaultProxy,
    upload: _Upload,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first connection is closed without an answer (the probe): it is tried again."""
    data = os.urandom(3000)
    rel = f"faults/refuse-{next(_names)}/model.bin"
    url = _publish(nginx, proxy, rel, data)
    proxy.add(Fault("refuse"))

    run = upload.run(url, caplog, capsys)
    upload.assert_live(run)
    assert upload.files() == {"model.bin": sha(data)}
    first, second = proxy.requests_for("/" + rel)[:2]
    assert _is_probe(first)
    assert _is_probe(second)


def test_a_file_changed_before_the_resume_is_downloaded_again_not_spliced(
    nginx: NginxServer,
    proxy: FaultProxy,
    upload: _Upload,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The archive is replaced on the server while the download is cut: the resume's
    ``If-Range`` no longer matches, nginx sends the whole new file, and the model is the new
    archive (the old bytes already on disk are not joined with the new ones)."""
    old, new = _zip_model(), _zip_model()
    rel = f"faults/changed-{next(_names)}/model.zip"
    url = _publish(nginx, proxy, rel, _zip(old), mtime=1_700_000_000)
    old_etag = _etag(nginx, rel)

    def replace() -> None:
        _publish(nginx, proxy, rel, _zip(new), mtime=1_700_000_500)

    proxy.add(Fault("cut", match=_whole_file("/" + rel), after=300_000, on_fault=replace))
    run = upload.run(url, caplog, capsys)
    upload.assert_live(run)
    assert upload.files() == {k: sha(v) for k, v in new.items()}
    _, _, resumed = proxy.requests_for("/" + rel)
    assert resumed.range_start is not None
    assert resumed.range_start > 0
    assert resumed.headers["if-range"] == old_etag != _etag(nginx, rel)


def test_a_plain_file_changed_while_its_parts_are_read_fails_at_once(
    nginx: NginxServer,
    proxy: FaultProxy,
    upload: _Upload,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Parts already read belong to the version first seen; after a cut the file is a new
    version: the next ranged GET's ``If-Match`` gets 412 and the upload fails without trying
    again (every further part would be refused too), with nothing LIVE and nothing pushed."""
    rel = f"faults/changed-parts-{next(_names)}/model.bin"
    url = _publish(nginx, proxy, rel, os.urandom(PLAIN_SIZE), mtime=1_700_000_000)

    def replace() -> None:
        _publish(nginx, proxy, rel, os.urandom(PLAIN_SIZE), mtime=1_700_000_500)

    part = f"bytes={PART}-{2 * PART - 1}"
    proxy.add(Fault("cut", match=lambda r: r.headers.get("range") == part, after=10_000, on_fault=replace))
    run = upload.run(url, caplog, capsys)
    upload.assert_nothing_done(run)
    assert "changed on the server while it was read" in run.termination
    refused = [r for r in proxy.requests_for("/" + rel) if r.headers.get("range") == part]
    assert len(refused) == 2  # the cut one, then one 412: no further tries
    assert all(r.headers["if-match"] for r in refused)


def test_a_retry_after_a_failed_layer_uploads_only_the_layers_still_missing(
    nginx: NginxServer,
    proxy: FaultProxy,
    tmp_path: Path,
    oci_registry: DistributionRegistry,
    mr_server: RealRegistryServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """create_model from a Hugging Face repository whose third file cannot be read: the two
    layers pushed before the failure are in no manifest, but the unfinished artifact records
    them, so the retry (a new Pod of the Job) uploads only the third. Once LIVE, the record is
    gone and the artifact's own custom properties are what the metadata says."""
    n = next(_names)
    name, rev = f"retried-{n}", "r1"
    files = {
        "a.safetensors": os.urandom(300_000),
        "b.safetensors": os.urandom(300_000),
        "c/c.safetensors": os.urandom(300_000),
    }
    publish_hf(nginx, f"org/{name}", rev, files)
    monkeypatch.setenv("HF_ENDPOINT", proxy.url + "/hf")
    broken = f"/hf/org/{name}/resolve/{rev}/c/c.safetensors"
    proxy.add(Fault("cut", match=lambda r: r.path == broken and not _is_probe(r), after=1000, times=HTTP_ATTEMPTS))
    repo = f"models/retried-{n}"
    meta = metadata_dir(
        tmp_path / "meta",
        {
            "RegisteredModel.name": name,
            "ModelVersion.name": "v1",
            "ModelArtifact.custom_properties": '{"team": "vision"}',
        },
    )
    env = {
        "MODEL_SYNC_SOURCE_TYPE": "uri",
        "MODEL_SYNC_SOURCE_URI": f"hf://org/{name}:{rev}",
        "MODEL_SYNC_DESTINATION_TYPE": "oci",
        "MODEL_SYNC_DESTINATION_OCI_URI": f"{oci_registry.host}/{repo}:v1",
        "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": "scratch",
        "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY": "false",
        "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_model",
        "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
        "MODEL_SYNC_PARALLELISM": "2",
        **registry_env(mr_server.url),
    }

    with monkeypatch.context() as m:
        first_sizes = count_layer_uploads(m)
        first = run_upload(tmp_path, env, caplog, capsys)
    assert first.code == EXIT_TRANSFER, first.termination
    assert "c/c.safetensors" in first.termination
    [artifact] = [
        a
        for a in rest(mr_server.url, "GET", "/model_artifacts?pageSize=1000")["items"]
        if a["uri"] == f"oci://{oci_registry.host}/{repo}:v1"
    ]
    assert artifact["state"] == "ABANDONED"
    journal = json.loads(artifact["customProperties"][UPLOADED_LAYERS]["string_value"])
    assert sorted(d["annotations"][TITLE] for d in journal) == ["models/a.safetensors", "models/b.safetensors"]
    assert len(first_sizes) == 3  # a, b and the one that failed

    proxy.reset()
    with monkeypatch.context() as m:
        second_sizes = count_layer_uploads(m)
        second = run_upload(tmp_path, env, caplog, capsys)
    assert second.code == EXIT_OK, second.termination
    assert second.json()["ModelArtifact"]["id"] == artifact["id"]  # the same entities, resumed
    assert len(second_sizes) == 1  # only c
    assert "pushed by an earlier attempt" in second.logs
    assert pull_model_layers(oci_registry, repo, "v1")[0] == {rel: sha(data) for rel, data in files.items()}
    live = rest(mr_server.url, "GET", f"/model_artifacts/{artifact['id']}")
    assert live["state"] == "LIVE"
    assert live["customProperties"] == {"team": {"metadataType": "MetadataStringValue", "string_value": "vision"}}


# -- S3 behind the proxy: what reaches the server ----------------------------------------------


def _s3_writes(proxy: FaultProxy, prefix: str) -> list[str]:
    """The object writes under ``prefix`` as ``"<what> <key below prefix>"``: ``put`` (one PUT),
    ``create`` / ``part`` / ``complete`` (multipart), sorted."""
    out = []
    for r in proxy.requests:
        path, _, query = r.path.partition("?")
        if r.method not in ("PUT", "POST") or not path.startswith(prefix):
            continue
        what = (
            ("part" if "partNumber=" in query else "put")
            if r.method == "PUT"
            else ("complete" if "uploadId=" in query else "create")
        )
        out.append(f"{what} {path.removeprefix(prefix)}")
    return sorted(out)


@pytest.mark.parametrize("kind", ["s3", "pvc"])
def test_s3_destination_does_not_upload_an_identical_object_again(
    kind: str,
    tmp_path: Path,
    s3_server: SeaweedS3,
    mr_server: RealRegistryServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same model into the same S3 prefix twice (a retried Job, say): the second run writes
    no object, known by the source fingerprint in each object's metadata (S3 source) or by the
    ETag the local file would get (PVC source, multipart included). A rewritten file of the same
    size is uploaded again, and only it. The writes are counted on the wire to SeaweedFS."""
    n = next(_names)
    files = {"config.json": b'{"a": 1}', "w/big.bin": os.urandom(2 * PART + 7), "w/small.bin": os.urandom(40_000)}
    s3_bucket(s3_server, "out")
    with FaultProxy(s3_server.port) as witness:
        prefix = f"/out/same-{kind}-{n}/"

        def upload() -> list[str]:
            if kind == "s3":
                s3_upload(s3_server, "models", f"same-src-{n}", files)
                source = {
                    "MODEL_SYNC_SOURCE_TYPE": "s3",
                    "MODEL_SYNC_SOURCE_AWS_BUCKET": "models",
                    "MODEL_SYNC_SOURCE_AWS_KEY": f"same-src-{n}",
                    "MODEL_SYNC_SOURCE_AWS_ENDPOINT": s3_server.endpoint,
                    "MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID": ADMIN_KEY,
                    "MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
                }
            else:
                source = {
                    "MODEL_SYNC_SOURCE_TYPE": "pvc",
                    "MODEL_SYNC_SOURCE_PATH": str(write_dir(tmp_path / "pvc", files)),
                }
            witness.reset()
            run = run_upload(
                tmp_path,
                {
                    **source,
                    "MODEL_SYNC_DESTINATION_TYPE": "s3",
                    "MODEL_SYNC_DESTINATION_AWS_BUCKET": "out",
                    "MODEL_SYNC_DESTINATION_AWS_KEY": prefix.strip("/").removeprefix("out/"),
                    "MODEL_SYNC_DESTINATION_AWS_ENDPOINT": witness.url,
                    "MODEL_SYNC_DESTINATION_AWS_ACCESS_KEY_ID": ADMIN_KEY,
                    "MODEL_SYNC_DESTINATION_AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
                    "MODEL_SYNC_PART_SIZE": str(PART),
                    "MODEL_SYNC_MODEL_ARTIFACT_ID": placeholder_artifact(
                        mr_server.url, f"same-{kind}-{n}-{next(_names)}"
                    ),
                    **registry_env(mr_server.url),
                },
                caplog,
                capsys,
            )
            assert run.code == EXIT_OK, run.termination
            client = s3_admin(s3_server)
            for rel, data in files.items():
                assert sha(client.get_range("out", f"{prefix[5:]}{rel}", 0, len(data) - 1)) == sha(data)
            return _s3_writes(witness, prefix)

        first = upload()
        assert first == [
            "complete w/big.bin",
            "create w/big.bin",
            "part w/big.bin",
            "part w/big.bin",
            "part w/big.bin",
            "put config.json",
            "put w/small.bin",
        ]
        assert upload() == []
        files["w/small.bin"] = os.urandom(40_000)
        if kind == "s3":
            meta = s3_admin(s3_server).stat("out", f"{prefix[5:]}w/big.bin")
            assert meta is not None
            assert meta.metadata.get(FINGERPRINT_META, "").startswith("sha256:")
        assert upload() == ["put w/small.bin"]


def test_a_cut_s3_source_part_is_fetched_again(
    tmp_path: Path,
    s3_server: SeaweedS3,
    oci_registry: DistributionRegistry,
    mr_server: RealRegistryServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SeaweedFS's answer to one ranged GET of the source is cut twice: that part is asked for
    again, from its first byte, and the modelcar holds the whole file."""
    n = next(_names)
    data = os.urandom(PLAIN_SIZE)
    s3_upload(s3_server, "models", f"cut-src-{n}", {"model.bin": data})
    part = f"bytes={PART}-{2 * PART - 1}"
    with FaultProxy(s3_server.port) as proxy:
        proxy.add(Fault("cut", match=lambda r: r.headers.get("range") == part, after=70_000, times=2))
        upload = _Upload(tmp_path, oci_registry, mr_server)
        env = {
            "MODEL_SYNC_SOURCE_TYPE": "s3",
            "MODEL_SYNC_SOURCE_AWS_BUCKET": "models",
            "MODEL_SYNC_SOURCE_AWS_KEY": f"cut-src-{n}",
            "MODEL_SYNC_SOURCE_AWS_ENDPOINT": proxy.url,
            "MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID": ADMIN_KEY,
            "MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
        }
        run = upload.run("", caplog, capsys, **env)
        tried = [r for r in proxy.requests if r.headers.get("range") == part]
    upload.assert_live(run)
    assert upload.files() == {"model.bin": sha(data)}
    assert len(tried) == 3
