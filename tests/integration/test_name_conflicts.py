"""Registries of the same name in two namespaces render the same cluster-scoped names
(``<name>-auth-delegator``, ``<name>-users``): the first to create one owns it; the other gets
``NameConflict`` and never applies over, prunes or deletes it; it takes the name once it is free."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from model_registry_devcluster.simnode import SimulatedNode
from model_registry_operator.kube import ApiError, Kube, load_api_client, lookup
from model_registry_operator.reconcile.claims import Claims, NameConflict

from . import thirdparty
from .conftest import OperatorProcess
from .kube import MR, Cluster, wait_for

pytestmark = pytest.mark.integration

CLUSTER_ROLE_BINDING = lookup("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
GROUP = lookup("user.openshift.io/v1", "Group")
DEPLOYMENT = lookup("apps/v1", "Deployment")
REGISTRY_LABEL = "modelregistry.opendatahub.io/registry"
NAMESPACE_LABEL = "modelregistry.opendatahub.io/namespace"


@pytest.fixture
def other_namespace(cluster: Cluster, operator: OperatorProcess) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(name)
    yield name
    cluster.kubectl("delete", "modelregistries", "--all", "-n", name, "--wait=true", "--timeout=60s", check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def shared_name(namespace: str) -> str:
    """The same registry name in both namespaces; unique per test (the objects are cluster-wide)."""
    return f"shared-{namespace[2:8]}"


def registry_yaml(name: str, mode: dict[str, Any]) -> str:
    body = {
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": name},
        "spec": {"rest": {}, "postgres": {"generateDeployment": True}, **mode},
    }
    return yaml.safe_dump(body)


def apply_registry(cluster: Cluster, namespace: str, name: str) -> None:
    cluster.apply_yaml(registry_yaml(name, {"kubeRBACProxy": {}}), namespace)


def delete_registry(cluster: Cluster, namespace: str, name: str) -> None:
    cluster.kubectl("delete", "-n", namespace, f"mr/{name}", "--wait=true", "--timeout=60s")


def owner(obj: dict[str, Any] | None) -> tuple[str | None, str | None]:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(NAMESPACE_LABEL), labels.get(REGISTRY_LABEL)


def test_issue_example_same_name_in_two_namespaces_never_shares_the_auth_delegator_binding(
    cluster: Cluster, namespace: str, other_namespace: str, sim_node: SimulatedNode
) -> None:
    """`shared` with kubeRBACProxy in two namespaces: one ClusterRoleBinding `shared-auth-delegator`,
    last writer won and either deletion deleted it. Now the second registry gets NameConflict, the
    first's binding is untouched, deleting the second leaves it, deleting the first frees it."""
    first, second = namespace, other_namespace
    name = shared_name(first)
    binding_name = f"{name}-auth-delegator"
    apply_registry(cluster, first, name)
    wait_for(lambda: cluster.get(CLUSTER_ROLE_BINDING, None, binding_name), what="the first's binding")
    cluster.wait_condition(first, name, "Available", "True", timeout=90)
    # Read once the claim has settled: its create and first apply are two writes.
    binding = cluster.get(CLUSTER_ROLE_BINDING, None, binding_name)
    assert binding is not None
    assert owner(binding) == (first, name)

    apply_registry(cluster, second, name)
    available = cluster.wait_condition(second, name, "Available", "False", "NameConflict")
    assert f"ClusterRoleBinding {binding_name} already exists" in available["message"]
    assert f"belongs to ModelRegistry {first}/{name}" in available["message"]
    degraded = cluster.condition(second, name, "Degraded")
    assert degraded is not None
    assert (degraded["status"], degraded["reason"]) == ("True", "NameConflict")
    assert degraded["message"] == available["message"]
    # The rest of the second registry is applied; only the contested name is not.
    wait_for(lambda: cluster.get(DEPLOYMENT, second, name), what="the second's Deployment")

    def untouched() -> None:
        now = cluster.get(CLUSTER_ROLE_BINDING, None, binding_name)
        assert now is not None
        assert now["metadata"]["uid"] == binding["metadata"]["uid"]
        assert now["metadata"]["resourceVersion"] == binding["metadata"]["resourceVersion"]
        assert owner(now) == (first, name)
        assert now["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": first}]

    untouched()
    # A resync (10 s in these tests) of both registries later: still the first's, still in conflict.
    mr = cluster.get(MR, second, name)
    assert mr is not None
    generation = mr["metadata"]["generation"]
    time.sleep(12)
    untouched()
    assert cluster.condition(second, name, "Available")["reason"] == "NameConflict"  # type: ignore[index]
    assert cluster.condition(first, name, "Available")["status"] == "True"  # type: ignore[index]
    assert cluster.get(MR, second, name)["metadata"]["generation"] == generation  # type: ignore[index]

    delete_registry(cluster, second, name)
    untouched()
    cluster.wait_condition(first, name, "Available", "True")

    apply_registry(cluster, second, name)
    cluster.wait_condition(second, name, "Available", "False", "NameConflict")
    untouched()
    delete_registry(cluster, first, name)

    def taken_by_second() -> dict[str, Any] | None:
        now = cluster.get(CLUSTER_ROLE_BINDING, None, binding_name)
        return now if owner(now) == (second, name) else None

    taken = wait_for(taken_by_second, timeout=30, what="the second registry to take the binding")
    assert taken["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": second}]
    cluster.wait_condition(second, name, "Degraded", "False", "AsExpected", timeout=30)
    cluster.wait_condition(second, name, "Available", "True", timeout=90)

    delete_registry(cluster, second, name)
    assert cluster.get(CLUSTER_ROLE_BINDING, None, binding_name) is None


