"""A simulated node: plays scheduler and kubelet for a local control plane that has neither.

:class:`SimulatedNode` registers a Ready Node, binds every unscheduled Pod to it (Binding
subresource), gives each Pod its own loopback IP (``127.1.x.y``) and writes Pod status the way a
kubelet would: phase, conditions, container statuses. The real controllers then compute
Deployment, ReplicaSet, Job and Endpoints status from it, exactly as on a real cluster.

What each container "does" is chosen by a policy, ``behaviour(pod, container)`` returning a
:class:`ContainerBehaviour`. The default policy (:func:`image_policy`) looks at the image name, so
it works for objects created by the operator or by ``kubectl`` alike:

=================  ==========================================================================
image contains     behaviour
=================  ==========================================================================
``sim-crashloop``  exits with code 1 shortly after each start: ``CrashLoopBackOff``
``sim-imagepull``  never starts: waiting ``ErrImagePull`` / ``ImagePullBackOff``
``sim-unready``    runs, never becomes ready
``sim-fail``       exits with code 1 (restartPolicy Never: Pod ``Failed``)
``sim-exec``       runs the container's command as a local process in its own mount namespace,
                   with the Pod's env, Secrets and ConfigMaps, the image's declared files and
                   the cluster's Service names; ready by its probes (see :mod:`.process_runner`)
anything else      runs and becomes ready after ``ready_delay``; in Pods with restartPolicy
                   ``Never`` / ``OnFailure`` (Job Pods) it then exits 0: Pod ``Succeeded``
=================  ==========================================================================

Restarts follow the Pod's restartPolicy with an exponential back-off, like a kubelet. A
:class:`ContainerRunner` may stand in for a container (e.g. a local process bound to the Pod IP):
the node then asks the runner whether the container is ready and when it exited.

The node uses the blocking ``kubernetes`` client in two threads of its own (watch and worker), so
it never blocks an asyncio event loop: use :meth:`SimulatedNode.start` / :meth:`SimulatedNode.stop`,
``with`` / ``async with``, or :meth:`SimulatedNode.run_forever`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, cast

import kubernetes

log = logging.getLogger(__name__)

Obj = dict[str, Any]

_k8s: Any = cast(Any, kubernetes)

DEFAULT_NODE_NAME = "sim-node"
DEFAULT_POD_NETWORK = "127.1.0.0/16"
HOST_IP = "127.0.0.1"


# ====================================================================== behaviour policy
@dataclass(frozen=True)
class ContainerExit:
    """How a container terminated."""

    exit_code: int
    reason: str | None = None  # default: "Completed" for 0, "Error" otherwise
    message: str = ""  # the termination message


@dataclass(frozen=True)
class ContainerContext:
    """What a :class:`ContainerRunner` gets to know when it starts a container."""

    pod: Obj
    container: Obj
    pod_ip: str
    node_name: str
    restart_count: int

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])

    @property
    def pod_name(self) -> str:
        return str(self.pod["metadata"]["name"])


class RunningContainer(Protocol):
    """A container started by a :class:`ContainerRunner`."""

    def poll(self) -> ContainerExit | None:
        """``None`` while it runs; how it ended once it has."""

    def is_ready(self) -> bool:
        """Whether the container is ready (its readiness probe would pass).

        A runner may also give its containers an ``is_started() -> bool`` (startup probe
        passed), reported as the container status' ``started``; without it a running container
        counts as started. The node calls both every ``runner_poll_interval``: they must not block.
        """

    def stop(self) -> None:
        """Stop it (the Pod is being deleted). Must not block for long."""


class ContainerRunner(Protocol):
    """Hook: something that actually runs a container, e.g. a local process on the Pod IP."""

    def start(self, ctx: ContainerContext) -> RunningContainer: ...


@dataclass(frozen=True)
class ContainerBehaviour:
    """What a simulated container does, each time it is (re)started.

    Times are seconds after the container (re)started. Without a ``runner``: the container
    becomes ready after ``ready_after`` (``None``: never) and exits with ``exit_code`` after
    ``exit_after`` (``None``: runs until the Pod is deleted). With a ``runner``, the runner
    decides both and the timings are ignored.
    """

    ready_after: float | None = 0.2
    exit_after: float | None = None
    exit_code: int = 0
    reason: str | None = None
    message: str = ""
    image_pull_error: bool = False
    runner: ContainerRunner | None = None

    @classmethod
    def running(cls, ready_after: float = 0.2) -> ContainerBehaviour:
        """Runs forever, ready after ``ready_after`` seconds."""
        return cls(ready_after=ready_after)

    @classmethod
    def unready(cls) -> ContainerBehaviour:
        """Runs forever, never ready."""
        return cls(ready_after=None)

    @classmethod
    def exits(cls, exit_code: int = 0, after: float = 0.2, message: str = "") -> ContainerBehaviour:
        """Runs for ``after`` seconds (ready half-way through when it succeeds) then exits."""
        return cls(
            ready_after=after / 2 if exit_code == 0 else None,
            exit_after=after,
            exit_code=exit_code,
            message=message,
        )

    @classmethod
    def image_pull_failure(cls) -> ContainerBehaviour:
        """Never starts: ErrImagePull / ImagePullBackOff."""
        return cls(ready_after=None, image_pull_error=True)

    @classmethod
    def run_with(cls, runner: ContainerRunner) -> ContainerBehaviour:
        """Delegate to a runner (local process, ...)."""
        return cls(ready_after=None, runner=runner)


BehaviourPolicy = Callable[[Obj, Obj], "ContainerBehaviour | None"]


def image_policy(
    ready_delay: float = 0.2, exec_runner: ContainerRunner | None = None
) -> Callable[[Obj, Obj], ContainerBehaviour]:
    """The default policy: behaviour chosen from the image name (see the module docstring).

    ``sim-exec`` images run through ``exec_runner``; without one they behave like any image.
    """

    def policy(pod: Obj, container: Obj) -> ContainerBehaviour:
        image = str(container.get("image", ""))
        restart_policy = pod.get("spec", {}).get("restartPolicy", "Always")
        if exec_runner is not None and "sim-exec" in image:
            return ContainerBehaviour.run_with(exec_runner)
        if "sim-imagepull" in image:
            return ContainerBehaviour.image_pull_failure()
        if "sim-crashloop" in image:
            return ContainerBehaviour.exits(1, after=ready_delay, message="simulated crash")
        if "sim-fail" in image:
            return ContainerBehaviour.exits(1, after=ready_delay, message="simulated failure")
        if "sim-unready" in image:
            return ContainerBehaviour.unready()
        if restart_policy != "Always":
            return ContainerBehaviour.exits(0, after=2 * ready_delay)
        return ContainerBehaviour.running(ready_delay)

    return policy


# ====================================================================== IP allocation
class IPAllocator:
    """Hands out one address per Pod from a loopback network, in order, never twice at once.

    Allocation is deterministic: it walks the network from the start, skipping addresses in
    use and ``x.y.z.0`` / ``x.y.z.255``, and wraps around when it reaches the end.
    """

    def __init__(self, network: str = DEFAULT_POD_NETWORK) -> None:
        self.network = ipaddress.IPv4Network(network)
        if not self.network.is_loopback:
            raise ValueError(f"pod network must be inside 127.0.0.0/8, not {network}")
        self._first = int(self.network.network_address) + 1
        self._last = int(self.network.broadcast_address) - 1
        self._next = self._first
        self._by_key: dict[str, str] = {}
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def allocate(self, key: str) -> str:
        with self._lock:
            if key in self._by_key:
                return self._by_key[key]
            for _ in range(self._last - self._first + 1):
                candidate = self._next
                self._next = self._first if candidate >= self._last else candidate + 1
                ip = str(ipaddress.IPv4Address(candidate))
                if candidate & 0xFF in (0, 255) or ip in self._used:
                    continue
                self._by_key[key] = ip
                self._used.add(ip)
                return ip
            raise RuntimeError(f"pod network {self.network} is full")

    def reserve(self, key: str, ip: str) -> bool:
        """Record an address already in use (a Pod adopted from before a restart)."""
        with self._lock:
            if self._by_key.get(key) == ip:
                return True
            try:
                if ipaddress.IPv4Address(ip) not in self.network or ip in self._used:
                    return False
            except ValueError:
                return False
            self._by_key[key] = ip
            self._used.add(ip)
            return True

    def release(self, key: str) -> None:
        with self._lock:
            ip = self._by_key.pop(key, None)
            if ip is not None:
                self._used.discard(ip)

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._by_key.get(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_key)


# ====================================================================== REST helper
class KubeError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class _Gone(Exception):
    pass


class _Rest:
    """Raw JSON access through a ``kubernetes.client.ApiClient`` (no model (de)serialisation)."""

    def __init__(self, api_client: Any) -> None:
        self.api = api_client

    def _send(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Obj | None,
        content_type: str,
        timeout: float | tuple[float, float],
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        m, url, hdrs, payload, _ = self.api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        return self.api.call_api(m, url, header_params=hdrs, body=payload, _request_timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Obj | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Obj:
        resp = self._send(method, path, query, body, content_type, timeout)
        data: bytes = resp.read()
        if not 200 <= resp.status < 300:
            raise KubeError(resp.status, data.decode(errors="replace"))
        result: Obj = json.loads(data) if data else {}
        return result

    def stream(self, path: str, query: dict[str, Any], timeout: tuple[float, float]) -> Any:
        """Start a watch; returns the open urllib3 response (iterate it for lines)."""
        resp = self._send("GET", path, query, None, "application/json", timeout)
        if resp.status != 200:
            data = resp.read()
            if resp.status == 410:
                raise _Gone()
            raise KubeError(resp.status, data.decode(errors="replace"))
        return resp.response


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ====================================================================== per-pod runtime
@dataclass
class _Container:
    name: str
    image: str
    behaviour: ContainerBehaviour
    is_init: bool = False
    sidecar: bool = False
    restart_count: int = 0
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    run_started: float = 0.0
    wake_at: float | None = 0.0  # next time something may change; None: nothing scheduled
    pull_attempts: int = 0
    handle: RunningContainer | None = None
    done: bool = False  # terminated for good

    def status(self, uid: str) -> Obj:
        st: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": f"sim://{self.image}",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if "waiting" not in self.state or self.last_state:
            st["containerID"] = f"sim://{uid}/{self.name}/{self.restart_count}"
        return st


@dataclass
class _PodRuntime:
    uid: str
    namespace: str
    name: str
    ip: str
    restart_policy: str
    start_time: str
    init_containers: list[_Container]
    containers: list[_Container]
    readiness_gates: list[str]
    cond_times: dict[str, tuple[str, str]] = field(default_factory=dict)
    last_sent: Obj | None = None
    terminal: bool = False

    def all_containers(self) -> Iterator[_Container]:
        yield from self.init_containers
        yield from self.containers


# ====================================================================== the node
class SimulatedNode:
    """A Node that binds Pods to itself and plays kubelet for them (see the module docstring).

    ``client`` is a ``kubernetes.client.ApiClient``, or a kubeconfig path, or ``None`` for the
    default kubeconfig (``$KUBECONFIG`` / ``~/.kube/config``). ``behaviour`` picks what each
    container does; when it returns ``None`` (or is not given) :func:`image_policy` decides.
    With ``bind_unscheduled=False`` the node only serves Pods created with ``spec.nodeName``
    set to it (several nodes can then share a cluster; only one should bind). ``image_files``
    says what ``sim-exec`` images hold (``{image: {container path: host path}}``, see
    :meth:`.process_runner.ProcessRunner.provide_image_files`; more can be added later through
    ``node.process_runner``).
    """

    def __init__(
        self,
        client: Any = None,
        node_name: str = DEFAULT_NODE_NAME,
        behaviour: BehaviourPolicy | None = None,
        ready_delay: float = 0.2,
        *,
        pod_network: str = DEFAULT_POD_NETWORK,
        backoff: tuple[float, float] = (1.0, 10.0),
        runner_poll_interval: float = 0.5,
        heartbeat_interval: float = 30.0,
        delete_node_on_stop: bool = False,
        capacity: dict[str, str] | None = None,
        bind_unscheduled: bool = True,
        image_files: Mapping[str, Mapping[str, str | Path]] | None = None,
    ) -> None:
        if client is None or isinstance(client, str | Path):
            config_file = str(client) if client is not None else None
            client = _k8s.config.new_client_from_config(config_file=config_file)
        self.api_client = client
        self._rest = _Rest(client)
        self.node_name = node_name
        self.ready_delay = ready_delay
        from .process_runner import ProcessRunner  # imports this module

        self.process_runner = ProcessRunner(
            lambda path: self._rest.request("GET", path),
            post=lambda path, body: self._rest.request("POST", path, body=body),
            image_files=image_files,
        )
        self._default_policy = image_policy(ready_delay, exec_runner=self.process_runner)
        self._policy = behaviour
        self.ips = IPAllocator(pod_network)
        self.backoff = backoff
        self.runner_poll_interval = runner_poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.delete_node_on_stop = delete_node_on_stop
        self.bind_unscheduled = bind_unscheduled
        self.capacity = capacity or {
            "cpu": "32",
            "memory": "128Gi",
            "pods": "1000",
            "ephemeral-storage": "500Gi",
        }

        self._pods: dict[str, Obj] = {}  # uid -> latest object seen (bound here or unscheduled)
        self._runtimes: dict[str, _PodRuntime] = {}
        self._bind_pending: set[str] = set()
        self._delete_sent: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._synced = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stream: Any = None
        self._force_relist = False
        self._version = ""
        self.relists = 0  # how many times all Pods were listed (the first time included)
        self._next_heartbeat = 0.0
        self.errors: list[str] = []  # unexpected errors, for tests to assert on

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> Self:
        """Register the node, start the watch and worker threads, wait for the first list."""
        if self._threads:
            raise RuntimeError("simulated node already started")
        self._stopping.clear()
        self._synced.clear()
        self._register_node()
        self._threads = [
            threading.Thread(target=self._watch_loop, name=f"simnode-watch-{self.node_name}", daemon=True),
            threading.Thread(target=self._work_loop, name=f"simnode-work-{self.node_name}", daemon=True),
        ]
        for t in self._threads:
            t.start()
        if not self._synced.wait(timeout):
            self.stop()
            raise RuntimeError(f"simulated node {self.node_name}: could not list pods in {timeout} s")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads (and any container runners). Pods stay as they are."""
        self._stopping.set()
        self._close_stream()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        for rt in list(self._runtimes.values()):
            self._stop_runners(rt)
        if self.delete_node_on_stop:
            with contextlib.suppress(Exception):
                self._rest.request("DELETE", f"/api/v1/nodes/{self.node_name}")

    def restart_watch(self) -> None:
        """Drop the current watch connection: the node re-lists all Pods and watches again.

        Normally not needed (expired watches are re-listed on their own); tests use it to
        check that nothing is lost across a re-list.
        """
        self._force_relist = True
        self._close_stream()

    def _close_stream(self) -> None:
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.shutdown()
            with contextlib.suppress(Exception):
                stream.close()

    def run_forever(self) -> None:
        """Start and block until :meth:`stop` is called from elsewhere or Ctrl-C."""
        self.start()
        try:
            while not self._stopping.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # ------------------------------------------------------------------ introspection
    def pod_ip(self, namespace: str, name: str) -> str | None:
        """The IP given to a live Pod of this node."""
        for rt in list(self._runtimes.values()):
            if rt.namespace == namespace and rt.name == name:
                return rt.ip
        return None

    # ------------------------------------------------------------------ node object
    def _node_status(self) -> Obj:
        now = _now_iso()
        conditions = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
            ("Ready", "True", "KubeletReady"),
        ]
        if not self._version:
            try:
                self._version = str(self._rest.request("GET", "/version").get("gitVersion", ""))
            except Exception:  # pragma: no cover - best effort
                self._version = ""
        return {
            "status": {
                "capacity": self.capacity,
                "allocatable": self.capacity,
                "conditions": [
                    {
                        "type": t,
                        "status": s,
                        "reason": r,
                        "message": "simulated node",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                    for t, s, r in conditions
                ],
                "addresses": [
                    {"type": "InternalIP", "address": HOST_IP},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": "simulated",
                    "systemUUID": "simulated",
                    "bootID": "simulated",
                    "kernelVersion": "simulated",
                    "osImage": "simulated node (model-registry-operator devcluster)",
                    "containerRuntimeVersion": "sim://1.0",
                    "kubeletVersion": self._version or "v0.0.0",
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        }

    def _register_node(self) -> None:
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "simulated",
                },
            },
        }
        try:
            self._rest.request("POST", "/api/v1/nodes", body=body)
        except KubeError as exc:
            if exc.status != 409:
                raise
        self._heartbeat()

    def _heartbeat(self) -> None:
        self._rest.request(
            "PATCH",
            f"/api/v1/nodes/{self.node_name}/status",
            body=self._node_status(),
            content_type="application/strategic-merge-patch+json",
        )
        self._next_heartbeat = time.monotonic() + self.heartbeat_interval

    # ------------------------------------------------------------------ watch thread
    def _watch_loop(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                rv = self._relist()
                self._synced.set()
                delay = 0.5
                while not self._stopping.is_set() and not self._force_relist:
                    rv = self._watch_once(rv)
                self._force_relist = False
            except _Gone:
                log.debug("simnode %s: watch expired, re-listing", self.node_name)
                continue
            except Exception as exc:
                if self._stopping.is_set():
                    break
                if self._force_relist:
                    self._force_relist = False
                    continue
                log.warning("simnode %s: watch failed (%s); retrying in %.1f s", self.node_name, exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)

    def _relist(self) -> str:
        self.relists += 1
        seen: dict[str, Obj] = {}
        query: dict[str, Any] = {"limit": 500}
        while True:
            page = self._rest.request("GET", "/api/v1/pods", query=query)
            for pod in page.get("items", []):
                seen[pod["metadata"]["uid"]] = pod
            cont = page.get("metadata", {}).get("continue")
            if not cont:
                rv = str(page["metadata"]["resourceVersion"])
                break
            query = {"limit": 500, "continue": cont}
        with self._cond:
            for uid in list(self._pods):
                if uid not in seen:
                    self._pods.pop(uid, None)
                    self._dirty.add(uid)
            for pod in seen.values():
                self._observe_locked(pod)
            for uid in self._runtimes:
                if uid not in seen:
                    self._dirty.add(uid)
            self._cond.notify_all()
        return rv

    def _watch_once(self, rv: str) -> str:
        query = {
            "watch": "true",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": 55,
        }
        stream = self._rest.stream("/api/v1/pods", query, timeout=(10.0, 90.0))
        self._stream = stream
        if self._force_relist or self._stopping.is_set():
            stream.close()
            self._stream = None
            return rv
        try:
            buf = b""
            for chunk in stream.stream(65536, decode_content=True):
                if self._stopping.is_set():
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        rv = self._on_event(json.loads(line), rv)
        finally:
            self._stream = None
            with contextlib.suppress(Exception):
                stream.release_conn()
        return rv

    def _on_event(self, event: Obj, rv: str) -> str:
        kind = event.get("type")
        obj: Obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise KubeError(int(obj.get("code") or 500), json.dumps(obj))
        new_rv = str(obj.get("metadata", {}).get("resourceVersion") or rv)
        if kind == "BOOKMARK":
            return new_rv
        with self._cond:
            if kind == "DELETED":
                uid = obj["metadata"]["uid"]
                self._pods.pop(uid, None)
                self._dirty.add(uid)
            else:
                self._observe_locked(obj)
            self._cond.notify_all()
        return new_rv

    def _observe_locked(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        node = pod.get("spec", {}).get("nodeName") or ""
        if (node and node != self.node_name) or (not node and not self.bind_unscheduled):
            if uid in self._pods or uid in self._runtimes:
                self._pods.pop(uid, None)
                self._dirty.add(uid)
            return
        self._pods[uid] = pod
        self._dirty.add(uid)

    # ------------------------------------------------------------------ worker thread
    def _work_loop(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                while not self._stopping.is_set():
                    now = time.monotonic()
                    due = bool(self._timers) and self._timers[0][0] <= now
                    if self._dirty or due or now >= self._next_heartbeat:
                        break
                    wait = self._next_heartbeat - now
                    if self._timers:
                        wait = min(wait, self._timers[0][0] - now)
                    self._cond.wait(max(wait, 0.001))
                if self._stopping.is_set():
                    return
                work = set(self._dirty)
                self._dirty.clear()
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    work.add(heapq.heappop(self._timers)[1])
            if time.monotonic() >= self._next_heartbeat:
                try:
                    self._heartbeat()
                except Exception as exc:
                    log.warning("simnode %s: heartbeat failed: %s", self.node_name, exc)
                    self._next_heartbeat = time.monotonic() + 5.0
            for uid in work:
                if self._stopping.is_set():
                    return
                try:
                    self._sync(uid)
                except Exception as exc:
                    self._record_error(f"sync of pod {uid} failed: {exc!r}")
                    self._schedule(uid, time.monotonic() + 1.0)

    def _record_error(self, msg: str) -> None:
        log.warning("simnode %s: %s", self.node_name, msg)
        self.errors.append(msg)
        del self.errors[:-100]

    def _schedule(self, uid: str, when: float) -> None:
        with self._cond:
            heapq.heappush(self._timers, (when, uid))
            self._cond.notify_all()

    def _sync(self, uid: str) -> None:
        with self._cond:
            pod = self._pods.get(uid)
        if pod is None:
            self._forget(uid)
            return
        meta = pod["metadata"]
        spec = pod.get("spec", {})
        node = spec.get("nodeName") or ""
        if not node:
            if not spec.get("schedulingGates") and not meta.get("deletionTimestamp"):
                self._bind(pod)
            return
        if meta.get("deletionTimestamp"):
            self._finalize(pod)
            return
        rt = self._runtimes.get(uid)
        phase = pod.get("status", {}).get("phase")
        if rt is None:
            if phase in ("Succeeded", "Failed"):
                ip = pod.get("status", {}).get("podIP")
                if ip:
                    self.ips.reserve(uid, ip)
                return
            rt = self._new_runtime(pod)
            self._runtimes[uid] = rt
        if rt.terminal:
            return
        now = time.monotonic()
        wake = self._advance(rt, pod, now)
        status = self._pod_status(rt, pod)
        if status != rt.last_sent:
            self._write_status(rt, pod, status)
        if rt.terminal:
            self._stop_runners(rt)
        elif wake is not None:
            self._schedule(uid, wake)

    # ------------------------------------------------------------------ scheduler part
    def _bind(self, pod: Obj) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        if uid in self._bind_pending:
            return
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            self._rest.request("POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body=body)
            self._bind_pending.add(uid)
        except KubeError as exc:
            if exc.status in (404, 409):  # gone, or already bound: the watch tells the rest
                return
            raise

    # ------------------------------------------------------------------ kubelet part
    def _new_runtime(self, pod: Obj) -> _PodRuntime:
        meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        uid = meta["uid"]
        self._bind_pending.discard(uid)
        if spec.get("hostNetwork"):
            ip = HOST_IP
        else:
            old = status.get("podIP")
            ip = old if old and self.ips.reserve(uid, old) else self.ips.allocate(uid)
        old_restarts = {
            s["name"]: int(s.get("restartCount", 0))
            for s in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]
        }

        def make(c: Obj, is_init: bool) -> _Container:
            sidecar = is_init and c.get("restartPolicy") == "Always"
            behaviour = ContainerBehaviour.running(0.0) if is_init and not sidecar else self._behaviour(pod, c)
            return _Container(
                name=c["name"],
                image=str(c.get("image", "")),
                behaviour=behaviour,
                is_init=is_init,
                sidecar=sidecar,
                restart_count=old_restarts.get(c["name"], 0),
            )

        return _PodRuntime(
            uid=uid,
            namespace=meta["namespace"],
            name=meta["name"],
            ip=ip,
            restart_policy=spec.get("restartPolicy", "Always"),
            start_time=status.get("startTime") or _now_iso(),
            init_containers=[make(c, True) for c in spec.get("initContainers", [])],
            containers=[make(c, False) for c in spec.get("containers", [])],
            readiness_gates=[g["conditionType"] for g in spec.get("readinessGates", [])],
        )

    def _behaviour(self, pod: Obj, container: Obj) -> ContainerBehaviour:
        if self._policy is not None:
            try:
                chosen = self._policy(pod, container)
            except Exception as exc:
                self._record_error(f"behaviour policy failed for {container.get('name')}: {exc!r}")
                chosen = None
            if chosen is not None:
                return chosen
        return self._default_policy(pod, container)

    def _backoff(self, restart_count: int) -> float:
        base, cap = self.backoff
        return float(min(cap, base * (2 ** min(restart_count, 16))))

    def _advance(self, rt: _PodRuntime, pod: Obj, now: float) -> float | None:
        """Move every container along its behaviour; returns when to look again."""
        wakes: list[float] = []
        # Plain init containers complete one after the other, instantly; sidecars keep running.
        for c in rt.init_containers:
            if c.sidecar:
                w = self._advance_container(rt, pod, c, now)
            elif not c.done:
                started = _now_iso()
                c.state = {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": started,
                        "finishedAt": started,
                        "containerID": f"sim://{rt.uid}/{c.name}/{c.restart_count}",
                    }
                }
                c.ready, c.started, c.done, c.wake_at = True, False, True, None
                w = None
            else:
                w = None
            if w is not None:
                wakes.append(w)
        for c in rt.containers:
            w = self._advance_container(rt, pod, c, now)
            if w is not None:
                wakes.append(w)
        return min(wakes) if wakes else None

    def _advance_container(self, rt: _PodRuntime, pod: Obj, c: _Container, now: float) -> float | None:
        b = c.behaviour
        for _ in range(8):  # a few transitions may be due at once
            if c.done:
                return None
            if c.wake_at is not None and now < c.wake_at and "running" not in c.state:
                return c.wake_at
            waiting = c.state.get("waiting")
            if waiting is not None:
                if b.image_pull_error:
                    c.pull_attempts += 1
                    reason = "ErrImagePull" if c.pull_attempts % 2 == 1 else "ImagePullBackOff"
                    msg = (
                        f'failed to pull image "{c.image}": simulated pull failure'
                        if reason == "ErrImagePull"
                        else f'Back-off pulling image "{c.image}"'
                    )
                    c.state = {"waiting": {"reason": reason, "message": msg}}
                    c.wake_at = now + self._backoff(c.pull_attempts // 2)
                    return c.wake_at
                if waiting.get("reason") == "CrashLoopBackOff":
                    c.restart_count += 1
                self._start_container(rt, pod, c, now)
                continue
            if "running" in c.state:
                exit_ = self._check_running(c, now)
                if exit_ is None:
                    return c.wake_at
                self._terminate(rt, c, exit_, now)
                continue
            if "terminated" in c.state:
                code = int(c.state["terminated"]["exitCode"])
                policy = "Always" if c.sidecar else rt.restart_policy
                if policy == "Always" or (policy == "OnFailure" and code != 0):
                    delay = self._backoff(c.restart_count)
                    c.last_state = dict(c.state)
                    c.state = {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {delay:g}s restarting failed container={c.name} "
                            f"pod={rt.name}_{rt.namespace}({rt.uid})",
                        }
                    }
                    c.wake_at = now + delay
                    return c.wake_at
                c.done, c.wake_at = True, None
                return None
        return now + 0.05

    def _start_container(self, rt: _PodRuntime, pod: Obj, c: _Container, now: float) -> None:
        c.state = {"running": {"startedAt": _now_iso()}}
        c.started, c.ready, c.run_started = True, False, now
        if c.behaviour.runner is not None:
            ctx = ContainerContext(
                pod=pod,
                container=_find_container(pod, c.name),
                pod_ip=rt.ip,
                node_name=self.node_name,
                restart_count=c.restart_count,
            )
            try:
                c.handle = c.behaviour.runner.start(ctx)
            except Exception as exc:
                self._record_error(f"runner failed to start {rt.namespace}/{rt.name}/{c.name}: {exc!r}")
                c.handle = None
                c.state = {"running": {"startedAt": _now_iso()}}
                self._terminate(rt, c, ContainerExit(128, "StartError", str(exc)), now)

    def _check_running(self, c: _Container, now: float) -> ContainerExit | None:
        b = c.behaviour
        if b.runner is not None:
            if c.handle is None:
                return ContainerExit(128, "StartError", "runner did not start")
            result = c.handle.poll()
            if result is not None:
                return result
            is_started = getattr(c.handle, "is_started", None)  # optional: startup probes
            c.started = bool(is_started()) if callable(is_started) else True
            c.ready = bool(c.handle.is_ready())
            c.wake_at = now + self.runner_poll_interval
            return None
        elapsed = now - c.run_started
        if b.exit_after is not None and elapsed >= b.exit_after:
            return ContainerExit(b.exit_code, b.reason, b.message)
        pending: list[float] = []
        if b.ready_after is not None:
            if elapsed >= b.ready_after:
                c.ready = True
            else:
                pending.append(c.run_started + b.ready_after)
        if b.exit_after is not None:
            pending.append(c.run_started + b.exit_after)
        c.wake_at = min(pending) if pending else None
        return None

    def _terminate(self, rt: _PodRuntime, c: _Container, exit_: ContainerExit, now: float) -> None:
        started = c.state.get("running", {}).get("startedAt", _now_iso())
        term: Obj = {
            "exitCode": exit_.exit_code,
            "reason": exit_.reason or ("Completed" if exit_.exit_code == 0 else "Error"),
            "startedAt": started,
            "finishedAt": _now_iso(),
            "containerID": f"sim://{rt.uid}/{c.name}/{c.restart_count}",
        }
        if exit_.message:
            term["message"] = exit_.message
        c.state = {"terminated": term}
        c.ready = False
        c.started = False
        c.handle = None
        c.wake_at = now

    def _phase(self, rt: _PodRuntime) -> str:
        containers = rt.containers
        if any("waiting" in c.state and not c.last_state for c in containers):
            return "Pending"
        if all(c.done for c in containers) and containers:
            failed = any(int(c.state["terminated"]["exitCode"]) != 0 for c in containers)
            return "Failed" if failed else "Succeeded"
        return "Running"

    def _condition(self, rt: _PodRuntime, ctype: str, status: str, reason: str = "", message: str = "") -> Obj:
        old = rt.cond_times.get(ctype)
        if old is None or old[0] != status:
            rt.cond_times[ctype] = (status, _now_iso())
        cond: Obj = {
            "type": ctype,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": rt.cond_times[ctype][1],
        }
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    def _pod_status(self, rt: _PodRuntime, pod: Obj) -> Obj:
        phase = self._phase(rt)
        terminal = phase in ("Succeeded", "Failed")
        unready = [c.name for c in rt.containers if not c.ready]
        if terminal:
            reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
            containers_ready = self._condition(rt, "ContainersReady", "False", reason)
            ready = self._condition(rt, "Ready", "False", reason)
        elif unready:
            msg = f"containers with unready status: [{' '.join(unready)}]"
            containers_ready = self._condition(rt, "ContainersReady", "False", "ContainersNotReady", msg)
            ready = self._condition(rt, "Ready", "False", "ContainersNotReady", msg)
        else:
            containers_ready = self._condition(rt, "ContainersReady", "True")
            existing = {c["type"]: c.get("status") for c in pod.get("status", {}).get("conditions", [])}
            missing = [g for g in rt.readiness_gates if existing.get(g) != "True"]
            if missing:
                ready = self._condition(
                    rt,
                    "Ready",
                    "False",
                    "ReadinessGatesNotReady",
                    f'corresponding condition of pod readiness gate "{missing[0]}" does not exist.',
                )
            else:
                ready = self._condition(rt, "Ready", "True")
        conditions = [
            self._condition(rt, "PodReadyToStartContainers", "False" if terminal else "True"),
            self._condition(rt, "Initialized", "True"),
            ready,
            containers_ready,
            self._condition(rt, "PodScheduled", "True"),
        ]
        status: Obj = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "podIP": rt.ip,
            "podIPs": [{"ip": rt.ip}],
            "startTime": rt.start_time,
            "containerStatuses": [c.status(rt.uid) for c in rt.containers],
        }
        if rt.init_containers:
            status["initContainerStatuses"] = [c.status(rt.uid) for c in rt.init_containers]
        generation = pod["metadata"].get("generation")
        if generation is not None:
            status["observedGeneration"] = generation
        return status

    def _write_status(self, rt: _PodRuntime, pod: Obj, status: Obj) -> None:
        meta = pod["metadata"]
        try:
            self._rest.request(
                "PATCH",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                body={"metadata": {"uid": rt.uid}, "status": status},
                content_type="application/strategic-merge-patch+json",
            )
        except KubeError as exc:
            if exc.status == 404:
                return
            rt.last_sent = None
            raise
        rt.last_sent = status
        if status["phase"] in ("Succeeded", "Failed"):
            rt.terminal = True

    def _finalize(self, pod: Obj) -> None:
        """The Pod is being deleted: stop its containers, then delete it for good (grace 0).

        Like a kubelet, the node first reports the stopped containers and a terminal phase (a
        container stopped by SIGTERM exits with 143; one that never started is reported as
        ``ContainerStatusUnknown``), so that e.g. the Job controller sees a finished Pod.
        """
        meta = pod["metadata"]
        uid = meta["uid"]
        if uid in self._delete_sent:
            return
        rt = self._runtimes.get(uid)
        if rt is not None:
            self._stop_runners(rt)
            if not rt.terminal and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                now = time.monotonic()
                for c in rt.all_containers():
                    if c.done:
                        continue
                    if "running" in c.state:
                        self._terminate(rt, c, ContainerExit(143, "Error"), now)
                    else:
                        self._terminate(
                            rt,
                            c,
                            ContainerExit(
                                137,
                                "ContainerStatusUnknown",
                                "The container could not be located when the pod was terminated",
                            ),
                            now,
                        )
                    c.done = True
                try:
                    self._write_status(rt, pod, self._pod_status(rt, pod))
                except KubeError as exc:  # deleting matters more than the last status
                    self._record_error(f"final status of {rt.namespace}/{rt.name} not written: {exc}")
        try:
            self._rest.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": uid},
                },
            )
        except KubeError as exc:
            if exc.status not in (404, 409):
                raise
        self._delete_sent.add(uid)

    def _forget(self, uid: str) -> None:
        rt = self._runtimes.pop(uid, None)
        if rt is not None:
            self._stop_runners(rt)
        self.ips.release(uid)
        self._bind_pending.discard(uid)
        self._delete_sent.discard(uid)

    def _stop_runners(self, rt: _PodRuntime) -> None:
        for c in rt.all_containers():
            if c.handle is not None:
                handle, c.handle = c.handle, None
                try:
                    handle.stop()
                except Exception as exc:
                    self._record_error(f"runner stop failed for {rt.namespace}/{rt.name}/{c.name}: {exc!r}")


def _find_container(pod: Obj, name: str) -> Obj:
    spec = pod.get("spec", {})
    for c in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        if c.get("name") == name:
            return cast(Obj, c)
    return {"name": name}
