"""Reconcile benchmark: latency from create to children + status, and operator memory.

    python -m tests.bench.reconcile [--latency-crs 200] [--memory-crs 1000] [--write docs/benchmarks.md]

Starts the local control plane, the simulated node and the operator as a process, like the
integration tests. Latency: CRs are created at a steady pace; for each, the time from the
create call returning to the moment a watch sees its first status written by the operator
(which the operator writes only after every child has been applied), and to Available=True.
Memory: the operator's resident set size once 1,000 registries have all been reconciled.
Also reported: the operator's CPU time per registry (user + system, from /proc: steadier than
latencies on a shared machine) and the ModelRegistry watch events per registry (each write to a
registry is one event every watcher, the operator included, processes).

The operator runs with its default drift-check interval (RESYNC_INTERVAL_SECONDS, 300 s), not
the 10 s of the integration tests: at 10 s, 1,000 registries would mean 100 full re-applies a
second, which is not what a deployed operator does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import watch as k8s_watch

from model_registry_devcluster.controlplane import ControlPlane
from model_registry_devcluster.simnode import SimulatedNode
from model_registry_operator.kube import lookup
from tests.integration.conftest import ROOT, OperatorProcess
from tests.integration.kube import Cluster

GROUP, VERSION, PLURAL = "modelregistry.opendatahub.io", "v1beta1", "modelregistries"
DEPLOYMENT = lookup("apps/v1", "Deployment")
SERVICE = lookup("v1", "Service")


class StatusWatch:
    """Timestamps of the first status and of Available=True, per registry, from a watch."""

    def __init__(self, cluster: Cluster) -> None:
        self.api = k8s_client.CustomObjectsApi(cluster.kube.api_client)
        self.first_status: dict[str, float] = {}
        self.available: dict[str, float] = {}
        self.events: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            w = k8s_watch.Watch()
            try:
                for event in w.stream(self.api.list_cluster_custom_object, GROUP, VERSION, PLURAL, timeout_seconds=30):
                    now = time.monotonic()
                    obj: dict[str, Any] = event["object"]
                    key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
                    if event["type"] != "ADDED" or key not in self.events:  # a restarted watch lists again
                        self.events[key] = self.events.get(key, 0) + 1
                    status = obj.get("status") or {}
                    if status.get("conditions"):
                        self.first_status.setdefault(key, now)
                    if any(c["type"] == "Available" and c["status"] == "True" for c in status.get("conditions", [])):
                        self.available.setdefault(key, now)
                    if self._stop.is_set():
                        break
            except Exception as exc:  # noqa: BLE001 - a dropped watch restarts
                print(f"watch restarted: {exc}", file=sys.stderr)

    def stop(self) -> None:
        self._stop.set()


def registry_yaml(name: str) -> dict[str, Any]:
    # A closed loopback port: the database probe answers at once (Unreachable).
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRegistry",
        "metadata": {"name": name},
        "spec": {"rest": {}, "postgres": {"host": "127.0.0.1", "port": 1, "database": "d", "username": "u"}},
    }


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled_cpu(pid: int, quiet: float = 0.1, window: float = 3.0, timeout: float = 120.0) -> float:
    """CPU time once the process has used less than ``quiet`` seconds over ``window`` seconds."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - before < quiet:
            return now
        before = now
    return cpu_seconds(pid)


def create(cluster: Cluster, namespace: str, name: str) -> float:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    cluster.kube.request_sync("POST", path, body=registry_yaml(name))
    return time.monotonic()


