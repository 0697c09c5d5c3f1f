"""Run a simulated container's command as a local process (a :class:`ContainerRunner`).

The simulated node uses it for containers whose image contains ``sim-exec`` (see
:func:`~.simnode.image_policy`). Each container becomes one process:

* its environment comes from the Pod spec: ``value``, ``valueFrom`` (``secretKeyRef``,
  ``configMapKeyRef``, ``fieldRef``) and ``envFrom``, read through the API like a kubelet does;
  ``PATH`` also holds the directory of the running Python (so the operator's console scripts
  resolve);
* it runs in its own mount and UTS namespaces (``unshare --mount --uts``, needs root; the
  hostname is the Pod's name, as in a container): Secret, ConfigMap,
  emptyDir, hostPath and PersistentVolumeClaim volumes (a claim bound to a ``hostPath`` / ``local``
  volume, or annotated with :data:`HOST_PATH_ANNOTATION`) are materialised in a temporary
  directory and bind-mounted at their ``mountPath`` (read-only when asked), a private
  ``/etc/hosts`` names the Pod and the cluster's Services (a tiny cluster DNS, kept up to date:
  see :mod:`.service_hosts`), and a fresh file is bind-mounted at the container's
  ``terminationMessagePath``. Missing mount points are created as empty directories / files on
  the host, as a container runtime creates them in an image;
* what the *image* holds: nothing by default (the host's filesystem is the container's), but
  ``image_files`` (or :meth:`ProcessRunner.provide_image_files`) says which host files or
  directories an image provides at which paths, e.g. ``{"/model-registry": <built binary>}``:
  they are bind-mounted read-only before the volumes, so an operator's rendered ``command``
  runs unmodified. A ``command`` naming an absolute path that is neither provided nor on the
  host is a start error (``StartError``), as with a real runtime. An image may also declare its
  ``ENTRYPOINT`` / ``CMD`` (:meth:`ProcessRunner.provide_image_entrypoint`): a container without
  ``command`` runs the entrypoint, and without ``args`` the image's ``CMD``, as a runtime does;
* ``securityContext.readOnlyRootFilesystem``: everything but the container's volumes (and
  ``/proc``, ``/sys``, ``/dev``, ``/etc/hosts`` and the termination message file, which a runtime
  keeps writable) is remounted read-only in the container's mount namespace before its volumes
  are mounted, so a write outside a volume fails with ``EROFS`` even though the process runs as
  root, as it fails in a container with a read-only root filesystem;
* its ``startupProbe``, ``livenessProbe`` and ``readinessProbe`` (``httpGet``, ``tcpSocket``,
  ``exec``) run like a kubelet's, in threads of their own (see :mod:`.probes`): the container is
  ready when they say so, and a failing liveness / startup probe stops it, so that the node
  restarts it. A container without probes is ready as soon as it runs;
* its exit code and termination message (the file, or with ``FallbackToLogsOnError`` the tail of
  its output when that is empty and the process failed) are reported in the container status.

Projected volumes (the ``kube-api-access-*`` volume the ServiceAccount admission adds to every
Pod) are written as a kubelet does: a service account token bound to the Pod from the
TokenRequest API, ConfigMap / Secret items (``kube-root-ca.crt``) and downward API fields. With
``KUBERNETES_SERVICE_HOST`` / ``_PORT`` pointing at an address of the ``kubernetes`` Service's
endpoints (the API server on loopback), in-cluster clients work unchanged. Other volume types are
not mounted. The process runs as root on the host network: apart from
``readOnlyRootFilesystem`` the container's security context is not applied.
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
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .probes import ContainerProber, Probe, ProbeResult, ProbeTarget, container_ports, container_probes
from .service_hosts import ServiceHosts
from .simnode import ContainerContext, ContainerExit

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Getter = Callable[[str], Obj]
Poster = Callable[[str, Obj], Obj]

HOST_PATH_ANNOTATION = "devcluster.modelregistry.opendatahub.io/host-path"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
MAX_TERMINATION_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
DEFAULT_GRACE_SECONDS = 30.0


class ContainerConfigError(Exception):
    """The container cannot be configured (a referenced Secret or key is missing, ...)."""


def _decode_secret(secret: Obj) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def _decode_config_map(cm: Obj) -> dict[str, bytes]:
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return out


class ProcessRunner:
    """Starts containers as processes; ``get(path)`` reads an API object (raising on 404 with ``.status``).

    ``image_files`` maps an image to the files it provides: ``{image: {container path: host
    path}}`` (see :meth:`provide_image_files`). ``hosts_refresh_interval`` is how often the
    Service names of the private ``/etc/hosts`` files are brought up to date.
    """

    def __init__(
        self,
        get: Getter,
        log_dir: Path | None = None,
        post: Poster | None = None,
        *,
        image_files: Mapping[str, Mapping[str, str | Path]] | None = None,
        hosts_refresh_interval: float = 2.0,
    ) -> None:
        self._get = get
        self._post = post
        self._log_dir = log_dir
        self._lock = threading.Lock()
        self._image_files: dict[str, dict[str, Path]] = {}
        self._image_entrypoints: dict[str, tuple[list[str], list[str]]] = {}
        for image, files in (image_files or {}).items():
            self.provide_image_files(image, files)
        self.service_hosts = ServiceHosts(get, refresh_interval=hosts_refresh_interval)

    # -- image content -------------------------------------------------------------------
    def provide_image_files(self, image: str, files: Mapping[str, str | Path]) -> None:
        """Declare that ``image`` holds ``files`` (``{absolute container path: host path}``).

        ``image`` is a full reference (``registry/repo:tag``) or a repository without tag or
        digest, which then applies to every tag of it. Host paths may be files or directories;
        they must exist when a container of the image starts. Replaces what was declared for
        that image before; applies to containers started from now on.
        """
        checked: dict[str, Path] = {}
        for target, source in files.items():
            if not target.startswith("/") or target.rstrip("/") == "":
                raise ValueError(f"image file path must be absolute and not /: {target!r}")
            checked[target.rstrip("/")] = Path(source).absolute()
        with self._lock:
            self._image_files[image] = checked

    def provide_image_entrypoint(self, image: str, entrypoint: Sequence[str], cmd: Sequence[str] = ()) -> None:
        """Declare the ``ENTRYPOINT`` and ``CMD`` of ``image`` (a reference or a repository, as
        for :meth:`provide_image_files`): what a container without ``command`` / ``args`` runs."""
        with self._lock:
            self._image_entrypoints[image] = ([str(a) for a in entrypoint], [str(a) for a in cmd])

    def image_entrypoint(self, image: str) -> tuple[list[str], list[str]]:
        """``(ENTRYPOINT, CMD)`` of ``image``: empty when undeclared."""
        with self._lock:
            found = self._image_entrypoints.get(image) or self._image_entrypoints.get(_repository(image))
            return (list(found[0]), list(found[1])) if found else ([], [])

    def _argv(self, container: Obj, env: dict[str, str]) -> list[str]:
        """``command`` + ``args``, with the image's ``ENTRYPOINT`` / ``CMD`` filling in as a runtime does:
        no ``command`` runs the entrypoint with ``args`` (else the image's ``CMD``); a ``command``
        ignores the image's ``CMD``. The kubelet expands ``$(VAR)`` in ``command`` and ``args``
        (never in the image's own), from the container's environment."""
        command, args = container.get("command"), container.get("args")
        if command:
            return [kubelet_expand(str(a), env) for a in [*command, *(args or [])]]
        entrypoint, cmd = self.image_entrypoint(str(container.get("image", "")))
        if args is None:
            return [*entrypoint, *cmd]
        return [*entrypoint, *[kubelet_expand(str(a), env) for a in args]]

    def image_files(self, image: str) -> dict[str, Path]:
        """What ``image`` provides: the entry for the exact reference, else for its repository."""
        with self._lock:
            if image in self._image_files:
                return dict(self._image_files[image])
            return dict(self._image_files.get(_repository(image), {}))

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
    def _api_server_env(self) -> dict[str, str]:
        """``KUBERNETES_SERVICE_*`` as a kubelet sets them, with an endpoint address of the
        ``kubernetes`` Service (there is no kube-proxy to route its cluster IP)."""
        try:
            endpoints = self._get("/api/v1/namespaces/default/endpoints/kubernetes")
        except Exception as exc:  # noqa: BLE001 - no API server address: in-cluster clients just fail
            log.debug("simnode exec: no endpoints for the kubernetes Service: %s", exc)
            return {}
        for subset in endpoints.get("subsets") or []:
            addresses, ports = subset.get("addresses") or [], subset.get("ports") or []
            if addresses and ports:
                host, port = str(addresses[0]["ip"]), str(ports[0]["port"])
                return {
                    "KUBERNETES_SERVICE_HOST": host,
                    "KUBERNETES_SERVICE_PORT": port,
                    "KUBERNETES_SERVICE_PORT_HTTPS": port,
                    "KUBERNETES_PORT": f"tcp://{host}:{port}",
                }
        return {}

    def _env(self, ctx: ContainerContext) -> dict[str, str]:
        c, ns = ctx.container, ctx.namespace
        env: dict[str, str] = self._api_server_env()
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
                env[name] = kubelet_expand(str(item.get("value", "")), env)
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
        if "projected" in volume:
            self._projected(ctx, volume["projected"], target)
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

    def _projected(self, ctx: ContainerContext, projected: Obj, target: Path) -> None:
        ns = ctx.namespace
        target.mkdir(parents=True, exist_ok=True)
        files: dict[str, bytes] = {}
        for source in projected.get("sources") or []:
            if "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                files[token["path"]] = self._token(ctx, token.get("audience"), token.get("expirationSeconds"))
            for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                if key not in source:
                    continue
                spec = source[key]
                data = self._data(ns, kind, spec["name"], bool(spec.get("optional"))) or {}
                items = spec.get("items")
                for data_key, rel in [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]:
                    if data_key in data:
                        files[rel] = data[data_key]
                    elif not spec.get("optional"):
                        raise ContainerConfigError(f"{kind} {ns}/{spec['name']} has no key {data_key}")
            for item in (source.get("downwardAPI") or {}).get("items") or []:
                field_path = (item.get("fieldRef") or {}).get("fieldPath")
                value = {"metadata.namespace": ns, "metadata.name": ctx.pod_name}.get(str(field_path))
                if value is not None:
                    files[item["path"]] = value.encode()
        for rel, content in files.items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(0o644)

    def _token(self, ctx: ContainerContext, audience: str | None, expiration: int | None) -> bytes:
        """A service account token bound to the Pod, from the TokenRequest API, as a kubelet asks."""
        if self._post is None:
            raise ContainerConfigError("service account tokens need API write access (no poster given)")
        meta = ctx.pod["metadata"]
        account = str(ctx.pod.get("spec", {}).get("serviceAccountName") or "default")
        request: Obj = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [audience] if audience else [],
                "expirationSeconds": int(expiration or 3607),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": ctx.pod_name, "uid": meta.get("uid")},
            },
        }
        try:
            answer = self._post(f"/api/v1/namespaces/{ctx.namespace}/serviceaccounts/{account}/token", request)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                raise ContainerConfigError(f'serviceaccount "{account}" not found') from None
            raise
        return str(answer["status"]["token"]).encode()

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
        mounts = self._image_mounts(ctx)  # the image's content first: volumes mount over it
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
        self.service_hosts.write(hosts, ctx.pod_ip, ctx.pod_name, ctx.namespace)
        mounts.append((hosts, "/etc/hosts", False, False))
        return sorted(mounts, key=lambda m: m[1].count("/"))

    def _image_mounts(self, ctx: ContainerContext) -> list[tuple[Path, str, bool, bool]]:
        image = str(ctx.container.get("image", ""))
        mounts: list[tuple[Path, str, bool, bool]] = []
        for target, source in sorted(self.image_files(image).items()):
            if not source.exists():
                raise ContainerConfigError(f"image {image}: {target} is provided by {source}, which does not exist")
            mounts.append((source, target, source.is_dir(), True))
        return mounts

    # -- start ---------------------------------------------------------------------------
    def start(self, ctx: ContainerContext) -> RunningProcess:
        if os.geteuid() != 0:
            raise ContainerConfigError("running a container as a process needs root (unshare --mount)")
        c = ctx.container
        env = self._env(ctx)
        argv = self._argv(c, env)
        if not argv:
            raise ContainerConfigError("the container has no command (and its image declares no entrypoint)")
        root = Path(tempfile.mkdtemp(prefix=f"simnode-exec-{ctx.namespace}-{ctx.pod_name}-"))
        try:
            mounts = self._mounts(ctx, root)
            termination = root / "termination-log"
            termination.write_bytes(b"")
            term_path = str(c.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)
            mounts.append((termination, term_path, False, False))
            _check_command(argv[0], mounts)
        except BaseException:
            self.service_hosts.untrack(root / "hosts")
            shutil.rmtree(root, ignore_errors=True)
            raise
        base_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])
        full_env = {"PATH": base_path, "HOME": "/root", "HOSTNAME": ctx.pod_name, **env}
        full_env["PATH"] = kubelet_expand(full_env["PATH"], {"PATH": base_path})
        read_only_root = bool((c.get("securityContext") or {}).get("readOnlyRootFilesystem"))
        # Its own UTS namespace named after the Pod, as a runtime gives it (the kubelet truncates
        # the name to 63 characters): in-cluster programs take their identity from the hostname.
        hostname = ctx.pod_name[:63].rstrip("-.")
        script = f"hostname {shlex.quote(hostname)}\n" + _mount_script(mounts, read_only_root=read_only_root)
        log_name = f"{ctx.namespace}_{ctx.pod_name}_{c['name']}_{ctx.restart_count}.log"
        log_path = self.log_dir / log_name
        cwd = c.get("workingDir") or "/"
        try:
            with log_path.open("wb") as out:
                proc = subprocess.Popen(
                    ["unshare", "--mount", "--uts", "--propagation", "private", "--"]
                    + ["/bin/sh", "-c", script, "sh", *argv],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=full_env,
                    cwd=cwd,
                    start_new_session=True,
                )
        except BaseException:
            self.service_hosts.untrack(root / "hosts")
            shutil.rmtree(root, ignore_errors=True)
            raise
        log.info(
            "simnode exec: %s/%s/%s started as pid %d (log %s)",
            ctx.namespace,
            ctx.pod_name,
            c["name"],
            proc.pid,
            log_path,
        )
        policy = str(c.get("terminationMessagePolicy") or "File")
        grace = ctx.pod.get("spec", {}).get("terminationGracePeriodSeconds")
        running = RunningProcess(
            proc,
            root,
            termination,
            log_path,
            policy,
            name=f"{ctx.namespace}/{ctx.pod_name}/{c['name']}",
            env=full_env,
            working_dir=str(c.get("workingDir") or ""),
            grace=float(DEFAULT_GRACE_SECONDS if grace is None else grace),
            on_cleanup=lambda: self.service_hosts.untrack(root / "hosts"),
        )
        running.start_probes(container_probes(c), ctx.pod_ip, container_ports(c))
        return running


def _repository(image: str) -> str:
    """``registry/repo`` of ``registry/repo:tag`` or ``registry/repo@sha256:...``."""
    name = image.split("@", 1)[0]
    colon, slash = name.rfind(":"), name.rfind("/")
    return name[:colon] if colon > slash else name


def _check_command(command: str, mounts: list[tuple[Path, str, bool, bool]]) -> None:
    """Fail like a runtime when an absolute ``command`` exists neither in a mount nor on the host."""
    if not command.startswith("/"):
        return  # looked up in PATH (or relative to the working directory) by the shell
    for source, target, is_dir, _ in mounts:
        if command == target:
            if is_dir or not os.access(source, os.X_OK):
                raise ContainerConfigError(f'exec: "{command}": permission denied')
            return
        if is_dir and command.startswith(target.rstrip("/") + "/"):
            return  # inside a mounted directory: its content may change until the process starts
    if not os.path.lexists(command):
        raise ContainerConfigError(f'exec: "{command}": stat {command}: no such file or directory')
    if os.path.isfile(command) and not os.access(command, os.X_OK):
        raise ContainerConfigError(f'exec: "{command}": permission denied')


def kubelet_expand(value: str, env: Mapping[str, str]) -> str:
    """The kubelet's expansion of env values, ``command`` and ``args``.

    As Kubernetes' ``third_party/forked/golang/expansion``: ``$(VAR)`` becomes the value of a
    variable defined earlier, and stays as written when there is none; ``$$`` becomes ``$``; any
    other ``$`` stays. Written by hand: no library implements these rules, and a node that did
    not apply them would start with arguments a real one never passes.
    """
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        char = value[i]
        if char != "$" or i + 1 == n:
            out.append(char)
            i += 1
            continue
        following = value[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = value.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
            else:
                name = value[i + 2 : close]
                out.append(env.get(name, f"$({name})"))
                i = close + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)


# Mounts a runtime keeps writable whatever readOnlyRootFilesystem says (its own tmpfs / procfs / sysfs).
_KEPT_WRITABLE = ("/proc", "/sys", "/dev")
_REMOUNT_HOST_READ_ONLY = f"""while read -r _ _ _ _ mp _; do
  case "$mp" in {"|".join(f"{p}|{p}/*" for p in _KEPT_WRITABLE)}|*\\\\*) ;;
  *) mount -o remount,bind,ro "$mp" ;;
  esac
