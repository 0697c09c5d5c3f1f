"""Run a simulated container's command as a local process (a :class:`ContainerRunner`).

The simulated node uses it for containers whose image contains ``sim-exec`` (see
:func:`~.simnode.image_policy`). Each container becomes one process:

* its environment comes from the Pod spec: ``value``, ``valueFrom`` (``secretKeyRef``,
  ``configMapKeyRef``, ``fieldRef``) and ``envFrom``, read through the API like a kubelet does;
  ``PATH`` also holds the directory of the running Python (so the operator's console scripts
  resolve);
* it runs in its own mount namespace (``unshare --mount``, needs root): Secret, ConfigMap,
  emptyDir, hostPath and PersistentVolumeClaim volumes (a claim bound to a ``hostPath`` / ``local``
  volume, or annotated with :data:`HOST_PATH_ANNOTATION`) are materialised in a temporary
  directory and bind-mounted at their ``mountPath`` (read-only when asked), a private
  ``/etc/hosts`` names the Pod, and a fresh file is bind-mounted at the container's
  ``terminationMessagePath``. Missing mount points are created as empty directories / files on
  the host, as a container runtime creates them in an image;
* its exit code and termination message (the file, or with ``FallbackToLogsOnError`` the tail of
  its output when that is empty and the process failed) are reported in the container status.

Other volume types (projected service account tokens, ...) are not mounted. The process runs
as root on the host network: the container's security context is not applied.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .simnode import ContainerContext, ContainerExit

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Getter = Callable[[str], Obj]

HOST_PATH_ANNOTATION = "devcluster.modelregistry.opendatahub.io/host-path"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
MAX_TERMINATION_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048


class ContainerConfigError(Exception):
    """The container cannot be configured (a referenced Secret or key is missing, ...)."""


def _decode_secret(secret: Obj) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def _decode_config_map(cm: Obj) -> dict[str, bytes]:
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return out


class ProcessRunner:
    """Starts containers as processes; ``get(path)`` reads an API object (raising on 404 with ``.status``)."""

    def __init__(self, get: Getter, log_dir: Path | None = None) -> None:
        self._get = get
        self._log_dir = log_dir
        self._lock = threading.Lock()

    @property
    def log_dir(self) -> Path:
        with self._lock:
            if self._log_dir is None:
                self._log_dir = Path(tempfile.mkdtemp(prefix="simnode-exec-logs-"))
            self._log_dir.mkdir(parents=True, exist_ok=True)
            return self._log_dir

    # -- API reads -----------------------------------------------------------------------
    def _read(self, namespace: str, kind: str, name: str, optional: bool = False) -> Obj | None:
        plural = {"Secret": "secrets", "ConfigMap": "configmaps", "PersistentVolumeClaim": "persistentvolumeclaims"}
        try:
            return self._get(f"/api/v1/namespaces/{namespace}/{plural[kind]}/{name}")
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                if optional:
                    return None
                raise ContainerConfigError(f'{kind.lower()} "{name}" not found') from None
            raise

    def _data(self, namespace: str, kind: str, name: str, optional: bool) -> dict[str, bytes] | None:
        obj = self._read(namespace, kind, name, optional)
        if obj is None:
            return None
        return _decode_secret(obj) if kind == "Secret" else _decode_config_map(obj)

    # -- environment ---------------------------------------------------------------------
    def _env(self, ctx: ContainerContext) -> dict[str, str]:
        c, ns = ctx.container, ctx.namespace
        env: dict[str, str] = {}
        for source in c.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                ref = source.get(key)
                if ref:
                    data = self._data(ns, kind, ref["name"], bool(ref.get("optional")))
                    env.update({prefix + k: v.decode() for k, v in (data or {}).items()})
        fields = {
            "metadata.name": ctx.pod_name,
            "metadata.namespace": ns,
            "metadata.uid": str(ctx.pod["metadata"].get("uid", "")),
            "spec.nodeName": ctx.node_name,
            "spec.serviceAccountName": str(ctx.pod.get("spec", {}).get("serviceAccountName", "default")),
            "status.podIP": ctx.pod_ip,
            "status.hostIP": "127.0.0.1",
        }
        for item in c.get("env") or []:
            name = item["name"]
            if "valueFrom" not in item:
                env[name] = _expand(str(item.get("value", "")), env)
                continue
            vf = item["valueFrom"]
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                ref = vf.get(key)
                if not ref:
                    continue
                optional = bool(ref.get("optional"))
                data = self._data(ns, kind, ref["name"], optional)
                if data is None:
                    break
                if ref["key"] not in data:
                    if optional:
                        break
                    raise ContainerConfigError(f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}")
                env[name] = data[ref["key"]].decode()
            if "fieldRef" in vf:
                env[name] = fields.get(vf["fieldRef"]["fieldPath"], "")
        return env

    # -- volumes -------------------------------------------------------------------------
    def _volume_dir(self, ctx: ContainerContext, volume: Obj, root: Path) -> Path | None:
        ns, name = ctx.namespace, str(volume["name"])
        target = root / "volumes" / name
        for key, kind, ref_key in (("secret", "Secret", "secretName"), ("configMap", "ConfigMap", "name")):
            if key not in volume:
                continue
            spec = volume[key]
            data = self._data(ns, kind, spec[ref_key], bool(spec.get("optional"))) or {}
            target.mkdir(parents=True, exist_ok=True)
            items = spec.get("items")
            mapping = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
            for data_key, rel in mapping:
                if data_key not in data:
                    if spec.get("optional"):
                        continue
                    raise ContainerConfigError(f"{kind} {ns}/{spec[ref_key]} has no key {data_key}")
                path = target / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data[data_key])
            return target
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
            return target
        if "hostPath" in volume:
            return Path(volume["hostPath"]["path"])
        if "persistentVolumeClaim" in volume:
            return self._claim_path(ns, volume["persistentVolumeClaim"]["claimName"])
        log.debug("simnode exec: volume %s of %s/%s is not mounted (unsupported type)", name, ns, ctx.pod_name)
        return None

    def _claim_path(self, namespace: str, claim: str) -> Path:
        pvc = self._read(namespace, "PersistentVolumeClaim", claim)
        assert pvc is not None
        annotated = (pvc["metadata"].get("annotations") or {}).get(HOST_PATH_ANNOTATION)
        if annotated:
            return Path(annotated)
        volume_name = (pvc.get("spec") or {}).get("volumeName")
        if volume_name:
            pv = self._get(f"/api/v1/persistentvolumes/{volume_name}")
            spec = pv.get("spec") or {}
            for key in ("hostPath", "local"):
                if spec.get(key, {}).get("path"):
                    return Path(spec[key]["path"])
        raise ContainerConfigError(
            f"persistentvolumeclaim {namespace}/{claim} is not bound to a hostPath or local volume "
            f"(or annotate it with {HOST_PATH_ANNOTATION})"
        )

    def _mounts(self, ctx: ContainerContext, root: Path) -> list[tuple[Path, str, bool, bool]]:
        """``(source, target, is_dir, read_only)`` of every bind mount, parents first."""
        volumes = {v["name"]: v for v in ctx.pod.get("spec", {}).get("volumes") or []}
        mounts: list[tuple[Path, str, bool, bool]] = []
        for vm in ctx.container.get("volumeMounts") or []:
            volume = volumes.get(vm["name"])
            if volume is None:
                raise ContainerConfigError(f"volume {vm['name']} not found in the pod spec")
            source = self._volume_dir(ctx, volume, root)
            if source is None:
                continue
            if vm.get("subPath"):
                source = source / vm["subPath"]
            mounts.append((source, vm["mountPath"], source.is_dir(), bool(vm.get("readOnly"))))
        hosts = root / "hosts"
        hosts.write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost\n{ctx.pod_ip}\t{ctx.pod_name}\n")
        mounts.append((hosts, "/etc/hosts", False, False))
        return sorted(mounts, key=lambda m: m[1].count("/"))

    # -- start ---------------------------------------------------------------------------
    def start(self, ctx: ContainerContext) -> RunningProcess:
        if os.geteuid() != 0:
            raise ContainerConfigError("running a container as a process needs root (unshare --mount)")
        c = ctx.container
        argv = [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
        if not argv:
            raise ContainerConfigError("the container has no command (an image entrypoint cannot be run)")
        root = Path(tempfile.mkdtemp(prefix=f"simnode-exec-{ctx.namespace}-{ctx.pod_name}-"))
        try:
            env = self._env(ctx)
            mounts = self._mounts(ctx, root)
            termination = root / "termination-log"
            termination.write_bytes(b"")
            term_path = str(c.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)
            mounts.append((termination, term_path, False, False))
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        base_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])
        full_env = {"PATH": base_path, "HOME": "/root", "HOSTNAME": ctx.pod_name, **env}
        full_env["PATH"] = _expand(full_env["PATH"], {"PATH": base_path})
        script = _mount_script(mounts)
        log_name = f"{ctx.namespace}_{ctx.pod_name}_{c['name']}_{ctx.restart_count}.log"
        log_path = self.log_dir / log_name
        cwd = c.get("workingDir") or "/"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
            )
        log.info(
            "simnode exec: %s/%s/%s started as pid %d (log %s)",
            ctx.namespace,
            ctx.pod_name,
            c["name"],
            proc.pid,
            log_path,
        )
        policy = str(c.get("terminationMessagePolicy") or "File")
        return RunningProcess(proc, root, termination, log_path, policy)


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` references to variables defined earlier."""
    for key, val in env.items():
        value = value.replace(f"$({key})", val)
    return value


