"""Pieces of the upload program without external servers: metadata, archives, redaction, streams."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import tarfile
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from model_registry_upload import redact
from model_registry_upload.destinations.oci import (
    _tarinfo,
    model_tar_chunks,
    model_tar_size,
)
from model_registry_upload.destinations.oci_client import OciError, _StreamedBody, parse_ref
from model_registry_upload.errors import EXIT_CONFIG, ConfigError, TransferError, UnsafeArchiveError
from model_registry_upload.metadata import load_metadata, metadata_value, typed_properties
from model_registry_upload.progress import Progress
from model_registry_upload.sources.archive import unpack
from model_registry_upload.sources.base import (
    BufferPool,
    Chunk,
    ParallelRangeReader,
    SourceFile,
    read_chunks,
    safe_relpath,
)
from model_registry_upload.sources.uri import UriSource, public_url

# -- metadata -----------------------------------------------------------------------------


def test_metadata_snake_and_camel_case(tmp_path: Path) -> None:
    values = {
        "RegisteredModel.name": "m\n",
        "RegisteredModel.customProperties": json.dumps({"a": 1}),
        "RegisteredModel.custom_properties": json.dumps({"b": "x"}),
        "ModelVersion.name": "v1",
        "ModelArtifact.modelFormatName": "onnx",
        "ModelArtifact.model_source_kind": "transfer_job",
        "Unknown.key": "ignored",
        "..data": "ignored",
    }
    for k, v in values.items():
        (tmp_path / k).write_text(v)
    (tmp_path / "..2026_11_23").mkdir()
    meta = load_metadata(tmp_path)
    assert meta.registered_model.name == "m"
    assert meta.registered_model.custom_properties == {"a": 1, "b": "x"}
    assert meta.model_artifact.model_format_name == "onnx"
    assert meta.model_artifact.model_source_kind == "transfer_job"


def test_metadata_errors(tmp_path: Path) -> None:
    (tmp_path / "ModelVersion.custom_properties").write_text("{not json")
    with pytest.raises(ConfigError, match="metadata key 'ModelVersion.custom_properties': not valid JSON"):
        load_metadata(tmp_path)
    (tmp_path / "ModelVersion.custom_properties").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        load_metadata(tmp_path)
    (tmp_path / "ModelVersion.custom_properties").unlink()
    (tmp_path / "RegisteredModel.name").write_text("n")
    (tmp_path / "RegisteredModel.id").write_text("3")
    with pytest.raises(ConfigError, match="both RegisteredModel.name and RegisteredModel.id"):
        load_metadata(tmp_path)


def test_custom_property_types() -> None:
    assert metadata_value("i", 5) == {"metadataType": "MetadataIntValue", "int_value": "5"}
    assert metadata_value("f", 1.5) == {"metadataType": "MetadataDoubleValue", "double_value": 1.5}
    assert metadata_value("b", False) == {"metadataType": "MetadataBoolValue", "bool_value": False}
    assert metadata_value("s", "") == {"metadataType": "MetadataStringValue", "string_value": ""}
    assert metadata_value("l", [1, "a"]) == {"metadataType": "MetadataStringValue", "string_value": '[1, "a"]'}
    assert metadata_value("d", {"k": 1})["string_value"] == '{"k": 1}'  # type: ignore[index]
    assert metadata_value("big", 10**12) == {"metadataType": "MetadataStringValue", "string_value": str(10**12)}
    assert metadata_value("n", None) is None
    typed = {"metadataType": "MetadataStringValue", "string_value": "x"}
    assert metadata_value("t", typed) == typed
    assert typed_properties({"n": None, "x": 1}) == {"x": {"metadataType": "MetadataIntValue", "int_value": "1"}}
    with pytest.raises(ConfigError, match="invalid MetadataValue"):
        metadata_value("bad", {"metadataType": "MetadataIntValue"})


# -- archives -----------------------------------------------------------------------------


def _tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w") as tar:
        for m in members:
            if m.isfile():
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
            else:
                tar.addfile(m)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_member("../up.txt")], "escapes the target directory"),
        ([_member("a/../../up.txt")], "escapes the target directory"),
        ([_member("/etc/passwd-copy")], "absolute path"),
        ([_member("link", tarfile.SYMTYPE, "../../etc/passwd")], "points outside"),
        ([_member("link", tarfile.SYMTYPE, "/etc/passwd")], "points outside"),
        ([_member("hard", tarfile.LNKTYPE, "../x")], "points outside"),
        ([_member("dev", tarfile.CHRTYPE)], "device or fifo"),
    ],
)
def test_unsafe_tar_rejected_before_writing(tmp_path: Path, members: list[tarfile.TarInfo], message: str) -> None:
    archive = _tar(tmp_path / "evil.tar", [_member("ok.txt"), *members])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=message):
        unpack(archive, dest)
    assert not (dest / "ok.txt").exists()  # checked before anything is extracted


def test_safe_tar_and_zip(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "ok.tar",
        [_member("d/"[:-1], tarfile.DIRTYPE), _member("d/f.txt"), _member("d/l", tarfile.SYMTYPE, "f.txt")],
    )
    unpack(archive, tmp_path / "t")
    assert (tmp_path / "t" / "d" / "f.txt").read_bytes() == b"x"
    zpath = tmp_path / "ok.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("sub/a.txt", b"a")
    unpack(zpath, tmp_path / "z")
    assert (tmp_path / "z" / "sub" / "a.txt").read_bytes() == b"a"
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../evil.txt", b"e")
    with pytest.raises(UnsafeArchiveError, match="escapes"):
        unpack(tmp_path / "evil.zip", tmp_path / "ze")


def test_safe_relpath() -> None:
    assert safe_relpath("a//b/./c", "t") == "a/b/c"
    for bad in ("../x", "a/../../x", "/abs", "C:/x", ""):
        with pytest.raises(Exception, match="escapes|absolute|empty"):
            safe_relpath(bad, "t")


# -- redaction ----------------------------------------------------------------------------


def test_redaction_of_every_registered_form(caplog: pytest.LogCaptureFixture) -> None:
    redact.install()
    redact.register_basic_auth("robot", "pa55-word-xyz")
    redact.register_secret("tok-abcdef-123")
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("thirdparty.client")
    log.debug("auth %s and %s", "robot:pa55-word-xyz", "cm9ib3Q6cGE1NS13b3JkLXh5eg==")
    log.info("token=%s", "tok-abcdef-123")
    try:
        raise ValueError("failed with pa55-word-xyz")
    except ValueError:
        log.exception("boom")
    text = caplog.text
    for secret in ("pa55-word-xyz", "cm9ib3Q6cGE1NS13b3JkLXh5eg==", "tok-abcdef-123"):
        assert secret not in text
    assert "***" in text


def test_public_url_hides_credentials_and_query() -> None:
    assert public_url("https://u:p@h:8443/a/b.bin?X-Amz-Signature=abc") == "https://h:8443/a/b.bin"


def test_parse_ref() -> None:
    r = parse_ref("busybox")
    assert (r.registry, r.repository, r.tag) == ("docker.io", "library/busybox", "latest")
    assert r.api_host == "registry-1.docker.io"
    r = parse_ref("127.0.0.1:5000/a/b:v1")
    assert (r.registry, r.repository, r.tag) == ("127.0.0.1:5000", "a/b", "v1")
    r = parse_ref("oci://quay.io/org/m@sha256:" + "0" * 64)
    assert r.digest == "sha256:" + "0" * 64
    with pytest.raises(Exception, match="invalid repository"):
        parse_ref("host:1/UPPER/case:v1")


# -- streams ------------------------------------------------------------------------------


def into(fetch: Callable[[int, int], bytes]) -> Callable[[int, int, memoryview], None]:
    """A range reader's ``fetch_into`` over a function returning the bytes ``start..end``."""

    def fetch_into(start: int, end: int, view: memoryview) -> None:
        data = fetch(start, end)
        assert len(data) == len(view)
        view[:] = data

    return fetch_into