def wait_all(keys: list[str], seen: dict[str, float], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(k in seen for k in keys):
            return
        time.sleep(0.05)
    missing = [k for k in keys if k not in seen]
    raise RuntimeError(f"{len(missing)} registries not reconciled in {timeout}s, e.g. {missing[:3]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-crs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="creates per second in the latency run")
    parser.add_argument("--memory-crs", type=int, default=1000)
    parser.add_argument("--write", help="write the figures into this Markdown file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mro-bench-"))
    with ControlPlane(work / "cp") as cp:
        node = SimulatedNode(str(cp.kubeconfig)).start()
        cluster = Cluster(cp.kubeconfig)
        cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "config" / "crd"))
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}")
        operator = OperatorProcess(cp.kubeconfig, work, {"RESYNC_INTERVAL_SECONDS": "300"})
        pid = operator.process.pid
        idle_rss = rss_mib(pid)
        watcher = StatusWatch(cluster)
        try:
            # Latency: a steady stream of creates over 4 namespaces.
            namespaces = [f"bench-{i}" for i in range(4)]
            for ns in namespaces:
                cluster.create_namespace(ns)
            created: dict[str, float] = {}
            cpu_before = settled_cpu(pid)
            start = time.monotonic()
            for i in range(args.latency_crs):
                ns = namespaces[i % len(namespaces)]
                target = start + i / args.rate
                time.sleep(max(0.0, target - time.monotonic()))
                created[f"{ns}/lat-{i}"] = create(cluster, ns, f"lat-{i}")
            keys = list(created)
            wait_all(keys, watcher.first_status, 120)
            wait_all(keys, watcher.available, 180)
            cpu_latency = (settled_cpu(pid) - cpu_before) / len(keys)
            events_per_registry = statistics.mean(watcher.events.get(k, 0) for k in keys)
            to_status = [watcher.first_status[k] - created[k] for k in keys]
            to_available = [watcher.available[k] - created[k] for k in keys]
            # Every child is there for every registry.
            for k in keys[:: max(1, len(keys) // 20)]:
                ns, name = k.split("/")
                assert cluster.get(DEPLOYMENT, ns, name), k
                assert cluster.get(SERVICE, ns, name), k

            # Memory: up to N registries in total, created as fast as the API server takes them.
            more = [f"mem-{i}" for i in range(args.memory_crs - args.latency_crs)]
            for ns in (f"mem-{i}" for i in range(10)):
                cluster.create_namespace(ns)
            mem_keys = []
            cpu_before = settled_cpu(pid)
            burst_start = time.monotonic()
            for i, name in enumerate(more):
                ns = f"mem-{i % 10}"
                create(cluster, ns, name)
                mem_keys.append(f"{ns}/{name}")
            wait_all(mem_keys, watcher.first_status, 600)
            burst_seconds = time.monotonic() - burst_start
            time.sleep(15)  # let child events and probes settle
            cpu_burst = (settled_cpu(pid) - cpu_before) / max(1, len(mem_keys))
            rss_after = rss_mib(pid)
            assert operator.alive, operator.tail()
        finally:
            watcher.stop()
            operator.stop()
            node.stop()

    results = {
        "latency_crs": args.latency_crs,
        "rate": args.rate,
        "p50_status": statistics.median(to_status),
        "p99_status": percentile(to_status, 99),
        "max_status": max(to_status),
        # When the slowest ones were created (seconds into the run): a cluster of them is one
        # stall of the machine or the API server, spread out means steady queueing.
        "slowest": sorted(((lat, created[k] - start) for k, lat in zip(keys, to_status, strict=True)), reverse=True)[
            :5
        ],
        "p50_available": statistics.median(to_available),
        "p99_available": percentile(to_available, 99),
        "memory_crs": args.memory_crs,
        "burst": len(mem_keys),
        "burst_seconds": burst_seconds,
        "idle_rss": idle_rss,
        "rss_after": rss_after,
        "cpu_latency": cpu_latency,
        "cpu_burst": cpu_burst,
        "events": events_per_registry,
    }
    report = render_report(results)
    print(report)
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(report)
    return 0


def render_report(r: dict[str, Any]) -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return f"""# Benchmarks

## Reconcile latency and operator memory (ModelRegistry)

Reproduce: `make bench` (runs `python -m tests.bench.reconcile --write build/benchmarks.md`).

Set-up: the local control plane (kube-apiserver, kube-controller-manager and etcd built by
`hack/build-k8s.sh`), the simulated node, and the operator as a process, all on one machine
({os.cpu_count()} cores, {cpu}, Python {platform.python_version()}). Each registry uses an
external PostgreSQL address whose port is closed, so the live database probe answers at once.

| Measure | Result | Target |
|---|---|---|
| create → children + status, p50 ({r["latency_crs"]} CRs at {r["rate"]:.0f}/s) | {r["p50_status"]:.3f} s | ≤ 0.3 s |
| create → children + status, p99 | {r["p99_status"]:.3f} s | ≤ 1 s |
| create → children + status, max | {r["max_status"]:.3f} s | |
| the five slowest (latency, created at) | {", ".join(f"{lat:.2f} s at {at:.1f} s" for lat, at in r["slowest"])} | |
| create → `Available=True` (pod Ready on the simulated node, endpoints ready), p50 | {r["p50_available"]:.3f} s | |
| create → `Available=True`, p99 | {r["p99_available"]:.3f} s | |
| {r["burst"]} further CRs created back to back: all reconciled after | {r["burst_seconds"]:.1f} s | |
| operator CPU time per registry, {r["rate"]:.0f}/s run (until all `Available`) | {r["cpu_latency"] * 1000:.0f} ms | |
| operator CPU time per registry, created back to back | {r["cpu_burst"] * 1000:.0f} ms | |
| ModelRegistry watch events per registry (create, finalizer, status writes) | {r["events"]:.1f} | |
| operator RSS idle | {r["idle_rss"]:.0f} MiB | |
| operator RSS with {r["memory_crs"]} registries reconciled | {r["rss_after"]:.0f} MiB | ≤ 150 MiB |

The latency clock starts when the create call returns and stops when a watch on the registries
sees the first status the operator wrote (it writes status only after every child has been
applied and pruning is done). Numbers vary with the machine's load; the run is self-contained
and takes a few minutes.
"""


if __name__ == "__main__":
    raise SystemExit(main())
