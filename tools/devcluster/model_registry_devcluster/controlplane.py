"""A real, local Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager.

The binaries are built from source by ``hack/build-k8s.sh`` (``make k8s``) into a cache directory.
Every listener is bound to 127.0.0.1 on a port chosen at start time, so several control planes can
run side by side (one per test session, for instance).

There is no scheduler and no kubelet: :class:`~model_registry_devcluster.simnode.SimulatedNode`
plays both for the Pods.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

#: Kubernetes release built by ``hack/build-k8s.sh`` (keep both in step).
DEFAULT_K8S_VERSION = "v1.37.2"

#: Controllers of kube-controller-manager. Everything a node-less, cloud-less cluster can run:
#: Deployment, ReplicaSet, Job, CronJob, garbage collector, namespace, endpoints, endpointslice,
#: serviceaccount, serviceaccount-token, ttl-after-finished, ... stay on.
DEFAULT_CONTROLLERS = ",".join(
    [
        "*",
        "-node-ipam-controller",
        "-node-lifecycle-controller",
        "-persistentvolume-attach-detach-controller",
        "-persistentvolume-binder-controller",
        "-certificatesigningrequest-signing-controller",
        "-ttl-controller",
    ]
)

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/12"
LOOPBACK = "127.0.0.1"


class ControlPlaneError(RuntimeError):
    """The control plane could not be started."""


def cache_dir() -> Path:
    """Cache root shared with ``hack/build-k8s.sh``."""
    env = os.environ.get("MRO_CACHE_DIR")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "model-registry-operator"


def default_bin_dir() -> Path:
    """Directory holding the binaries: ``$MRO_K8S_BIN_DIR`` or ``<cache>/k8s/<version>``."""
    env = os.environ.get("MRO_K8S_BIN_DIR")
    if env:
        return Path(env)
    version = os.environ.get("MRO_K8S_VERSION", DEFAULT_K8S_VERSION)
    return cache_dir() / "k8s" / version


BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
"""What ``hack/build-k8s.sh`` builds: the control plane and the kubectl of the same release."""


def kubectl_binary(bin_dir: Path | None = None) -> Path:
    """The kubectl built with the control plane (same release, so same API and kustomize)."""
    return (bin_dir if bin_dir is not None else default_bin_dir()) / "kubectl"


def missing_binaries(bin_dir: Path | None = None) -> list[str]:
    """Names of the control-plane binaries missing from ``bin_dir``."""
    directory = bin_dir if bin_dir is not None else default_bin_dir()
    return [b for b in BINARIES if not os.access(directory / b, os.X_OK)]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


_PR_SET_PDEATHSIG = 1
_prctl: Any = None


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when the spawning thread dies.

    Only used when spawning from the main thread (PDEATHSIG follows the parent *thread*), so a
    crashed or killed test run leaves no control-plane processes behind.
    """
    global _prctl
    if threading.current_thread() is not threading.main_thread():
        return None
    if _prctl is None:
        try:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            _prctl = False
    if not _prctl:
        return None
    prctl = _prctl

    def hook() -> None:  # pragma: no cover - runs in the forked child
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    return hook


_live: weakref.WeakSet[ControlPlane] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for cp in list(_live):
        with contextlib.suppress(Exception):
            cp.stop()