def test_parallel_range_reader_is_ordered_and_bounded() -> None:
    data = os.urandom(1_000_003)
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def fetch(start: int, end: int) -> bytes:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.002)
        with lock:
            in_flight -= 1
        return data[start : end + 1]

    reader = ParallelRangeReader(into(fetch), len(data), part_size=10_000, parallelism=3, what="t")
    out = bytearray()
    while True:
        chunk = reader.read(7_777)
        if not chunk:
            break
        out += chunk
        assert len(reader.pending) <= 3
    assert bytes(out) == data
    assert peak <= 3


def write_model_tar(files: list[SourceFile], out: io.BytesIO, progress: Progress) -> None:
    """The model layer's tar stream, written out whole (the upload streams it instead)."""
    for chunk in model_tar_chunks(files, progress, BufferPool(1024 * 1024, 1)):
        try:
            out.write(chunk.view)
        finally:
            chunk.release()


def test_model_tar_is_reproducible(tmp_path: Path) -> None:
    def files() -> list[SourceFile]:
        blobs = {"b/x.bin": b"1" * 5000, "a.txt": b"2", "b/c/d.txt": b""}
        return [SourceFile(k, len(v), lambda v=v: io.BytesIO(v)) for k, v in blobs.items()]  # type: ignore[misc]

    outs = []
    for _ in range(2):
        buf = io.BytesIO()
        progress = Progress(None)
        write_model_tar(files(), buf, progress)
        outs.append(buf.getvalue())
        assert progress.done == 5001
    assert outs[0] == outs[1]
    with tarfile.open(fileobj=io.BytesIO(outs[0])) as tar:
        names = tar.getnames()
    assert names == ["models", "models/b", "models/b/c", "models/a.txt", "models/b/c/d.txt", "models/b/x.bin"]


