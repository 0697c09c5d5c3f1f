"""Upload benchmark: S3 (SeaweedFS) -> OCI modelcar (docker-registry), everything on loopback.

    python -m tests.bench.upload [--size-mib 2048] [--files 8] [--write build/upload-benchmark.md]

Generates a model of ``--files`` files of random bytes (``--size-mib`` in total) straight into an
S3 bucket (multipart, streamed part by part), then moves the same bytes to the registry three ways,
each in its own child process so that its peak RSS can be read back:

(a) the upload program (``python -m model_registry_upload``), source ``s3``, destination
    ``oci``, registration (``create_model``) in the real model registry server on MariaDB, inside
    the timed run like every other step of the program;
(b) a plain copy: sequential streamed GETs from S3 feeding one uncompressed tar layer, pushed to
    the registry as one blob upload (POST, the body in one PATCH, closing PUT with the digest),
    then config and manifest; download and push overlap in one pass and both are timed;
(c) upstream's method, for real (``tests/bench/upstream_method.py``): the async-upload job's code
    path with its pinned ``model-registry[boto3,olot]==0.3.7`` and ``olot==0.1.8`` in their own venv
    plus ``skopeo`` (``hack/install-upstream-upload.sh``): boto3 download of every file into a
    scratch directory, then ``save_to_oci_registry`` (skopeo pull of a busybox base, one olot tar
    layer per file, skopeo push); its peak RSS is that of the process tree (skopeo included).

Then (a) runs twice more into the same repository: the same model under a new tag (every model
layer is already there), and with one file replaced by new bytes (only that layer is sent); the
report gives their times and how many model layers each uploaded (from the program's log).

For each: wall time, throughput (model MiB / s), peak RSS of the child (``VmHWM`` sampled from
``/proc`` and ``ru_maxrss`` from ``wait4``), and peak size of its scratch directory (sampled).
(a) runs with the program's defaults unless ``MODEL_SYNC_PARALLELISM`` / ``MODEL_SYNC_PART_SIZE``
are set in the environment. Needs ``weed``, ``docker-registry``, the ``model-registry`` server and
MariaDB (``make deps``); the servers start before anything is timed, and before each run the
written data is flushed and the servers left to go idle (``settle``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

from model_registry_upload.config import S3Location
from model_registry_upload.s3 import Part, S3Client
from tests.backends.oci import DistributionRegistry
from tests.backends.registry_server import RealRegistryServer
from tests.backends.s3 import ADMIN_KEY, ADMIN_SECRET, SeaweedS3
from tests.bench import upstream_method

MiB = 1024 * 1024
BUCKET, PREFIX = "bench", "model"
GEN_PART = 16 * MiB
CHUNK = 1 * MiB
ROOT = Path(__file__).resolve().parents[2]
TUNABLES = ("MODEL_SYNC_PARALLELISM", "MODEL_SYNC_PART_SIZE")
"""Passed through from the environment to (a); every other ``MODEL_SYNC_*`` variable is set here."""
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def s3_client(endpoint: str) -> S3Client:
    loc = S3Location(
        bucket=BUCKET,
        key=PREFIX,
        endpoint=endpoint,
        access_key_id=SecretStr(ADMIN_KEY),
        secret_access_key=SecretStr(ADMIN_SECRET),
    )
    return S3Client(loc, timeout=300)


# -- model generation --------------------------------------------------------------------


def generate_model(client: S3Client, size: int, files: int) -> list[tuple[str, int]]:
    """Random files streamed into ``s3://bench/model/``, one part in memory at a time."""
    with contextlib.suppress(client.client.exceptions.BucketAlreadyOwnedByYou):
        client.client.create_bucket(Bucket=BUCKET)
    sizes = [size // files] * files
    sizes[-1] += size - sum(sizes)
    out: list[tuple[str, int]] = []
    for i, n in enumerate(sizes):
        key = f"{PREFIX}/model-{i + 1:05d}-of-{files:05d}.safetensors"
        put_random(client, key, n)
        out.append((key, n))
    return out


def put_random(client: S3Client, key: str, n: int) -> None:
    """``n`` random bytes into ``s3://bench/<key>`` (multipart above one part, one part in memory)."""
    if n <= GEN_PART:
        client.put(BUCKET, key, os.urandom(n))
        return
    upload_id = client.create_multipart(BUCKET, key)
    parts: list[Part] = []
    left = n
    while left:
        part = min(GEN_PART, left)
        parts.append(client.upload_part(BUCKET, key, upload_id, len(parts) + 1, os.urandom(part)))
        left -= part
    client.complete_multipart(BUCKET, key, upload_id, parts)


# -- baselines (run as child processes: --worker plain|upstream) ----------------------------


def tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = size, 0o644, 0, 0, 0
    return info.tobuf(format=tarfile.GNU_FORMAT)


def pad(size: int) -> bytes:
    return b"\0" * (-size % 512)


def s3_stream(client: S3Client, key: str) -> Iterator[bytes]:
    """The object as one streamed GET (``requests`` on a presigned URL, as the baseline always was)."""
    url = client.client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key})
    resp = requests.get(url, stream=True, timeout=300)
    resp.raise_for_status()
    try:
        yield from resp.iter_content(CHUNK)
    finally:
        resp.close()


