"""Service names for the process containers of the simulated node: a tiny cluster DNS.

There is no kube-proxy and no cluster DNS on the simulated node, and every process container
shares the host network. What a Pod needs most is to reach a Service by its name, so the private
``/etc/hosts`` of each process container names every Service of the cluster, the way cluster
DNS would answer:

* ``<svc>.<ns>``, ``<svc>.<ns>.svc`` and ``<svc>.<ns>.svc.<cluster domain>`` for every Service,
  and the bare ``<svc>`` for the Services of the Pod's own namespace (what the DNS search path
  gives);
* each name resolves to the Pod IP of a *ready* endpoint of the Service (from its
  EndpointSlices; the lowest address when there are several, so the answer is stable). A
  Service with no ready endpoint is not listed: connecting to it fails at once, as it would with
  no endpoint behind a ClusterIP;
* endpoints with a ``hostname`` (headless Services of StatefulSets) also get
  ``<hostname>.<svc>.<ns>.svc[.<cluster domain>]``;
* ``ExternalName`` Services are not listed (``/etc/hosts`` has no CNAME).

There is no address translation: a name leads to the Pod IP, so a Service port is reachable
when it equals its ``targetPort`` (the usual case, and the case of every Service the operator
makes). Since all processes share the host network, a server bound to ``0.0.0.0`` answers on
every Pod IP anyway, and one bound to ``127.0.0.1`` on none (as in a Pod's own network
namespace), but its loopback is the node's, which every process container shares.

The files are kept up to date: :class:`ServiceHosts` re-reads Services and EndpointSlices
every ``refresh_interval`` seconds while it tracks any file, and rewrites in place (same
inode, so the bind mount sees it) the files whose content changed. A Service that becomes
ready after a container started is therefore resolvable a moment later. The refresh thread
ends by itself once no file is tracked (every container stopped).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Getter = Callable[[str], Obj]

CLUSTER_DOMAIN = "cluster.local"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HEADER = "# Kubernetes-managed hosts file (simulated node)."


@dataclass(frozen=True)
class ServiceRecord:
    """Where the name of one Service leads."""

    namespace: str
    name: str
    address: str
    hostnames: tuple[tuple[str, str], ...] = ()  # (endpoint hostname, its address)


def _ip_key(address: str) -> tuple[int, int]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (9, 0)
    return (ip.version, int(ip))


def service_records(services: Iterable[Obj], slices: Iterable[Obj]) -> list[ServiceRecord]:
    """The Services that have a ready endpoint, with the address their names resolve to."""
    ready: dict[tuple[str, str], set[str]] = {}
    hostnames: dict[tuple[str, str], dict[str, str]] = {}
    for es in slices:
        meta = es.get("metadata") or {}
        svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not svc:
            continue
        key = (str(meta.get("namespace", "")), str(svc))
        for endpoint in es.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue  # nil means ready (EndpointSlice API)
            addresses = [str(a) for a in endpoint.get("addresses") or []]
            ready.setdefault(key, set()).update(addresses)
            if endpoint.get("hostname") and addresses:
                hostnames.setdefault(key, {})[str(endpoint["hostname"])] = min(addresses, key=_ip_key)
    records: list[ServiceRecord] = []
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            continue
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        ready_addresses = ready.get(key)
        if not ready_addresses:
            continue
        records.append(
            ServiceRecord(
                key[0],
                key[1],
                min(ready_addresses, key=_ip_key),
                tuple(sorted(hostnames.get(key, {}).items())),
            )
        )
    return sorted(records, key=lambda r: (r.namespace, r.name))


def hosts_text(
    pod_ip: str,
    pod_name: str,
    namespace: str,
    records: Iterable[ServiceRecord],
    cluster_domain: str = CLUSTER_DOMAIN,
) -> str:
    """The ``/etc/hosts`` of a container of Pod ``namespace/pod_name``."""
    lines = [HEADER, "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{pod_ip}\t{pod_name}"]
    for r in records:
        fqdn = f"{r.name}.{r.namespace}.svc"
        names = [f"{fqdn}.{cluster_domain}", fqdn, f"{r.name}.{r.namespace}"]
        if r.namespace == namespace:
            names.append(r.name)
        lines.append(f"{r.address}\t{' '.join(names)}")
        for hostname, address in r.hostnames:
            lines.append(f"{address}\t{hostname}.{fqdn}.{cluster_domain} {hostname}.{fqdn}")
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, text: str) -> None:
    """Replace the content of ``path`` keeping its inode (a bind mount of it sees the change).

    The new content is written over the old one before the file is cut to length, so a reader
    never finds it empty.
    """
    data = text.encode()
    with path.open("r+b") as f:
        f.write(data)
        f.truncate(len(data))


@dataclass(frozen=True)
class _Tracked:
    pod_ip: str
    pod_name: str
    namespace: str


class ServiceHosts:
    """Renders the hosts files of process containers and keeps them up to date (module docstring).

    ``get(path)`` reads an API path (``/api/v1/services``, ...) as JSON.
    """

    def __init__(
        self,
        get: Getter,
        *,
        refresh_interval: float = 2.0,
        cluster_domain: str = CLUSTER_DOMAIN,
        max_age: float = 0.2,
    ) -> None:
        self._get = get
        self.refresh_interval = refresh_interval
        self.cluster_domain = cluster_domain
        self.max_age = max_age
        self._lock = threading.Lock()
        self._files: dict[Path, _Tracked] = {}
        self._content: dict[Path, str] = {}
        self._records: list[ServiceRecord] = []
        self._read_at = float("-inf")
        self._thread: threading.Thread | None = None
        self.refreshes = 0

    # -- cluster view --------------------------------------------------------------------
    def records(self, max_age: float | None = None) -> list[ServiceRecord]:
        """The Services with a ready endpoint, re-read when older than ``max_age`` seconds.

        When the API cannot be read the last known records are kept.
        """
        age = self.max_age if max_age is None else max_age
        with self._lock:
            if time.monotonic() - self._read_at <= age:
                return list(self._records)
        read_at = time.monotonic()
        try:
            services = self._get("/api/v1/services").get("items") or []
            slices = self._get("/apis/discovery.k8s.io/v1/endpointslices").get("items") or []
            records = service_records(services, slices)
        except Exception as exc:
            log.warning("simnode hosts: cannot list Services / EndpointSlices: %s", exc)
            with self._lock:
                return list(self._records)
        with self._lock:
            if read_at >= self._read_at:
                self._records, self._read_at = records, read_at
            return list(self._records)

    def render(self, pod_ip: str, pod_name: str, namespace: str) -> str:
        """The current hosts file of a container of that Pod."""
        return hosts_text(pod_ip, pod_name, namespace, self.records(), self.cluster_domain)

    # -- tracked files -------------------------------------------------------------------
    def write(self, path: Path, pod_ip: str, pod_name: str, namespace: str) -> None:
        """Write the hosts file at ``path`` and keep it up to date until :meth:`untrack`."""
        text = self.render(pod_ip, pod_name, namespace)
        path.write_text(text)
        with self._lock:
            self._files[path] = _Tracked(pod_ip, pod_name, namespace)
            self._content[path] = text
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="simnode-service-hosts", daemon=True)
                self._thread.start()

    def untrack(self, path: Path) -> None:
        with self._lock:
            self._files.pop(path, None)
            self._content.pop(path, None)

    def tracked(self) -> list[Path]:
        with self._lock:
            return list(self._files)

    def refresh(self) -> None:
        """Re-read the cluster and rewrite every tracked file whose content changed."""
        records = self.records(max_age=0.0)
        with self._lock:
            files = dict(self._files)
        for path, t in files.items():
            text = hosts_text(t.pod_ip, t.pod_name, t.namespace, records, self.cluster_domain)
            with self._lock:
                if path not in self._files or self._content.get(path) == text:
                    continue
                try:
                    write_in_place(path, text)
                except OSError:  # the container is going away
                    continue
                self._content[path] = text
        self.refreshes += 1

    def _loop(self) -> None:
        while True:
            time.sleep(self.refresh_interval)
            with self._lock:
                if not self._files:
                    self._thread = None
                    return
            try:
                self.refresh()
            except Exception:  # keep refreshing the other files; a bug shows in the log
                log.exception("simnode hosts: refresh failed")