done < /proc/self/mountinfo"""


def _mount_script(mounts: list[tuple[Path, str, bool, bool]], *, read_only_root: bool = False) -> str:
    """The shell that sets up the container's mount namespace, then execs its command.

    With ``read_only_root`` the mount points missing on the host are made first, then every
    host mount (but :data:`_KEPT_WRITABLE`) is remounted read-only, then the container's mounts
    are bound, each remounted read-write unless it asks for ``readOnly`` (a bind mount takes the
    read-only flag of the mount its source is on).
    """

    def make_point(target: str, is_dir: bool) -> str:
        t = shlex.quote(target)
        if is_dir:
            return f"[ -e {t} ] || mkdir -p {t}"
        return f'[ -e {t} ] || {{ mkdir -p "$(dirname {t})"; : > {t}; }}'

    def inside_another(target: str) -> bool:
        return any(is_dir and target.startswith(other.rstrip("/") + "/") for _, other, is_dir, _ in mounts)

    lines = ["set -e"]
    if read_only_root:
        # Mount points on the host first (those inside another mount are made once it is there).
        lines += [make_point(t, is_dir) for _, t, is_dir, _ in mounts if not inside_another(t)]
        lines.append(_REMOUNT_HOST_READ_ONLY)
    for source, target, is_dir, read_only in mounts:
        t, s = shlex.quote(target), shlex.quote(str(source))
        if not read_only_root or inside_another(target):
            lines.append(make_point(target, is_dir))
        lines.append(f"mount --bind {s} {t}")
        if read_only:
            lines.append(f"mount -o remount,bind,ro {t}")
        elif read_only_root:
            lines.append(f"mount -o remount,bind,rw {t}")
    lines.append('exec "$@"')
    return "\n".join(lines)


class RunningProcess:
    """One container process (a :class:`~.simnode.RunningContainer`), with its probes.

    The process group is only signalled while the process has not been reaped (under a lock
    shared with :meth:`poll`), so a recycled PID is never hit. ``grace`` is the Pod's
    ``terminationGracePeriodSeconds``, used when a probe failure stops the container.
    """

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        root: Path,
        termination: Path,
        log_path: Path,
        policy: str,
        *,
        name: str = "",
        env: dict[str, str] | None = None,
        working_dir: str = "",
        grace: float = DEFAULT_GRACE_SECONDS,
        on_cleanup: Callable[[], None] | None = None,
    ) -> None:
        self.proc = proc
        self.root = root
        self.termination = termination
        self.log_path = log_path
        self.policy = policy
        self.name = name or str(proc.pid)
        self.env = dict(env or os.environ)
        self.working_dir = working_dir
        self.grace = grace
        self.prober: ContainerProber | None = None
        self.killed_by: str | None = None  # the probe whose failure stopped the container
        self._on_cleanup = on_cleanup
        self._lock = threading.Lock()
        self._exit: ContainerExit | None = None
        self._cleaned = False

    def start_probes(self, probes: list[Probe], pod_ip: str, ports: dict[str, int]) -> None:
        """Start probing (see :mod:`.probes`); without probes the container is ready while it runs."""
        if not probes:
            return
        self.prober = ContainerProber(self.name, probes, ProbeTarget(pod_ip, ports, self.exec), self._probe_failed)
        self.prober.start()

    # -- state ---------------------------------------------------------------------------
    def poll(self) -> ContainerExit | None:
        with self._lock:
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

    def _alive(self) -> bool:
        with self._lock:
            return self._exit is None and self.proc.poll() is None

    def is_started(self) -> bool:
        """Running and past its startup probe (if any)."""
        return self._alive() and (self.prober is None or self.prober.is_started())

    def is_ready(self) -> bool:
        """Running and ready by its probes (without probes: while it runs)."""
        return self._alive() and (self.prober is None or self.prober.is_ready())

    # -- exec probes ---------------------------------------------------------------------
    def exec(self, command: list[str], timeout: float) -> ProbeResult:
        """Run ``command`` in the container's mount namespace with its environment and working dir."""
        if not self._alive():
            return ProbeResult(False, "container is not running")
        argv = [shutil.which("nsenter") or "nsenter", f"--target={self.proc.pid}", "--mount", "--"]
        if self.working_dir:
            argv += ["/bin/sh", "-c", 'cd -- "$0" && exec "$@"', self.working_dir]
        argv += command
        shown = shlex.join(command)
        try:
            child = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        except OSError as exc:
            return ProbeResult(False, f"command {shown} could not run: {exc}")
        try:
            out, _ = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return ProbeResult(False, f"command {shown} timed out after {timeout:g}s")
        text = out[-FALLBACK_LOG_BYTES:].decode("utf-8", "replace").strip()
        if child.returncode == 0:
            return ProbeResult(True, text)
        return ProbeResult(False, f"command {shown} exited with {child.returncode}: {text}".strip())

    # -- stopping ------------------------------------------------------------------------
    def _probe_failed(self, probe: Probe, message: str) -> None:
        """A liveness / startup probe failed for good: stop the container, as a kubelet does."""
        self.killed_by = probe.kind
        log.warning(
            "simnode exec: %s failed %s probe (%s), will be restarted", self.name, probe.kind, message or "no detail"
        )
        grace = probe.termination_grace if probe.termination_grace is not None else self.grace
        self._terminate(grace)

    def _signal(self, sig: signal.Signals) -> bool:
        """Signal the process group unless the process is gone; whether it was still there."""
        with self._lock:
            if self._exit is not None or self.proc.poll() is not None:
                return False
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            return True

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _terminate(self, grace: float) -> None:
        if not self._signal(signal.SIGTERM) or self._wait_exit(grace):
            return
        self._signal(signal.SIGKILL)
        self._wait_exit(2.0)

    def stop(self) -> None:
        if self.prober is not None:
            self.prober.stop()
        self._terminate(2.0)
        self._cleanup()

    def _cleanup(self) -> None:
        with self._lock:
            if self._cleaned:
                return
            self._cleaned = True
        if self.prober is not None:
            self.prober.stop()
        if self._on_cleanup is not None:
            self._on_cleanup()
        shutil.rmtree(self.root, ignore_errors=True)
