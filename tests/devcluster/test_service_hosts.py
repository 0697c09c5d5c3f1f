"""Service names in the private /etc/hosts of process containers (model_registry_devcluster/service_hosts.py).

The pure part: which address each Service name gets from Services and EndpointSlices as the API
serves them, and how the hosts file reads. The live part (a process resolving a Service of the
cluster, files refreshed while it runs) is in test_process_pods.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from model_registry_devcluster.service_hosts import (
    ServiceRecord,
    hosts_text,
    service_records,
    write_in_place,
)


def service(ns: str, name: str, **spec: Any) -> dict[str, Any]:  # noqa: ANN401
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"type": "ClusterIP", **spec}}


def endpoint_slice(ns: str, svc: str, *endpoints: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": f"{svc}-abcde", "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": list(endpoints),
    }


def ep(ip: str, ready: bool | None = True, hostname: str | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {"addresses": [ip]}
    if ready is not None:
        e["conditions"] = {"ready": ready}
    if hostname:
        e["hostname"] = hostname
    return e


def test_each_service_leads_to_the_lowest_ready_endpoint() -> None:
    services = [
        service("a", "web"),
        service("a", "idle"),  # no endpoints at all
        service("a", "starting"),  # endpoints, none ready
        service("b", "db", clusterIP="None"),
        service("b", "ext", type="ExternalName", externalName="example.com"),
    ]
    slices = [
        endpoint_slice("a", "web", ep("127.1.0.20"), ep("127.1.0.3", ready=False)),
        endpoint_slice("a", "web", ep("127.1.0.9"), ep("127.1.0.100", ready=None)),  # a second slice; nil = ready
        endpoint_slice("a", "starting", ep("127.1.0.4", ready=False)),
        endpoint_slice("b", "db", ep("127.1.0.7", hostname="db-0"), ep("127.1.0.8", hostname="db-1")),
        endpoint_slice("b", "ext", ep("127.1.0.5")),
        {"metadata": {"namespace": "a", "name": "unlabelled"}, "endpoints": [ep("127.1.0.1")]},
    ]
    assert service_records(services, slices) == [
        ServiceRecord("a", "web", "127.1.0.9"),
        ServiceRecord("b", "db", "127.1.0.7", (("db-0", "127.1.0.7"), ("db-1", "127.1.0.8"))),
    ]


def test_hosts_file_names_the_pod_and_services_short_names_only_in_its_namespace() -> None:
    records = [
        ServiceRecord("a", "web", "127.1.0.9"),
        ServiceRecord("b", "db", "127.1.0.7", (("db-0", "127.1.0.7"),)),
    ]
    text = hosts_text("127.1.0.2", "client", "a", records)
    lines = text.splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "127.1.0.2\tclient",
        "127.1.0.9\tweb.a.svc.cluster.local web.a.svc web.a web",
        "127.1.0.7\tdb.b.svc.cluster.local db.b.svc db.b",
        "127.1.0.7\tdb-0.db.b.svc.cluster.local db-0.db.b.svc",
    ]
    assert "\tweb.a.svc.example web.a.svc web.a web\n" in hosts_text("127.1.0.2", "c", "a", records, "example")


def test_write_in_place_keeps_the_inode_a_bind_mount_sees(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1\tlocalhost\n" * 20)
    inode = os.stat(path).st_ino
    write_in_place(path, "127.0.0.1\tlocalhost\n")
    assert (path.read_text(), os.stat(path).st_ino) == ("127.0.0.1\tlocalhost\n", inode)
    write_in_place(path, "x" * 4096)
    assert (len(path.read_text()), os.stat(path).st_ino) == (4096, inode)
