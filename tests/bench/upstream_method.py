"""Method (c) of the upload benchmark: upstream's async-upload job code path, run for real.

The upstream job (kubeflow/hub ``jobs/async-upload``, image ``ghcr.io/kubeflow/hub/job/async-upload``)
pins ``model-registry[boto3,olot]==0.3.7`` and ``olot==0.1.8`` and runs ``skopeo``. For an S3 source
and an OCI destination its ``perform_download`` + ``perform_upload`` do:

1. ``download_from_s3``: a boto3 client from ``model_registry.utils._connect_to_s3`` (1 MiB
   multipart settings, 10 connections), ``list_objects_v2`` over the prefix, then one
   ``download_file`` per object, sequentially, into ``STORAGE_PATH``;
2. ``save_to_oci_registry(base_image, oci_ref, dest_dir=STORAGE_PATH, model_files_path=STORAGE_PATH,
   custom_oci_backend=_get_skopeo_backend(push_args=["--dest-tls-verify=false"]))``, which runs
   ``skopeo copy --multi-arch all --remove-signatures docker://<base> oci:<STORAGE_PATH>:latest``,
   walks ``STORAGE_PATH`` (the base image's layout included, as upstream does), adds one tar layer
   per file with ``olot.basics.oci_layers_on_top``, and runs
   ``skopeo copy --multi-arch all --dest-tls-verify=false oci:<STORAGE_PATH>:latest docker://<ref>``.

:func:`run` runs exactly that, with the installed upstream packages, in the venv that
``hack/install-upstream-upload.sh`` creates: this file is also the driver script (``--driver``), and
the driver imports nothing from this project. The only additions are environmental: ``HOME``
points at a directory holding ``.config/containers/policy.json`` (``insecureAcceptAnything``) and
``registries.conf`` marking the loopback registry ``insecure`` (upstream's base-image pull has no
TLS switch, so in a cluster the base image must come from a TLS registry), and ``TMPDIR`` is inside
the scratch directory so temporary files count as scratch disk. The pull and push callables of the
backend are wrapped to time them; nothing else is changed.

Measured like the other methods: wall time, peak scratch disk (sampled size of the scratch
directory) and peak RSS, here of the whole process tree (the driver plus its ``skopeo`` children):
the largest sampled sum of ``VmRSS`` over the tree, at least the driver's own ``VmHWM`` and the
``ru_maxrss`` that ``wait4`` reports.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
MODEL_REGISTRY_VERSION = "0.3.7"
OLOT_VERSION = "0.1.8"
ROOT = Path(__file__).resolve().parents[2]


def venv_python() -> Path:
    root = os.environ.get("MRO_CACHE_DIR") or str(Path.home() / ".cache" / "model-registry-operator")
    return Path(root) / "upstream-upload-venv" / "bin" / "python"


def missing() -> str | None:
    """Why (c) cannot run here, or None."""
    if not venv_python().is_file():
        return f"{venv_python()} not found: run hack/install-upstream-upload.sh (make bench does)"
    if not any((Path(d) / "skopeo").is_file() for d in os.environ.get("PATH", "").split(os.pathsep) if d):
        return "skopeo not found: run hack/install-upstream-upload.sh (make bench does)"
    return None


# -- the driver: runs in the upstream venv, imports only the stdlib and upstream's packages ----------


def download_from_s3(utils: Any, spec: dict[str, Any], storage_path: str) -> None:  # noqa: ANN401
    """Upstream JOB/job/download.py ``download_from_s3``, as the job calls it."""
    s3_client, _ = utils._connect_to_s3(
        spec["s3_endpoint"],
        spec["access_key_id"],
        spec["secret_access_key"],
        spec.get("region"),
        multipart_threshold=1024 * 1024,
        multipart_chunksize=1024 * 1024,
        max_pool_connections=10,
    )
    bucket_name, prefix = spec["bucket"], spec["prefix"]
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket_name, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/"):
                continue
            local_path = os.path.join(storage_path, os.path.relpath(key, prefix))
            os.makedirs(os.path.dirname(local_path), exist_ok=True)
            s3_client.download_file(bucket_name, key, local_path)


def drive(spec: dict[str, Any]) -> dict[str, float]:
    """Upstream's perform_download + perform_upload for an S3 source and an OCI destination."""
    utils = importlib.import_module("model_registry.utils")  # upstream's client, not this project's
    storage_path = spec["storage_path"]
    phases: dict[str, float] = {}
    t0 = time.monotonic()
    download_from_s3(utils, spec, storage_path)
    phases["download"] = time.monotonic() - t0

    # JOB/job/upload.py _get_upload_params
    push_args: list[str] = []
    if not spec["enable_tls_verify"]:
        push_args.append("--dest-tls-verify=false")
    backend = utils._get_skopeo_backend(push_args=push_args)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            start = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] = time.monotonic() - start

        return call

    backend = dataclasses.replace(backend, pull=timed("base_pull", backend.pull), push=timed("push", backend.push))
    params = utils.OCIParams(
        base_image=spec["base_image"],
        oci_ref=spec["oci_ref"],
        dest_dir=storage_path,
        oci_username=None,
        oci_password=None,
        custom_oci_backend=backend,
    )
    # JOB/job/upload.py perform_upload
    t1 = time.monotonic()
    uri = utils.save_to_oci_registry(
        **{field.name: getattr(params, field.name) for field in dataclasses.fields(params)},
        model_files_path=storage_path,
    )
    phases["save_to_oci_registry"] = time.monotonic() - t1
    phases["layers"] = phases["save_to_oci_registry"] - phases["base_pull"] - phases["push"]
    print(f"uploaded: {uri}", flush=True)
    return phases