class Registry:
    """Plain distribution-API pushes (no auth, http)."""

    def __init__(self, url: str, repo: str) -> None:
        self.url, self.repo = url, repo
        self.session = requests.Session()

    def _start(self) -> str:
        r = self.session.post(f"{self.url}/v2/{self.repo}/blobs/uploads/", timeout=60)
        r.raise_for_status()
        loc = r.headers["Location"]
        return loc if "://" in loc else self.url + loc

    @staticmethod
    def _with_digest(loc: str, digest: str) -> str:
        return f"{loc}{'&' if '?' in loc else '?'}digest={digest}"

    def put_blob(self, body: Any, digest: str, size: int) -> None:  # noqa: ANN401 - bytes or a file
        r = self.session.put(
            self._with_digest(self._start(), digest),
            data=body,
            timeout=600,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        if r.status_code != 201:
            raise RuntimeError(f"blob PUT: {r.status_code} {r.text}")

    def stream_blob(self, chunks: Iterator[bytes]) -> tuple[str, int]:
        """POST, the whole body in one streamed PATCH, PUT with the digest computed on the way."""
        h = hashlib.sha256()
        size = 0

        def body() -> Iterator[bytes]:
            nonlocal size
            for chunk in chunks:
                h.update(chunk)
                size += len(chunk)
                yield chunk

        r = self.session.patch(
            self._start(), data=body(), timeout=600, headers={"Content-Type": "application/octet-stream"}
        )
        if r.status_code != 202:
            raise RuntimeError(f"blob PATCH: {r.status_code} {r.text}")
        loc = r.headers["Location"]
        loc = loc if "://" in loc else self.url + loc
        digest = "sha256:" + h.hexdigest()
        r = self.session.put(self._with_digest(loc, digest), timeout=600)
        if r.status_code != 201:
            raise RuntimeError(f"blob PUT: {r.status_code} {r.text}")
        return digest, size

    def finish(self, layer_digest: str, layer_size: int, tag: str) -> None:
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            }
        ).encode()
        cfg_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        self.put_blob(config, cfg_digest, len(config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer_size}],
        }
        r = self.session.put(
            f"{self.url}/v2/{self.repo}/manifests/{tag}",
            data=json.dumps(manifest).encode(),
            headers={"Content-Type": OCI_MANIFEST},
            timeout=60,
        )
        if r.status_code != 201:
            raise RuntimeError(f"manifest PUT: {r.status_code} {r.text}")


