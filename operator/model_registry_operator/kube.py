"""A small async facade over the blocking `kubernetes` client.

Every call runs in a worker thread (``asyncio.to_thread``) so the event loop never blocks.
Objects are plain dicts; paths come from the table of the kinds the operator manages
(:mod:`.kinds`), so no discovery round trips are needed on the hot path.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from . import yamljson
from .kinds import Kind, kind_of
from .kinds import lookup as lookup  # re-exported: the tests name kinds through this facade
from .names import FIELD_MANAGER

Obj = dict[str, Any]


class ApiError(Exception):
    """A non-2xx answer of the API server."""

    def __init__(self, status: int, reason: str, message: str, body: Obj | None = None, path: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}
        self.path = path  # the request's, without its query

    @property
    def api_group(self) -> str:
        """The API group the request went to ("" for the core API)."""
        parts = self.path.split("/")
        return parts[2] if len(parts) > 2 and parts[1] == "apis" else ""

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


def load_api_client(kubeconfig: str | None = None, pool_size: int = 16) -> k8s_client.ApiClient:
    """In-cluster config when running in a pod, else the kubeconfig (KUBECONFIG / ~/.kube/config)."""
    configuration = k8s_client.Configuration()
    try:
        if kubeconfig:
            raise k8s_config.ConfigException("explicit kubeconfig")
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    configuration.connection_pool_maxsize = pool_size
    return k8s_client.ApiClient(configuration)


class Kube:
    """Async CRUD and server-side apply on plain-dict objects."""

    def __init__(self, api_client: k8s_client.ApiClient, field_manager: str = FIELD_MANAGER) -> None:
        self.api_client = api_client
        self.field_manager = field_manager

    # -- transport -------------------------------------------------------------------
    def request_sync(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if body is not None and content_type.endswith("yaml"):
            # The client's JSON writes characters beyond the BMP as surrogate pairs, which the
            # API server's YAML parser refuses (see yamljson).
            body = yamljson.dumps(body).encode()
        serialized = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        _method, url, header_params, request_body, post_params = serialized
        response = self.api_client.call_api(
            _method,
            url,
            header_params=header_params,
            body=request_body,
            post_params=post_params,
            _request_timeout=timeout,
        )
        raw = response.read()  # type: ignore[no-untyped-call]
        data: Any = None
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                data = {"message": raw.decode("utf-8", "replace")}
        if not 200 <= response.status < 300:
            status_body = data if isinstance(data, dict) else {}
            raise ApiError(
                response.status,
                str(status_body.get("reason") or response.reason),
                str(status_body.get("message") or ""),
                status_body,
                path,
            )
        return data

    async def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        return await asyncio.to_thread(self.request_sync, method, path, query, body, content_type)

    # -- verbs -----------------------------------------------------------------------
    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj | None:
        try:
            result: Obj = await self.request("GET", kind.path(namespace, name))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        return result

    async def list(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None) -> list[Obj]:
        query = [("labelSelector", label_selector)] if label_selector else []
        result = await self.request("GET", kind.path(namespace), query)
        items: list[Obj] = result.get("items", [])
        api_version, kind_name = kind.api_version, kind.kind
        for item in items:  # list items carry no apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind_name)
        return items

    async def apply(self, obj: Obj, *, dry_run: bool = False, strict: bool = False) -> Obj:
        """Server-side apply under our field manager, taking ownership of conflicting fields."""
        kind = kind_of(obj)
        meta = obj["metadata"]
        query = [("fieldManager", self.field_manager), ("force", "true")]
        if dry_run:
            query.append(("dryRun", "All"))
        if strict:
            query.append(("fieldValidation", "Strict"))
        result: Obj = await self.request(
            "PATCH", kind.path(meta.get("namespace"), meta["name"]), query, obj, "application/apply-patch+yaml"
        )
        return result

    async def delete(self, kind: Kind, namespace: str | None, name: str, uid: str | None = None) -> bool:
        """Delete in the background; a precondition on uid avoids deleting a re-created object."""
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", kind.path(namespace, name), body=body)
        except ApiError as exc:
            if exc.not_found or exc.conflict:
                return False
            raise
        return True

    async def merge_patch(
        self, kind: Kind, namespace: str | None, name: str, patch: Obj, sub: str | None = None
    ) -> Obj:
        result: Obj = await self.request(
            "PATCH", kind.path(namespace, name, sub), body=patch, content_type="application/merge-patch+json"
        )
        return result

    async def create(self, obj: Obj) -> Obj:
        """Create only: 409 AlreadyExists when the name is taken (under our field manager)."""
        kind = kind_of(obj)
        query = [("fieldManager", self.field_manager)]
        result: Obj = await self.request("POST", kind.path(obj["metadata"].get("namespace")), query, body=obj)
        return result