# -- the measuring side (project venv) ---------------------------------------------------------------


@dataclasses.dataclass
class UpstreamRun:
    seconds: float
    rss_mib: float
    scratch_mib: float
    cpu_seconds: float
    """User + system CPU time of the driver and its skopeo children (``wait4``)."""
    phases: dict[str, float]
    peak_by_command: dict[str, float]
    """Largest ``VmHWM`` seen per command name (MiB), e.g. ``python`` and ``skopeo``."""


@dataclasses.dataclass
class ChildRun:
    seconds: float
    scratch_bytes: int
    """Largest sampled size of the scratch directory."""
    usage: resource.struct_rusage
    """What ``wait4`` reports for the child and its waited-for descendants."""


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def run_child(
    name: str,
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    log: Path,
    scratch: Path,
    sample: Callable[[int], None],
    interval: float,
) -> ChildRun:
    """Run ``argv`` (output to ``log``) to its end; meanwhile, every ``interval`` seconds, call ``sample(pid)``
    and sample the size of ``scratch``. A non-zero exit raises, with the tail of ``log``.

    How :mod:`tests.bench.upload` measures every method; like the rest of this module it needs only the
    stdlib, so the driver (``--driver``, in the upstream venv) still imports this module as it is.
    """
    peak_scratch = 0
    done = threading.Event()
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def sampling() -> None:
        nonlocal peak_scratch
        while not done.is_set():
            sample(proc.pid)
            peak_scratch = max(peak_scratch, dir_size(scratch))
            done.wait(interval)

    sampler = threading.Thread(target=sampling, daemon=True)
    sampler.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        done.set()
        raise
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
    return ChildRun(seconds, peak_scratch, usage)


def _tree(root: int) -> list[int]:
    """``root`` and its descendants, from the ``ppid`` field of every ``/proc/<pid>/stat``."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _memory(pid: int) -> tuple[str, int, int]:
    """(command name, VmRSS KiB, VmHWM KiB); zeros once the process is gone."""
    name, rss, hwm = "?", 0, 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Name:"):
                name = line.split()[1]
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return name, rss, hwm


def write_containers_config(home: Path, registry_host: str) -> None:
    """policy.json and registries.conf where containers/image looks for per-user ones."""
    conf = home / ".config" / "containers"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}) + "\n")
    (conf / "registries.conf").write_text(f'[[registry]]\nlocation = "{registry_host}"\ninsecure = true\n')


def run(spec: dict[str, Any], scratch: Path, log: Path, registry_host: str) -> UpstreamRun:
    """Run the driver in the upstream venv; ``spec`` holds the driver's settings except paths."""
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    home, tmp = scratch.parent / f"{scratch.name}-home", scratch / "tmp"
    storage = scratch / "model-sync"
    for d in (home, tmp, storage):
        d.mkdir(parents=True, exist_ok=True)
    write_containers_config(home, registry_host)
    result_path = scratch.parent / f"{scratch.name}-result.json"
    spec = {**spec, "storage_path": str(storage), "result_path": str(result_path)}
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "CONTAINERS_REGISTRIES_CONF": str(home / ".config" / "containers" / "registries.conf"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [str(venv_python()), str(Path(__file__).resolve()), "--driver", json.dumps(spec)]

    peak_tree_kib = 0
    by_command: dict[str, int] = {}

    def sample(pid: int) -> None:
        nonlocal peak_tree_kib
        total = 0
        with contextlib.suppress(OSError, ValueError):
            for p in _tree(pid):
                name, rss, hwm = _memory(p)
                total += rss
                by_command[name] = max(by_command.get(name, 0), hwm)
        peak_tree_kib = max(peak_tree_kib, total)

    child = run_child("upstream's method", argv, env, scratch, log, scratch, sample, 0.1)
    phases = json.loads(result_path.read_text())
    usage = child.usage
    rss_kib = max(peak_tree_kib, by_command.get("python", 0), usage.ru_maxrss)
    cpu_seconds = usage.ru_utime + usage.ru_stime
    return UpstreamRun(
        child.seconds,
        rss_kib / 1024,
        child.scratch_bytes / MiB,
        cpu_seconds,
        phases,
        {k: v / 1024 for k, v in sorted(by_command.items()) if k != "?"},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="driver for upstream's async-upload code path (run by run())")
    parser.add_argument("--driver", required=True, help="JSON settings")
    args = parser.parse_args(argv)
    spec: dict[str, Any] = json.loads(args.driver)
    phases = drive(spec)
    Path(spec["result_path"]).write_text(json.dumps(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