class _Proc:
    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: IO[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log = log
        self.log_path = log_path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, all on loopback, state in ``workdir``.

    >>> with ControlPlane(Path("/tmp/cp")) as cp:   # doctest: +SKIP
    ...     print(cp.kubeconfig, cp.server_url)
    """

    def __init__(
        self,
        workdir: Path,
        bin_dir: Path | None = None,
        *,
        controllers: str = DEFAULT_CONTROLLERS,
        extra_apiserver_args: list[str] | None = None,
        extra_controller_manager_args: list[str] | None = None,
        start_timeout: float = 90.0,
    ) -> None:
        self.workdir = Path(workdir).absolute()
        self.bin_dir = Path(bin_dir) if bin_dir is not None else default_bin_dir()
        self.controllers = controllers
        self.extra_apiserver_args = list(extra_apiserver_args or [])
        self.extra_controller_manager_args = list(extra_controller_manager_args or [])
        self.start_timeout = start_timeout

        self.token = secrets.token_hex(24)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.cert_dir = self.workdir / "pki"
        self.log_dir = self.workdir / "logs"
        self.etcd_port = 0
        self.etcd_peer_port = 0
        self.apiserver_port = 0
        self._procs: list[_Proc] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ properties
    @property
    def server_url(self) -> str:
        if not self.apiserver_port:
            raise ControlPlaneError("control plane not started")
        return f"https://{LOOPBACK}:{self.apiserver_port}"

    @property
    def ca_file(self) -> Path:
        """CA certificate that verifies the API server's (self-signed) serving certificate."""
        return self.cert_dir / "ca.crt"

    @property
    def _serving_bundle(self) -> Path:
        """Written by kube-apiserver: its serving certificate followed by the CA that signed it."""
        return self.cert_dir / "apiserver.crt"

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.popen.poll() is None for p in self._procs)

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, wait_for_controllers: bool = True) -> Self:
        """Start everything and wait until the API server is ready.

        With ``wait_for_controllers`` it also waits until the controllers have created the
        ``default`` ServiceAccount in namespace ``default``.
        """
        with self._lock:
            if self._procs:
                raise ControlPlaneError("control plane already started")
            missing = missing_binaries(self.bin_dir)
            if missing:
                raise ControlPlaneError(
                    f"Kubernetes binaries missing in {self.bin_dir}: {', '.join(missing)}. "
                    "Build them with `make k8s` (hack/build-k8s.sh)."
                )
            _live.add(self)
            try:
                self._prepare()
                self._start_processes()
                if wait_for_controllers:
                    self._wait_for_default_serviceaccount()
            except BaseException:
                self._stop_locked()
                raise
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every process (newest first), wait, SIGKILL what is left."""
        with self._lock:
            self._stop_locked(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self.cert_dir.mkdir(exist_ok=True)
        # Every start is a fresh, empty cluster.
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
        for stale in ("apiserver.crt", "apiserver.key", "ca.crt"):
            (self.cert_dir / stale).unlink(missing_ok=True)
        sa_key = self.cert_dir / "sa.key"
        if not sa_key.exists():
            _write_rsa_key(sa_key)
        token_file = self.cert_dir / "tokens.csv"
        token_file.write_text(f'{self.token},admin,admin,"system:masters"\n')
        token_file.chmod(0o600)

    def _spawn(self, name: str, args: list[str]) -> _Proc:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("ab")
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(args)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=_die_with_parent_hook(),
        )
        proc = _Proc(name, popen, log, log_path)
        self._procs.append(proc)
        return proc

    def _start_processes(self) -> None:
        last_error: Exception | None = None
        for _attempt in range(3):  # a port picked as free may be taken by a parallel run
            try:
                self._start_etcd()
                self._start_apiserver()
                break
            except _PortClash as exc:
                last_error = exc
                self._stop_locked()
        else:
            raise ControlPlaneError(f"could not start the control plane: {last_error}")
        self._write_kubeconfig()
        self._start_controller_manager()

    def _start_etcd(self) -> None:
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        data_dir = self.workdir / "etcd"
        shutil.rmtree(data_dir, ignore_errors=True)
        client = f"http://{LOOPBACK}:{self.etcd_port}"
        peer = f"http://{LOOPBACK}:{self.etcd_peer_port}"
        proc = self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=default",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self._check_alive(proc)
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=2) as resp:  # noqa: S310
                    if b'"true"' in resp.read():
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise ControlPlaneError(f"etcd not healthy after 30 s; log: {proc.log_path}\n{proc.tail()}")

    def _start_apiserver(self) -> None:
        self.apiserver_port = free_port()
        sa_key = self.cert_dir / "sa.key"
        proc = self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://{LOOPBACK}:{self.etcd_port}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={self.cert_dir}",
                f"--token-auth-file={self.cert_dir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                # Service references (admission webhooks, aggregated APIs) resolve to an endpoint's
                # address, not the Service's cluster IP, which nothing routes here.
                "--enable-aggregator-routing=true",
                "--profiling=false",
                "--v=1",
                *self.extra_apiserver_args,
            ],
        )
        self._wait_ready(proc)

    def _wait_ready(self, proc: _Proc) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive(proc)
            if self._serving_bundle.exists():
                try:
                    req = urllib.request.Request(  # noqa: S310 - https on loopback only
                        f"{self.server_url}/readyz", headers={"Authorization": f"Bearer {self.token}"}
                    )
                    ctx = ssl.create_default_context(cafile=str(self._serving_bundle))
                    with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:  # noqa: S310
                        if resp.status == 200:
                            self._write_ca_file()
                            return
                except urllib.error.HTTPError as exc:
                    last = f"HTTP {exc.code}"
                except (OSError, ssl.SSLError) as exc:
                    last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"kube-apiserver not ready after {self.start_timeout:.0f} s ({last}); log: {proc.log_path}\n{proc.tail()}"
        )

    def _write_ca_file(self) -> None:
        """Keep the CA (the last certificate of the serving bundle) on its own: kubeconfig and
        kube-controller-manager's root CA (published in every namespace as kube-root-ca.crt)."""
        blocks = re.findall(
            r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?",
            self._serving_bundle.read_text(),
            flags=re.DOTALL,
        )
        if not blocks:
            raise ControlPlaneError(f"no certificate in {self._serving_bundle}")
        self.ca_file.write_text(blocks[-1] if blocks[-1].endswith("\n") else blocks[-1] + "\n")

    def _check_alive(self, proc: _Proc) -> None:
        code = proc.popen.poll()
        if code is None:
            return
        tail = proc.tail()
        if "address already in use" in tail:
            raise _PortClash(f"{proc.name}: address already in use")
        raise ControlPlaneError(f"{proc.name} exited with code {code}; log: {proc.log_path}\n{tail}")

    def _start_controller_manager(self) -> None:
        proc = self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                f"--controllers={self.controllers}",
                f"--service-account-private-key-file={self.cert_dir / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                f"--bind-address={LOOPBACK}",
                "--secure-port=0",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-job-syncs=10",
                "--concurrent-gc-syncs=20",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--v=1",
                *self.extra_controller_manager_args,
            ],
        )
        time.sleep(0.1)
        self._check_alive(proc)

    def _wait_for_default_serviceaccount(self) -> None:
        kcm = next(p for p in self._procs if p.name == "kube-controller-manager")
        deadline = time.monotonic() + self.start_timeout
        url = f"{self.server_url}/api/v1/namespaces/default/serviceaccounts/default"
        while time.monotonic() < deadline:
            self._check_alive(kcm)
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})  # noqa: S310
            try:
                with urllib.request.urlopen(req, timeout=5, context=self.ssl_context()) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            time.sleep(0.2)
        raise ControlPlaneError(
            "kube-controller-manager did not create the default ServiceAccount in time; "
            f"log: {kcm.log_path}\n{kcm.tail()}"
        )

    def ssl_context(self) -> ssl.SSLContext:
        """Client TLS context trusting the API server's certificate."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _write_kubeconfig(self) -> None:
        self.kubeconfig.write_text(
            kubeconfig_text(self.server_url, self.token, self.ca_file, context="model-registry-dev")
        )
        self.kubeconfig.chmod(0o600)

    def _stop_locked(self, timeout: float = 15.0) -> None:
        procs, self._procs = self._procs, []
        for proc in reversed(procs):
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.kill()
                proc.popen.wait(timeout=10)
            proc.log.close()
        _live.discard(self)


class _PortClash(ControlPlaneError):
    pass


def kubeconfig_text(server: str, token: str, ca_file: Path, *, context: str) -> str:
    """A kubeconfig with one cluster, one token user and one context (namespace ``default``)."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: {context}
  cluster:
    server: {server}
    certificate-authority: {ca_file}
users:
- name: {context}-admin
  user:
    token: {token}
contexts:
- name: {context}
  context:
    cluster: {context}
    user: {context}-admin
    namespace: default
current-context: {context}
preferences: {{}}
"""


def _write_rsa_key(path: Path) -> None:
    """An RSA private key (PEM) for signing service-account tokens."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ControlPlaneError("need either the 'cryptography' package or the openssl CLI to make a key") from None
        subprocess.run([openssl, "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    path.chmod(0o600)