@pytest.fixture(scope="module")
def openshift_apis(cluster: Cluster, operator: OperatorProcess) -> Iterator[None]:
    thirdparty.install(cluster, *thirdparty.OPENSHIFT)
    yield
    thirdparty.uninstall(cluster, *thirdparty.OPENSHIFT)


def test_issue_example_same_name_in_two_namespaces_never_shares_the_openshift_group(
    cluster: Cluster, namespace: str, other_namespace: str, openshift_apis: None, sim_node: SimulatedNode
) -> None:
    """On OpenShift the Group `<name>-users` (whose members an administrator manages) is claimed the
    same way: the second registry names it in its NameConflict and never touches its members."""
    first, second = namespace, other_namespace
    name = shared_name(first)
    apply_registry(cluster, first, name)
    group = wait_for(lambda: cluster.get(GROUP, None, f"{name}-users"), what="the first's Group")
    assert owner(group) == (first, name)
    members = {"users": ["alice", "bob"]}
    cluster.kube.request_sync(
        "PATCH", GROUP.path(None, f"{name}-users"), body=members, content_type="application/merge-patch+json"
    )

    apply_registry(cluster, second, name)
    available = cluster.wait_condition(second, name, "Available", "False", "NameConflict")
    assert f"Group {name}-users already exists and belongs to ModelRegistry {first}/{name}" in available["message"]
    assert f"ClusterRoleBinding {name}-auth-delegator" in available["message"]
    now = cluster.get(GROUP, None, f"{name}-users")
    assert now is not None
    assert owner(now) == (first, name)
    assert now["users"] == ["alice", "bob"]

    delete_registry(cluster, second, name)
    assert owner(cluster.get(GROUP, None, f"{name}-users")) == (first, name)
    delete_registry(cluster, first, name)
    assert cluster.get(GROUP, None, f"{name}-users") is None


