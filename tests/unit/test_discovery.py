"""Discovery of the optional APIs and the watcher that keeps it current."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES, Capabilities
from model_registry_operator.platform.discovery import CapabilityWatcher, cluster_domain, discover, groups_of


def api_groups(*names: str) -> dict[str, Any]:
    return {"kind": "APIGroupList", "groups": [{"name": n} for n in ("apps", "batch", *names)]}


class FakeKube:
    """Answers GET /apis and the cluster Ingress config."""

    def __init__(self, groups: dict[str, Any], ingress: dict[str, Any] | None = None) -> None:
        self.groups = groups
        self.ingress = ingress
        self.fail = False

    async def request(self, method: str, path: str, *_: Any) -> Any:
        if self.fail:
            raise OSError("connection refused")
        assert (method, path) == ("GET", "/apis")
        return self.groups

    async def get(self, kind: Any, namespace: str | None, name: str) -> dict[str, Any] | None:
        assert (kind.kind, namespace, name) == ("Ingress", None, "cluster")
        return self.ingress


def test_groups_of_keeps_only_the_optional_ones() -> None:
    groups = groups_of(api_groups("route.openshift.io", "networking.istio.io", "example.com"))
    assert groups == {"route.openshift.io", "networking.istio.io"}


@pytest.mark.parametrize(
    ("spec", "domain"),
    [
        ({"domain": "apps.a", "appsDomain": "apps.b"}, "apps.b"),
        ({"domain": "apps.a"}, "apps.a"),
        ({}, ""),
    ],
)
def test_cluster_domain_prefers_apps_domain(spec: dict[str, str], domain: str) -> None:
    assert cluster_domain({"spec": spec}) == domain
    assert cluster_domain(None) == ""


def test_discover_reads_the_domain_only_on_openshift() -> None:
    kube = FakeKube(api_groups("route.openshift.io", "config.openshift.io"), {"spec": {"appsDomain": "apps.x"}})
    caps = asyncio.run(discover(kube))  # type: ignore[arg-type]
    assert (caps.openshift, caps.openshift_config, caps.openshift_users) == (True, True, False)
    assert caps.cluster_domain == "apps.x"
    plain = asyncio.run(discover(FakeKube(api_groups())))  # type: ignore[arg-type]
    assert plain == PLAIN_KUBERNETES


def test_capabilities_missing_names_the_groups() -> None:
    caps = Capabilities.from_groups({"networking.istio.io"})
    assert caps.missing("networking.istio.io", "security.istio.io") == ["security.istio.io"]


def test_watcher_tells_its_listener_only_about_changes() -> None:
    kube = FakeKube(api_groups())
    seen: list[tuple[Capabilities, Capabilities]] = []

    async def listener(before: Capabilities, after: Capabilities) -> None:
        seen.append((before, after))

    watcher = CapabilityWatcher(kube, 30, listener)  # type: ignore[arg-type]

    async def scenario() -> None:
        assert not await watcher.refresh()  # plain Kubernetes, as assumed at start
        kube.groups = api_groups("gateway.networking.k8s.io")
        assert await watcher.refresh()
        assert not await watcher.refresh()
        kube.fail = True  # a failed discovery keeps what was known
        assert not await watcher.refresh()
        kube.fail = False
        kube.groups = api_groups()
        assert await watcher.refresh()

    asyncio.run(scenario())
    assert [(b.gateway_api, a.gateway_api) for b, a in seen] == [(False, True), (True, False)]
    assert watcher() == PLAIN_KUBERNETES


def test_bursts_of_crd_events_collapse_into_one_refresh_per_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    from model_registry_operator.platform import discovery

    monkeypatch.setattr(discovery, "CRD_SETTLE_SECONDS", (0.01, 0.02))
    kube = FakeKube(api_groups())
    calls = []

    async def counting(method: str, path: str, *_: Any) -> Any:
        calls.append(path)
        return kube.groups

    kube.request = counting  # type: ignore[method-assign]
    watcher = CapabilityWatcher(kube, 30)  # type: ignore[arg-type]

    async def scenario() -> None:
        for _ in range(10):
            watcher.soon()
        await asyncio.sleep(0.1)

    asyncio.run(scenario())
    assert len(calls) == 2
