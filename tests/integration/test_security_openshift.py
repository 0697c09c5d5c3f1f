"""Security modes and exposure on an OpenShift-like cluster (Route, Group and cluster config APIs
served by stand-in CRDs; the tests play the router that admits Routes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from model_registry_devcluster.simnode import SimulatedNode
from model_registry_operator.kinds import PRUNABLE, UNOWNED
from model_registry_operator.kube import Kind, lookup

from . import offline, thirdparty
from .conftest import OperatorProcess
from .kube import MR, Cluster, wait_for

pytestmark = pytest.mark.integration

DOMAIN = "apps.example.test"
INGRESS_CONFIG = lookup("config.openshift.io/v1", "Ingress")
SERVICE = lookup("v1", "Service")
DEPLOYMENT = lookup("apps/v1", "Deployment")
CONFIG_MAP = lookup("v1", "ConfigMap")
SECRET = lookup("v1", "Secret")
NETWORK_POLICY = lookup("networking.k8s.io/v1", "NetworkPolicy")
ROLE_BINDING = lookup("rbac.authorization.k8s.io/v1", "RoleBinding")
CLUSTER_ROLE_BINDING = lookup("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
GROUP = lookup("user.openshift.io/v1", "Group")
ROUTE = thirdparty.ROUTE


@pytest.fixture(scope="module")
def openshift(cluster: Cluster, operator: OperatorProcess) -> Iterator[None]:
    thirdparty.install(cluster, *thirdparty.OPENSHIFT)
    ingress = {
        "apiVersion": "config.openshift.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "cluster"},
        "spec": {"domain": "ignored.example.test", "appsDomain": DOMAIN},
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(ingress))
    yield
    thirdparty.uninstall(cluster, *thirdparty.OPENSHIFT)


def registry_name(namespace: str) -> str:
    """Group and ClusterRoleBinding names are cluster-wide: one registry name per test."""
    return f"reg-{namespace[2:8]}"


def apply_registry(cluster: Cluster, namespace: str, name: str, **extra: Any) -> None:
    spec = {"rest": {}, "postgres": {"generateDeployment": True}, **extra}
    body = {"apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry"}
    body["metadata"] = {"name": name}
    body["spec"] = spec
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-n", namespace, "-f", "-", input=yaml.safe_dump(body)
    )


def containers(cluster: Cluster, namespace: str, name: str) -> list[str]:
    deployment = cluster.get(DEPLOYMENT, namespace, name)
    assert deployment is not None
    return [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]]


def test_kube_rbac_proxy_with_routes_group_and_cluster_domain(
    cluster: Cluster, namespace: str, openshift: None, sim_node: SimulatedNode
) -> None:
    name = registry_name(namespace)
    apply_registry(cluster, namespace, name, rest={"serviceRoute": "enabled"}, kubeRBACProxy={})

    route = wait_for(
        lambda: (r := cluster.get(ROUTE, namespace, f"{name}-https")) and r["spec"].get("host") and r,
        what="the https Route with the cluster's apps domain",
    )
    assert route["spec"]["host"] == f"{name}-rest.{DOMAIN}"
    assert route["spec"]["tls"]["termination"] == "reencrypt"
    assert route["spec"]["port"]["targetPort"] == "https-api"
    assert cluster.get(ROUTE, namespace, f"{name}-http") is not None

    service = cluster.get(SERVICE, namespace, name)
    assert service is not None
    assert [p["name"] for p in service["spec"]["ports"]] == ["https-api"]
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.openshift.io/serving-cert-secret-name"] == f"{name}-kube-rbac-proxy"
    assert annotations["routing.opendatahub.io/external-address-rest"] == f"{name}-rest.{DOMAIN}:443"
    assert containers(cluster, namespace, name) == ["rest-container", "kube-rbac-proxy"]
    assert cluster.get(CONFIG_MAP, namespace, f"{name}-kube-rbac-proxy-config") is not None
    assert cluster.get(NETWORK_POLICY, namespace, f"{name}-https-route") is not None

    binding = cluster.get(CLUSTER_ROLE_BINDING, None, f"{name}-auth-delegator")
    assert binding is not None
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    assert binding["metadata"]["labels"]["modelregistry.opendatahub.io/namespace"] == namespace
    group = cluster.get(GROUP, None, f"{name}-users")
    assert group is not None
    assert group["metadata"]["labels"]["modelregistry.opendatahub.io/registry"] == name
    users = cluster.get(ROLE_BINDING, namespace, f"{name}-users")
    assert users is not None
    assert users["roleRef"]["name"] == f"registry-user-{name}"
    assert users["subjects"][0]["name"] == f"{name}-users"

    # Until the router admits the Route the proxy is not reachable from outside.
    thirdparty.wait_message(cluster, namespace, name, "KubeRBACProxyAvailable", "False", f"{name}-https")
    assert cluster.condition(namespace, name, "Available")["status"] == "False"  # type: ignore[index]

    thirdparty.admit_route(cluster, namespace, f"{name}-https")
    cluster.wait_condition(namespace, name, "KubeRBACProxyAvailable", "True", "ResourcesAvailable")
    cluster.wait_condition(namespace, name, "Available", "True", "DeploymentAvailable")
    mr = cluster.get(MR, namespace, name)
    assert mr is not None
    assert mr["status"]["hosts"][0] == f"{name}-rest.{DOMAIN}"
    wait = cluster.kubectl("wait", "-n", namespace, "--for=condition=Available", f"mr/{name}", "--timeout=10s")
    assert "condition met" in wait.stdout


def _ours(cluster: Cluster, namespace: str, name: str) -> list[str]:
    """Every object of every kind the operator may create that still carries the registry's label."""
    selector = f"modelregistry.opendatahub.io/registry={name}"
    found = []
    kinds: list[Kind] = [*PRUNABLE]
    for kind in kinds:
        if kind.api_version.startswith(("networking.istio", "security.istio", "authorino", "gateway.")):
            continue  # not served in this module
        found += [f"{kind.kind}/{o['metadata']['name']}" for o in cluster.list(kind, namespace, selector)]
    for kind in UNOWNED:
        if kind.api_version.startswith("gateway."):
            continue
        found += [f"{kind.kind}/{o['metadata']['name']}" for o in cluster.list(kind, None, selector)]
    return found