def test_gateway_routes_of_registries_whose_namespace_and_name_join_alike_do_not_collide(
    cluster: Cluster, namespace: str, openshift_apis: None, sim_node: SimulatedNode
) -> None:
    """Gateway Routes live in the ingress gateway's namespace as `<namespace>-<name>-rest`: registry
    `x-gw` in namespace `t-abc` and registry `gw` in namespace `t-abc-x` both want `t-abc-x-gw-rest`."""
    thirdparty.install(cluster, *thirdparty.ISTIO)
    first_ns, second_ns = namespace, f"{namespace}-x"
    cluster.create_namespace(second_ns)
    with thirdparty.ingress_gateway(cluster, namespace) as (ingress_ns, selector):
        route_name = f"{second_ns}-gw-rest"
        istio = {
            "authProvider": "odh-auth",
            "gateway": {"domain": "apps.example.test", "istioIngress": selector, "rest": {}},
        }
        try:
            cluster.apply_yaml(registry_yaml("x-gw", {"istio": istio}), first_ns)
            route = wait_for(lambda: cluster.get(thirdparty.ROUTE, ingress_ns, route_name), what="the first's Route")
            assert owner(route) == (first_ns, "x-gw")

            cluster.apply_yaml(registry_yaml("gw", {"istio": istio}), second_ns)
            available = cluster.wait_condition(second_ns, "gw", "Available", "False", "NameConflict")
            assert f"Route {ingress_ns}/{route_name} already exists" in available["message"]
            assert f"ModelRegistry {first_ns}/x-gw" in available["message"]
            now = cluster.get(thirdparty.ROUTE, ingress_ns, route_name)
            assert now is not None
            assert now["metadata"]["uid"] == route["metadata"]["uid"]
            assert owner(now) == (first_ns, "x-gw")
            assert now["metadata"]["labels"]["maistra.io/gateway-namespace"] == first_ns

            delete_registry(cluster, first_ns, "x-gw")
            wait_for(
                lambda: owner(cluster.get(thirdparty.ROUTE, ingress_ns, route_name)) == (second_ns, "gw"),
                timeout=30,
                what="the second registry to take the Route",
            )
            delete_registry(cluster, second_ns, "gw")
            assert cluster.get(thirdparty.ROUTE, ingress_ns, route_name) is None
        finally:
            cluster.kubectl(
                "delete", "modelregistries", "--all", "-n", second_ns, "--wait=true", "--timeout=60s", check=False
            )
            cluster.kubectl("delete", "namespace", second_ns, "--wait=false", check=False)
            thirdparty.uninstall(cluster, *thirdparty.ISTIO)


def test_a_hand_made_object_of_the_same_name_is_no_registry_s(
    cluster: Cluster, namespace: str, sim_node: SimulatedNode
) -> None:
    """A ClusterRoleBinding that an administrator made under the name a registry renders: reported,
    never labelled as the registry's (which would make its deletion delete the binding)."""
    name = shared_name(namespace)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{name}-auth-delegator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "admin", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(binding))
    try:
        apply_registry(cluster, namespace, name)
        available = cluster.wait_condition(namespace, name, "Available", "False", "NameConflict")
        assert "belongs to an object no ModelRegistry created" in available["message"]
        delete_registry(cluster, namespace, name)
        kept = cluster.get(CLUSTER_ROLE_BINDING, None, f"{name}-auth-delegator")
        assert kept is not None
        assert kept["roleRef"]["name"] == "view"
        assert "labels" not in kept["metadata"]
    finally:
        cluster.kubectl("delete", "clusterrolebinding", f"{name}-auth-delegator", check=False)


# -- the claim itself, in-process against the real API server -------------------------------


def binding_for(name: str, namespace: str, registry: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": {REGISTRY_LABEL: registry, NAMESPACE_LABEL: namespace, **labels},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [{"kind": "ServiceAccount", "name": registry, "namespace": namespace}],
    }


@pytest.fixture
def kube(cluster: Cluster) -> Kube:
    return Kube(load_api_client(str(cluster.kubeconfig)))  # the operator's field manager


