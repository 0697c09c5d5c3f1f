"""Small synchronous helpers the integration tests use to talk to the cluster."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from model_registry_devcluster.controlplane import kubectl_binary
from model_registry_operator.kube import ApiError, Kind, Kube, load_api_client, lookup

T = TypeVar("T")
Obj = dict[str, Any]

MR = lookup("modelregistry.opendatahub.io/v1beta1", "ModelRegistry")
KUBECTL = kubectl_binary()
"""The kubectl of the control plane's release (``make k8s`` builds both), not whatever is on PATH."""


def wait_for(check: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.2, what: str = "") -> T:
    """Poll until check() returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ApiError as exc:
            last = exc
        if last:
            return last  # type: ignore[no-any-return]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last: {last!r}")


class Cluster:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.kube = Kube(load_api_client(str(kubeconfig)), field_manager="integration-tests")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def wait_established(self, crd: str, timeout: float = 60.0) -> None:
        """Wait until a CRD is Established. `kubectl wait` fails at once ("accessor error") when it
        reads the CRD before the API server has written any condition, so it is retried."""
        wait_for(
            lambda: (
                self.kubectl("wait", "--for=condition=Established", crd, "--timeout=10s", check=False).returncode == 0
            ),
            timeout=timeout,
            what=f"{crd} Established",
        )

    def apply_yaml(self, text: str, namespace: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-n", namespace, "-f", "-", input=text, check=check)

    def replace(self, text: str, namespace: str, timeout: float = 30.0) -> None:
        """`kubectl replace` the way a user does: again when the operator wrote the object in between.

        kubectl reads the live resourceVersion and PUTs with it; a status write by the operator
        between the two makes the API server answer Conflict, which asks for exactly this retry.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = self.kubectl("replace", "-n", namespace, "-f", "-", input=text, check=False)
            if result.returncode == 0:
                return
            if "Conflict" not in result.stderr or time.monotonic() > deadline:
                raise AssertionError(f"kubectl replace -n {namespace} failed: {result.stderr}")
            time.sleep(0.2)

    def create_namespace(self, name: str) -> None:
        self.kube.request_sync("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})

    def get(self, kind: Kind, namespace: str | None, name: str) -> Obj | None:
        try:
            result: Obj = self.kube.request_sync("GET", kind.path(namespace, name))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        return result

    def list(self, kind: Kind, namespace: str | None, selector: str | None = None) -> list[Obj]:
        query = [("labelSelector", selector)] if selector else []
        items: list[Obj] = self.kube.request_sync("GET", kind.path(namespace), query)["items"]
        return items

    def patch(self, kind: Kind, namespace: str, name: str, patch: Obj, sub: str | None = None) -> Obj:
        result: Obj = self.kube.request_sync(
            "PATCH", kind.path(namespace, name, sub), body=patch, content_type="application/merge-patch+json"
        )
        return result

    def delete(self, kind: Kind, namespace: str, name: str) -> None:
        self.kube.request_sync("DELETE", kind.path(namespace, name))

    def rejected_by_dry_run(self, objects: list[Obj]) -> list[str]:
        """Server-side dry-run apply with strict field validation; the objects the API server refused."""

        async def check() -> list[str]:
            results = await asyncio.gather(
                *(self.kube.apply(obj, dry_run=True, strict=True) for obj in objects), return_exceptions=True
            )
            return [
                f"{o['kind']}/{o['metadata']['name']}: {r}"
                for o, r in zip(objects, results, strict=True)
                if isinstance(r, BaseException)
            ]

        return asyncio.run(check())

    def condition(self, namespace: str, name: str, type_: str) -> Obj | None:
        mr = self.get(MR, namespace, name)
        for cond in ((mr or {}).get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return None

    def wait_condition(
        self, namespace: str, name: str, type_: str, status: str, reason: str | None = None, timeout: float = 60.0
    ) -> Obj:
        def check() -> Obj | None:
            cond = self.condition(namespace, name, type_)
            if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
                return cond
            return None

        try:
            return wait_for(check, timeout, what=f"{type_}={status} ({reason}) on {namespace}/{name}")
        except AssertionError as exc:
            mr = self.get(MR, namespace, name)
            raise AssertionError(f"{exc}\nstatus: {json.dumps((mr or {}).get('status'), indent=1)}") from None