# -- entry point --------------------------------------------------------------------------


def test_module_entry_point_config_error(tmp_path: Path) -> None:
    term = tmp_path / "term"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_SYNC_")}
    env["TERMINATION_MESSAGE_PATH"] = str(term)
    out = subprocess.run(
        [sys.executable, "-m", "model_registry_upload", "--source-type", "uri", "--model-artifact-id", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == EXIT_CONFIG
    assert "--source-uri (MODEL_SYNC_SOURCE_URI)" in term.read_text()
    assert "configuration error" in out.stderr
    help_out = subprocess.run(
        [sys.executable, "-m", "model_registry_upload", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert help_out.returncode == 0
    assert "MODEL_SYNC_DESTINATION_OCI_URI" in help_out.stdout


# -- bounded buffers: memory follows part size x parallelism, not the model size ----------


class _Ranges(BaseHTTPRequestHandler):
    """Serves ``data`` with ``Range`` support, straight from a memoryview (no copies here)."""

    protocol_version = "HTTP/1.1"
    data = b""
    clients: set[int] = set()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401
        pass

    def do_GET(self) -> None:  # noqa: N802
        type(self).clients.add(self.client_address[1])
        view = memoryview(self.data)
        rng = self.headers.get("Range")
        if rng:
            first, _, last = rng.split("=", 1)[1].partition("-")
            start, end = int(first), min(int(last), len(view) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(view)}")
        else:
            start, end = 0, len(view) - 1
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(view[start : end + 1])


@pytest.fixture
def range_server() -> Any:  # noqa: ANN401
    _Ranges.data = os.urandom(24 * 1024 * 1024 + 12_345)
    _Ranges.clients = set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ranges)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/model.bin"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_ranged_source_recycles_a_bounded_pool_of_buffers(range_server: str, tmp_path: Path) -> None:
    """24 MiB in 1 MiB parts over real HTTP: every part lands in one of parallelism + 1 reused
    buffers, the bytes are handed over without copies, connections are reused, and the Python
    heap never holds much more than those buffers (``resp.content`` joins, or copying each part
    into fresh bytes, would break the bound)."""
    part, parallelism = 1024 * 1024, 3
    source = UriSource(range_server, storage_path=tmp_path, part_size=part, parallelism=parallelism, timeout=10)
    [f] = source.files()
    assert f.size == len(_Ranges.data)
    digest = hashlib.sha256()
    buffers: set[int] = set()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        stream = f.open()
        try:
            for chunk in read_chunks(stream, f.size, BufferPool(part, 1), "t"):
                assert chunk.view.obj is not None
                buffers.add(id(chunk.view.obj))
                assert source.buffers.in_use <= parallelism + 1
                digest.update(chunk.view)
                chunk.release()
        finally:
            stream.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.digest() == hashlib.sha256(_Ranges.data).digest()
    assert source.buffers.allocated <= parallelism + 1
    assert source.buffers.peak_in_use <= parallelism + 1
    assert len(buffers) <= parallelism + 1  # 25 parts, the same few buffers
    assert peak < (parallelism + 2) * part, f"{peak} bytes allocated at the peak"
    assert len(_Ranges.clients) <= parallelism + 1  # one connection per fetch thread, kept open


def test_parallel_range_reader_waits_for_released_buffers() -> None:
    """A consumer holding parts keeps the reader from fetching further: the pool is the bound."""
    data = os.urandom(100_000)
    pool = BufferPool(10_000, 3)
    reader = ParallelRangeReader(into(lambda s, e: data[s : e + 1]), len(data), 10_000, 8, "t", pool=pool)
    held = [reader.next_chunk(), reader.next_chunk()]
    assert pool.in_use == 3  # two held, one fetched ahead: no more
    out = bytearray()
    for chunk in held:
        assert chunk is not None
        out += chunk.view
        chunk.release()
    while (chunk := reader.next_chunk()) is not None:
        out += chunk.view
        chunk.release()
        assert pool.peak_in_use <= 3
    reader.close()
    assert bytes(out) == data
    assert pool.allocated == 3
    assert pool.in_use == 0


def test_model_tar_chunks_match_tarfile_byte_for_byte() -> None:
    """The hand-written tar stream is exactly what ``tarfile`` writes (so layer digests do not
    change), long names and empty files included, and ``model_tar_size`` announces its size."""
    blobs = {
        "b/x.bin": os.urandom(70_001),
        "a.txt": b"2",
        "b/c/empty": b"",
        "d" * 90 + "/" + "e" * 80 + ".safetensors": os.urandom(1_000_000),
        "f.bin": os.urandom(512),
    }

    def files(ranged: bool) -> list[SourceFile]:
        def opener(v: bytes) -> Any:  # noqa: ANN401
            if ranged:
                return ParallelRangeReader(into(lambda s, e: v[s : e + 1]), len(v), 65_536, 3, "t")
            return io.BytesIO(v)

        return [SourceFile(k, len(v), lambda v=v: opener(v)) for k, v in blobs.items()]  # type: ignore[misc]

    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        dirs = ["models", "models/b", "models/b/c", "models/" + "d" * 90]
        for d in dirs:
            tar.addfile(_tarinfo(d + "/", directory=True))
        for name in sorted(blobs):
            tar.addfile(_tarinfo(f"models/{name}", len(blobs[name])), io.BytesIO(blobs[name]))
    for ranged in (False, True):
        pool = BufferPool(4096, 2)
        out = bytearray()
        for chunk in model_tar_chunks(files(ranged), None, pool):
            out += chunk.view
            chunk.release()
        assert bytes(out) == expected.getvalue()
        assert pool.in_use == 0
    assert model_tar_size(files(False)) == len(expected.getvalue())


def test_short_source_file_is_an_error() -> None:
    files = [SourceFile("m.bin", 10, lambda: io.BytesIO(b"12345"))]
    with pytest.raises(TransferError, match="ended early"):
        list(model_tar_chunks(files, None, BufferPool(4, 10)))


def test_streamed_blob_body_hashes_and_releases_after_sending() -> None:
    data = [os.urandom(n) for n in (512, 3 * 1024 * 1024, 7, 2 * 1024 * 1024)]
    released: list[int] = []
    chunks = [Chunk(memoryview(d), lambda i=i: released.append(i)) for i, d in enumerate(data)]  # type: ignore[misc]
    digest = hashlib.sha256()
    body = _StreamedBody(chunks, sum(map(len, data)), digest)
    assert len(body) == sum(map(len, data))
    for i, view in enumerate(body):
        assert released == list(range(i))  # the chunk being sent is still held
        assert bytes(view) == data[i]
    assert released == [0, 1, 2, 3]
    assert digest.digest() == hashlib.sha256(b"".join(data)).digest()
    with pytest.raises(OciError, match="cannot be sent twice"):
        list(body)
    with pytest.raises(OciError, match="more than the 10 bytes"):
        list(_StreamedBody([Chunk(memoryview(b"x" * 11))], 10, hashlib.sha256()))
    with pytest.raises(OciError, match="9 bytes for 10"):
        list(_StreamedBody([Chunk(memoryview(b"x" * 9))], 10, hashlib.sha256()))
