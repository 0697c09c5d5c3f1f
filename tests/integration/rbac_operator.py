"""The operator process authenticated as a ServiceAccount bound only to the generated ClusterRole.

The ServiceAccount's token comes from the TokenRequest API (as the kubelet mounts one in a Pod),
written into a kubeconfig the operator is started with; the ClusterRole is
``config/rbac/role.yaml`` as committed, under a name of its own, and a test may take rules out of
it and put them back (the RBAC authorizer sees a changed role within a second)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from model_registry_devcluster.controlplane import ControlPlane, kubeconfig_text
from model_registry_operator import rbac

from .conftest import ROOT, OperatorProcess
from .kube import Cluster, wait_for

NAMESPACE = "rbac-operator-system"
SERVICE_ACCOUNT = "controller-manager"
ROLE_NAME = "rbac-test-manager-role"
CLUSTER_ROLES = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
CLUSTER_ROLE_BINDINGS = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
TOKEN_SECONDS = 4 * 3600
# What the log shows when the API server refused the operator something (a bare 403 would match
# milliseconds): kopf's request errors
# (APIForbiddenError, "... is forbidden: User ... cannot ...") and the reconcile's Forbidden.
FORBIDDEN_IN_LOG = re.compile(r"forbidden|status=403|may not \w+ ", re.IGNORECASE)

Rules = list[dict[str, Any]]


def committed_rules() -> Rules:
    role = yaml.safe_load((ROOT / rbac.RBAC_DIR / rbac.ROLE_FILE).read_text())
    rules: Rules = role["rules"]
    return rules


class LeastPrivilegeOperator:
    """The operator under its ServiceAccount; :meth:`without` takes a rule away for a while."""

    def __init__(self, cluster: Cluster, control_plane: ControlPlane, workdir: Path) -> None:
        self.cluster = cluster
        self.rules = committed_rules()
        kube = cluster.kube
        kube.request_sync("POST", "/api/v1/namespaces", body={"metadata": {"name": NAMESPACE}})
        kube.request_sync(
            "POST",
            f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
            body={"metadata": {"name": SERVICE_ACCOUNT}},
        )
        kube.request_sync("POST", CLUSTER_ROLES, body={"metadata": {"name": ROLE_NAME}, "rules": self.rules})
        kube.request_sync(
            "POST",
            CLUSTER_ROLE_BINDINGS,
            body={
                "metadata": {"name": ROLE_NAME},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE_NAME},
                "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
            },
        )
        token = kube.request_sync(
            "POST",
            f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": TOKEN_SECONDS},
            },
        )["status"]["token"]
        self.kubeconfig = workdir / "kubeconfig"
        self.kubeconfig.write_text(
            kubeconfig_text(control_plane.server_url, token, control_plane.ca_file, context="rbac-operator")
        )
        self.kubeconfig.chmod(0o600)
        self.user = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
        self.wait_allowed("list", "modelregistries", "modelregistry.opendatahub.io")
        self.process = OperatorProcess(self.kubeconfig, workdir)

    def close(self) -> None:
        self.process.stop()
        kube = self.cluster.kube
        for path in (f"{CLUSTER_ROLE_BINDINGS}/{ROLE_NAME}", f"{CLUSTER_ROLES}/{ROLE_NAME}"):
            kube.request_sync("DELETE", path)
        self.cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)

    # -- the log ----------------------------------------------------------------------
    def log_offset(self) -> int:
        return len(self.process.text())

    def log_since(self, offset: int) -> str:
        return self.process.text()[offset:]

    def forbidden_lines(self, offset: int = 0) -> list[str]:
        return [line for line in self.log_since(offset).splitlines() if FORBIDDEN_IN_LOG.search(line)]

    # -- the role -----------------------------------------------------------------------
    def set_rules(self, rules: Rules) -> None:
        self.cluster.kube.request_sync(
            "PATCH",
            f"{CLUSTER_ROLES}/{ROLE_NAME}",
            body={"rules": rules},
            content_type="application/merge-patch+json",
        )

    def allowed(self, verb: str, resource: str, group: str, namespace: str = "default") -> bool:
        """What the RBAC authorizer now answers for the operator (a SubjectAccessReview)."""
        review = self.cluster.kube.request_sync(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": self.user,
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}", "system:authenticated"],
                    "resourceAttributes": {
                        "verb": verb,
                        "group": group,
                        "resource": resource.split("/")[0],
                        "subresource": resource.partition("/")[2],
                        "namespace": namespace,
                    },
                },
            },
        )
        return bool(review["status"].get("allowed"))

    def wait_allowed(self, verb: str, resource: str, group: str, allowed: bool = True) -> None:
        wait_for(
            lambda: self.allowed(verb, resource, group) == allowed,
            timeout=10,
            what=f"{verb} {resource} {'allowed' if allowed else 'denied'}",
        )

    @contextmanager
    def without(self, rule: dict[str, Any]) -> Iterator[None]:
        """The role without ``rule`` (one of :attr:`rules`) inside the with-block, then as committed."""
        probe = (rule["verbs"][0], rule["resources"][0], rule["apiGroups"][0])
        self.set_rules([r for r in self.rules if r != rule])
        self.wait_allowed(*probe, allowed=False)
        try:
            yield
        finally:
            self.set_rules(self.rules)
            self.wait_allowed(*probe)
            time.sleep(0.5)  # every API server cache of the role has it again