def _mount_script(mounts: list[tuple[Path, str, bool, bool]]) -> str:
    lines = ["set -e"]
    for source, target, is_dir, read_only in mounts:
        t, s = shlex.quote(target), shlex.quote(str(source))
        if is_dir:
            lines.append(f"[ -e {t} ] || mkdir -p {t}")
        else:
            lines.append(f'[ -e {t} ] || {{ mkdir -p "$(dirname {t})"; : > {t}; }}')
        lines.append(f"mount --bind {s} {t}")
        if read_only:
            lines.append(f"mount -o remount,bind,ro {t}")
    lines.append('exec "$@"')
    return "\n".join(lines)


class RunningProcess:
    """One container process (a :class:`~.simnode.RunningContainer`)."""

    def __init__(
        self, proc: subprocess.Popen[bytes], root: Path, termination: Path, log_path: Path, policy: str
    ) -> None:
        self.proc = proc
        self.root = root
        self.termination = termination
        self.log_path = log_path
        self.policy = policy
        self._exit: ContainerExit | None = None

    def poll(self) -> ContainerExit | None:
        if self._exit is not None:
            return self._exit
        code = self.proc.poll()
        if code is None:
            return None
        if code < 0:
            code = 128 - code  # killed by a signal, as a runtime reports it
        message = ""
        with contextlib.suppress(OSError):
            message = self.termination.read_bytes()[:MAX_TERMINATION_BYTES].decode("utf-8", "replace")
        if not message.strip() and code != 0 and self.policy == "FallbackToLogsOnError":
            message = self._log_tail()
        self._exit = ContainerExit(code, None, message)
        self._cleanup()
        return self._exit

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_bytes().decode("utf-8", "replace").splitlines()[-FALLBACK_LOG_LINES:]
        except OSError:
            return ""
        return "\n".join(lines)[-FALLBACK_LOG_BYTES:]

    def is_ready(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(2)
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