def worker_plain(spec: dict[str, Any]) -> None:
    client = s3_client(spec["s3"])
    reg = Registry(spec["registry"], spec["repo"])

    def layer() -> Iterator[bytes]:
        total = 0
        for key, size in spec["objects"]:
            header = tar_header("models/" + key.removeprefix(PREFIX + "/"), size)
            yield header
            yield from s3_stream(client, key)
            yield pad(size)
            total += len(header) + size + len(pad(size))
        # end-of-archive blocks, then padding to a whole record as tarfile writes it
        total += 1024
        yield b"\0" * (1024 + (-total % tarfile.RECORDSIZE))

    digest, size = reg.stream_blob(layer())
    reg.finish(digest, size, "v1")


# -- measuring a child process -------------------------------------------------------------


@dataclass
class Result:
    name: str
    seconds: float
    mib_s: float
    rss_mib: float
    scratch_mib: float
    detail: str = ""


def measure(name: str, argv: list[str], env: dict[str, str], scratch: Path, size: int) -> Result:
    scratch.mkdir(parents=True, exist_ok=True)
    peak_hwm_kib = 0

    def sample(pid: int) -> None:
        nonlocal peak_hwm_kib
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_hwm_kib = max(peak_hwm_kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass

    log = scratch.parent / f"{scratch.name}.log"
    child = upstream_method.run_child(name, argv, env, ROOT, log, scratch, sample, 0.05)
    rss_kib = max(peak_hwm_kib, child.usage.ru_maxrss)
    return Result(name, child.seconds, size / MiB / child.seconds, rss_kib / 1024, child.scratch_bytes / MiB)


# -- orchestration ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def settle(servers: list[Any], limit: float = 30.0) -> None:
    """Flush written data and wait until the servers are idle (under 5 % CPU over a second), so that
    no run pays for the work the previous step left behind (the first run after the model was
    generated was up to 1.5x slower without this)."""
    os.sync()
    pids = [server.proc.proc.pid for server in servers if server.proc is not None and server.proc.proc is not None]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(1.0)
        if sum(cpu_seconds(pid) for pid in pids) - before < 0.05:
            return
    print(f"servers still busy after {limit:.0f} s; measuring anyway", file=sys.stderr)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_SYNC_") or k in TUNABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "operator"), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env.update(extra)
    return env


def run_benchmark(size_mib: int, files: int) -> tuple[list[Result], float]:
    size = size_mib * MiB
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as tmp_name:
        tmp = Path(tmp_name)
        s3, reg, mr = SeaweedS3(tmp / "s3"), DistributionRegistry(), RealRegistryServer(tmp / "model-registry")
        try:
            s3.start()
            reg.start()
            mr.start()
            client = s3_client(s3.endpoint)
            t0 = time.monotonic()
            objects = generate_model(client, size, files)
            gen_s = time.monotonic() - t0
            print(f"generated {files} files, {size_mib} MiB in S3 in {gen_s:.1f} s", file=sys.stderr)

            def env_a(model: str, tag: str) -> dict[str, str]:
                meta = tmp / f"meta-{model}"
                meta.mkdir()
                (meta / "RegisteredModel.name").write_text(model)
                (meta / "ModelVersion.name").write_text("v1")
                return child_env(
                    {
                        "MODEL_SYNC_SOURCE_TYPE": "s3",
                        "MODEL_SYNC_SOURCE_AWS_BUCKET": BUCKET,
                        "MODEL_SYNC_SOURCE_AWS_KEY": PREFIX,
                        "MODEL_SYNC_SOURCE_AWS_ENDPOINT": s3.endpoint,
                        "MODEL_SYNC_SOURCE_AWS_ACCESS_KEY_ID": ADMIN_KEY,
                        "MODEL_SYNC_SOURCE_AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
                        "MODEL_SYNC_DESTINATION_TYPE": "oci",
                        "MODEL_SYNC_DESTINATION_OCI_URI": f"{reg.host}/bench/ours:{tag}",
                        "MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE": "scratch",
                        "MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY": "false",
                        "MODEL_SYNC_REGISTRY_SERVER_ADDRESS": mr.url,
                        "MODEL_SYNC_REGISTRY_IS_SECURE": "false",
                        "MODEL_SYNC_MODEL_UPLOAD_INTENT": "create_model",
                        "MODEL_SYNC_METADATA_CONFIGMAP_PATH": str(meta),
                        "MODEL_SYNC_STORAGE_PATH": str(tmp / f"scratch-{model}"),
                        "MODEL_SYNC_TIMEOUT": "300",
                        "TERMINATION_MESSAGE_PATH": str(tmp / f"termination-{model}"),
                        "LOGLEVEL": "INFO",
                    }
                )

            upload = [sys.executable, "-m", "model_registry_upload"]
            servers = [s3, reg, mr]
            settle(servers)
            results.append(
                measure("(a) upload program", upload, env_a("bench-model", "v1"), tmp / "scratch-bench-model", size)
            )
            scratch = tmp / "scratch-plain"
            spec = {
                "s3": s3.endpoint,
                "registry": reg.url,
                "repo": "bench/plain",
                "scratch": str(scratch),
                "objects": objects,
            }
            argv = [sys.executable, "-m", "tests.bench.upload", "--worker", "plain", "--spec", json.dumps(spec)]
            settle(servers)
            results.append(measure("(b) plain copy", argv, child_env({}), scratch, size))
            shutil.rmtree(scratch, ignore_errors=True)
            settle(servers)
            results.append(measure_upstream(s3.endpoint, reg, tmp / "scratch-upstream", size))
            check_same_layer(reg)
            # (a) again into the same repository: the same model under a new tag, then one file changed
            settle(servers)
            results.append(
                layer_counts(
                    measure(
                        "(a) same model, new tag", upload, env_a("bench-same", "v2"), tmp / "scratch-bench-same", size
                    ),
                    tmp / "scratch-bench-same.log",
                )
            )
            key, n = objects[0]
            put_random(client, key, n)
            settle(servers)
            results.append(
                layer_counts(
                    measure(
                        f"(a) one of {files} files changed, new tag",
                        upload,
                        env_a("bench-changed", "v3"),
                        tmp / "scratch-bench-changed",
                        size,
                    ),
                    tmp / "scratch-bench-changed.log",
                )
            )
        finally:
            mr.stop()
            reg.stop()
            s3.stop()
    return results, gen_s


def layer_counts(result: Result, log: Path) -> Result:
    """``result`` with how many model layers its run uploaded and how many it found in the repository."""
    text = log.read_text(errors="replace")
    uploaded = sum(1 for line in text.splitlines() if "model layer" in line and line.rstrip().endswith("uploaded"))
    reused = text.count("not uploaded again")
    result.detail = f"{uploaded} model layers uploaded, {reused} already in the repository (not read, not sent)"
    return result


def measure_upstream(s3_endpoint: str, reg: DistributionRegistry, scratch: Path, size: int) -> Result:
    """(c): upstream's job code path on the same bucket, to the same registry (busybox base, as upstream)."""
    spec = {
        "s3_endpoint": s3_endpoint,
        "access_key_id": ADMIN_KEY,
        "secret_access_key": ADMIN_SECRET,
        "bucket": BUCKET,
        "prefix": PREFIX,
        "base_image": reg.push_busybox_base(),
        "oci_ref": f"{reg.host}/bench/upstream:v1",
        "enable_tls_verify": False,
    }
    run = upstream_method.run(spec, scratch, scratch.parent / f"{scratch.name}.log", reg.host)
    shutil.rmtree(scratch, ignore_errors=True)
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in run.phases.items() if k != "save_to_oci_registry")
    peaks = ", ".join(f"{k} {v:.0f} MiB" for k, v in run.peak_by_command.items())
    detail = f"phases: {phases}; CPU {run.cpu_seconds:.1f} s; peak RSS per command: {peaks}"
    print(f"(c) {detail}", file=sys.stderr)
    return Result(
        "(c) upstream's job code path", run.seconds, size / MiB / run.seconds, run.rss_mib, run.scratch_mib, detail
    )