def cleanup(cluster: Cluster, *names: str) -> None:
    for name in names:
        cluster.kubectl("delete", "clusterrolebinding", name, "--ignore-not-found", check=False)


async def test_two_registries_claiming_at_once_one_wins_the_other_conflicts(cluster: Cluster, kube: Kube) -> None:
    """The race of two first claims: a create is done for one request only; no read-then-apply
    window in which both see the name free and both apply."""
    names = [f"race-{uuid.uuid4().hex[:8]}" for _ in range(10)]
    try:
        for name in names:
            claims = Claims(), Claims()  # two operators, even
            owners = [("tenant-a", "shared"), ("tenant-b", "shared")]
            results = await asyncio.gather(
                *(claims[i].apply(kube, binding_for(name, owners[i][0], "shared"), owners[i]) for i in (0, 1, 0, 1)),
                return_exceptions=True,
            )
            live = cluster.get(CLUSTER_ROLE_BINDING, None, name)
            winner = owner(live)
            assert winner in owners
            for i, result in enumerate(results):
                if owners[i % 2] == winner:
                    assert not isinstance(result, BaseException), result
                else:
                    assert isinstance(result, NameConflict), result
                    assert result.owner == winner
            assert live is not None
            assert live["subjects"][0]["namespace"] == winner[0]
    finally:
        cleanup(cluster, *names)


async def test_an_object_re_created_by_another_registry_since_the_last_apply_is_not_taken_over(
    cluster: Cluster, kube: Kube
) -> None:
    """Every apply after the claim carries the resourceVersion last seen: an object deleted and
    re-created by someone else meanwhile fails it (409), and the claim finds the new owner."""
    name = f"recreated-{uuid.uuid4().hex[:8]}"
    mine, theirs = ("tenant-a", "shared"), ("tenant-b", "shared")
    claims = Claims()
    try:
        await claims.apply(kube, binding_for(name, *mine), mine)
        await claims.apply(kube, binding_for(name, *mine), mine)  # an ordinary re-apply
        cluster.kubectl("delete", "clusterrolebinding", name)
        await Claims().apply(kube, binding_for(name, *theirs), theirs)
        with pytest.raises(NameConflict) as conflict:
            await claims.apply(kube, binding_for(name, *mine), mine)
        assert conflict.value.owner == theirs
        assert owner(cluster.get(CLUSTER_ROLE_BINDING, None, name)) == theirs
    finally:
        cleanup(cluster, name)


async def test_a_claimed_object_drops_fields_no_longer_applied(cluster: Cluster, kube: Kube) -> None:
    """The first claim is a create; its fields are handed to the operator's server-side-apply entry,
    so a label (or any field) the operator stops rendering is removed as with any applied object."""
    name = f"fields-{uuid.uuid4().hex[:8]}"
    me = ("tenant-a", "shared")
    try:
        await Claims().apply(kube, binding_for(name, *me, extra="1"), me)
        managers = {
            (m["manager"], m["operation"])
            for m in cluster.get(CLUSTER_ROLE_BINDING, None, name)["metadata"]["managedFields"]  # type: ignore[index]
        }
        assert managers == {(kube.field_manager, "Apply")}
        await Claims().apply(kube, binding_for(name, *me), me)  # a new operator process: claims anew
        labels = cluster.get(CLUSTER_ROLE_BINDING, None, name)["metadata"]["labels"]  # type: ignore[index]
        assert "extra" not in labels
        assert owner({"metadata": {"labels": labels}}) == me
    finally:
        cleanup(cluster, name)


async def test_a_claim_of_a_kind_the_server_refuses_is_an_api_error(cluster: Cluster, kube: Kube) -> None:
    bad = binding_for(f"bad-{uuid.uuid4().hex[:8]}", "tenant-a", "shared")
    bad["roleRef"]["kind"] = "Nonsense"
    with pytest.raises(ApiError) as error:
        await Claims().apply(kube, bad, ("tenant-a", "shared"))
    assert error.value.status == 422