def test_switching_modes_then_deleting_leaves_nothing_behind(
    cluster: Cluster, namespace: str, openshift: None, sim_node: SimulatedNode
) -> None:
    name = registry_name(namespace)
    apply_registry(cluster, namespace, name)
    cluster.wait_condition(namespace, name, "Available", "True")
    assert cluster.get(GROUP, None, f"{name}-users") is not None
    assert cluster.get(CLUSTER_ROLE_BINDING, None, f"{name}-auth-delegator") is None
    # A binding a user made to grant access: never ours to remove.
    user_binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "alice-uses-registry"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"registry-user-{name}"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
    }
    cluster.apply_yaml(yaml.safe_dump(user_binding), namespace)

    apply_registry(cluster, namespace, name, kubeRBACProxy={"serviceRoute": "disabled"})
    wait_for(lambda: containers(cluster, namespace, name) == ["rest-container", "kube-rbac-proxy"], what="sidecar")
    cluster.wait_condition(namespace, name, "KubeRBACProxyAvailable", "True")
    cluster.wait_condition(namespace, name, "Available", "True")
    assert cluster.get(CLUSTER_ROLE_BINDING, None, f"{name}-auth-delegator") is not None
    assert cluster.get(ROUTE, namespace, f"{name}-https") is None  # serviceRoute disabled

    apply_registry(cluster, namespace, name, oauthProxy={})
    wait_for(lambda: containers(cluster, namespace, name) == ["rest-container", "oauth-proxy"], what="oauth sidecar")
    wait_for(lambda: cluster.get(CONFIG_MAP, namespace, f"{name}-kube-rbac-proxy-config") is None, what="prune")
    assert cluster.get(SECRET, namespace, f"{name}-oauth-cookie-secret") is not None
    thirdparty.admit_route(cluster, namespace, f"{name}-https")
    cluster.wait_condition(namespace, name, "OAuthProxyAvailable", "True")
    cluster.wait_condition(namespace, name, "Available", "True")
    assert cluster.condition(namespace, name, "KubeRBACProxyAvailable") is None  # the old mode's condition goes

    apply_registry(cluster, namespace, name)
    wait_for(lambda: containers(cluster, namespace, name) == ["rest-container"], what="no sidecar")
    wait_for(lambda: cluster.get(CLUSTER_ROLE_BINDING, None, f"{name}-auth-delegator") is None, what="CRB pruned")
    wait_for(lambda: cluster.get(ROUTE, namespace, f"{name}-https") is None, what="https Route pruned")
    assert cluster.get(SECRET, namespace, f"{name}-oauth-cookie-secret") is None
    assert cluster.get(NETWORK_POLICY, namespace, f"{name}-https-route") is None
    wait_for(lambda: cluster.condition(namespace, name, "OAuthProxyAvailable") is None, what="condition removed")
    service = cluster.get(SERVICE, namespace, name)
    assert service is not None
    assert [p["name"] for p in service["spec"]["ports"]] == ["http-api"]

    apply_registry(cluster, namespace, name, kubeRBACProxy={})
    wait_for(lambda: cluster.get(CLUSTER_ROLE_BINDING, None, f"{name}-auth-delegator"), what="CRB again")
    cluster.kubectl("delete", "-n", namespace, f"mr/{name}", "--wait=true", "--timeout=60s")
    assert cluster.get(GROUP, None, f"{name}-users") is None
    assert cluster.get(CLUSTER_ROLE_BINDING, None, f"{name}-auth-delegator") is None
    wait_for(lambda: _ours(cluster, namespace, name) == [], timeout=60, what="every object to be collected")
    assert cluster.get(ROLE_BINDING, namespace, "alice-uses-registry") is not None


def test_offline_render_for_openshift_names_what_the_operator_applies(
    cluster: Cluster, namespace: str, openshift: None, sim_node: SimulatedNode
) -> None:
    """`render --platform openshift --domain` (the cluster's ingress domain): the same objects as
    the operator applied, the Routes with the same spec (hosts under the cluster's domain)."""
    name = registry_name(namespace)
    body = {
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"rest": {"serviceRoute": "enabled"}, "postgres": {"generateDeployment": True}, "kubeRBACProxy": {}},
    }
    text = yaml.safe_dump(body)
    rendered = offline.render(text, "--platform", "openshift", "--domain", DOMAIN)
    assert {(kind, n) for kind, _, n in rendered} >= {
        ("Route", f"{name}-http"),
        ("Route", f"{name}-https"),
        ("NetworkPolicy", f"{name}-https-route"),
        ("Group", f"{name}-users"),
        ("RoleBinding", f"{name}-users"),
    }
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=text)
    offline.assert_applied(cluster, namespace, name, rendered, same_spec=("Route", "NetworkPolicy"))
    cluster.kubectl("delete", "-n", namespace, f"mr/{name}", "--wait=true", "--timeout=60s")