def check_same_layer(reg: DistributionRegistry) -> None:
    """What each method pushed: (a) one layer per model file after the base layers, (b) one layer
    of all files, (c) one layer per file (and more), as skopeo pushed them."""
    ours, _ = reg.get_manifest("bench/ours", "v1")
    plain, _ = reg.get_manifest("bench/plain", "v1")
    ours_sizes = [layer["size"] for layer in ours["layers"]]
    print(
        f"(a) layers ({len(ours_sizes)}, {sum(ours_sizes)} bytes); (b) model layer {plain['layers'][-1]['size']} bytes",
        file=sys.stderr,
    )
    index, _ = reg.get_manifest("bench/upstream", "v1")
    if "manifests" in index:  # --multi-arch all: every platform got the same layers
        index, _ = reg.get_manifest("bench/upstream", index["manifests"][0]["digest"])
    layers = [(layer["mediaType"].rsplit(".", 1)[-1], layer["size"]) for layer in index["layers"]]
    print(f"(c) layers as pushed ({len(layers)}, {sum(n for _, n in layers)} bytes): {layers}", file=sys.stderr)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def report(results: list[Result], size_mib: int, files: int, gen_s: float) -> str:
    a, b, c, *reuse = results
    buf = io.StringIO()
    buf.write(
        f"Model: {files} files of random bytes, {size_mib} MiB in all, in SeaweedFS S3; destination a local "
        f"docker-registry; (a) registers it in the model registry server on MariaDB; all on loopback "
        f"({os.cpu_count()} cores, {cpu_name()}, Python {platform.python_version()}). Generating the model "
        f"took {gen_s:.1f} s (not counted).\n\n"
    )
    buf.write("| Method | Wall time | Throughput | Peak RSS | Peak scratch disk |\n|---|---|---|---|---|\n")
    for r in (a, b, c):
        buf.write(
            f"| {r.name} | {r.seconds:.1f} s | {r.mib_s:.0f} MiB/s | {r.rss_mib:.0f} MiB | {r.scratch_mib:.0f} MiB |\n"
        )
    for r in (a, b, c):
        if r.detail:
            buf.write(f"\n{r.name}: {r.detail}\n")
    ratio, speedup = a.mib_s / b.mib_s, c.seconds / a.seconds
    buf.write("\n| Measure | Result | Target | Met |\n|---|---|---|---|\n")
    buf.write(f"| (a)/(b) throughput | {ratio:.2f} | ≥ 0.9 | {'yes' if ratio >= 0.9 else 'no'} |\n")
    buf.write(f"| (a) vs (c) speed-up | {speedup:.2f}x | ≥ 3x | {'yes' if speedup >= 3 else 'no'} |\n")
    buf.write(f"| (a) peak RSS | {a.rss_mib:.0f} MiB | ≤ 256 MiB | {'yes' if a.rss_mib <= 256 else 'no'} |\n")
    full = a.scratch_mib >= size_mib * 0.5
    buf.write(
        f"| (a) peak scratch disk | {a.scratch_mib:.0f} MiB | no full scratch copy | {'no' if full else 'yes'} |\n"
    )
    if reuse:
        buf.write(
            "\nThen (a) again into the same repository (model registered under new names):\n\n"
            "| Run | Wall time | Peak RSS | Model layers |\n|---|---|---|---|\n"
        )
        for r in reuse:
            buf.write(f"| {r.name} | {r.seconds:.1f} s | {r.rss_mib:.0f} MiB | {r.detail} |\n")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=2048, help="total model size in MiB")
    parser.add_argument("--files", type=int, default=8, help="number of model files")
    parser.add_argument("--write", type=Path, help="also write the Markdown report to this file")
    parser.add_argument("--worker", choices=("plain",), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec: dict[str, Any] = json.loads(args.spec)
        worker_plain(spec)
        return 0
    if args.files < 1 or args.size_mib < args.files:
        parser.error("need --files >= 1 and at least 1 MiB per file")
    results, gen_s = run_benchmark(args.size_mib, args.files)
    text = report(results, args.size_mib, args.files, gen_s)
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
