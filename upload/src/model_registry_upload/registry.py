"""Small REST client for the Model Registry API ``/api/model_registry/v1alpha3``.

Only the calls the upload program needs. Idempotent calls (GET, PATCH) are retried on
connection errors and 502/503/504; POSTs are not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from .config import RegistryConfig
from .errors import RegistryError
from .httputil import error_text, session_with_retries

log = logging.getLogger(__name__)

API_PATH = "/api/model_registry/v1alpha3"
Json = dict[str, Any]
T = TypeVar("T")
_LIKE_WILDCARDS = frozenset("_%")


class RegistryClient:
    def __init__(self, cfg: RegistryConfig, timeout: float = 60.0) -> None:
        self.base = cfg.url.rstrip("/") + API_PATH
        self.parent_lookups = True
        """False once the server failed a lookup scoped to a parent (HTTP 500): the model
        registry v0.3.0 does on PostgreSQL, its SQL names mixed-case tables unquoted. The
        global lists, which do work there, are searched instead."""
        self.timeout = timeout
        self.verify: bool | str = str(cfg.custom_ca) if cfg.custom_ca else True
        self.session = session_with_retries(methods=frozenset({"GET", "PATCH", "HEAD"}))
        self.session.headers["Accept"] = "application/json"
        if cfg.token is not None:
            self.session.headers["Authorization"] = "Bearer " + cfg.token.get_secret_value()

    # -- transport ---------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Json | None = None,
        allow_404: bool = False,
    ) -> Json | None:
        url = self.base + path
        try:
            resp = self.session.request(method, url, params=params, json=body, timeout=self.timeout, verify=self.verify)
        except requests.exceptions.SSLError as exc:
            raise RegistryError(f"model registry {self.base}: TLS error: {exc.__class__.__name__}") from None
        except requests.exceptions.RequestException as exc:
            raise RegistryError(
                f"model registry unreachable at {self.base}: {exc.__class__.__name__}: {_short(exc)}"
            ) from None
        log.debug("%s %s -> %s", method, path, resp.status_code)
        if resp.status_code == 404 and allow_404:
            return None
        if resp.status_code >= 400:
            detail = error_text(resp)
            if resp.status_code in (401, 403):
                raise RegistryError(
                    f"model registry refused {method} {path}: HTTP {resp.status_code} (check the user token "
                    f"and its permissions): {detail}",
                    resp.status_code,
                )
            raise RegistryError(
                f"model registry {method} {path} failed: HTTP {resp.status_code}: {detail}", resp.status_code
            )
        if not resp.content:
            return {}
        data = resp.json()
        if not isinstance(data, dict):
            raise RegistryError(f"model registry {method} {path}: unexpected response")
        return data

    def get(self, path: str, params: dict[str, str] | None = None) -> Json:
        out = self._call("GET", path, params=params)
        assert out is not None
        return out

    def find(self, path: str, params: dict[str, str]) -> Json | None:
        """GET that maps 404 to ``None`` (the ``/registered_model?name=`` style lookups)."""
        return self._call("GET", path, params=params, allow_404=True)

    def post(self, path: str, body: Json) -> Json:
        out = self._call("POST", path, body=body)
        assert out is not None
        return out

    def patch(self, path: str, body: Json) -> Json:
        out = self._call("PATCH", path, body=body)
        assert out is not None
        return out

    # -- API -----------------------------------------------------------------------------

    def probe(self) -> None:
        """Connectivity and authorization check (``GET /registered_models?pageSize=1``)."""
        self.get("/registered_models", {"pageSize": "1"})

    def _list(self, path: str) -> list[Json]:
        """Every item of a paged list endpoint."""
        items: list[Json] = []
        token = ""
        while True:
            params = {"pageSize": "100"}
            if token:
                params["nextPageToken"] = token
            page = self.get(path, params)
            items.extend(page.get("items") or [])
            token = page.get("nextPageToken") or ""
            if not token or not page.get("items"):
                return items

    def _find_exact(self, path: str, params: dict[str, str], name: str, candidates: str) -> Json | None:
        """The entity named exactly ``name``, looked up by name at ``path``.

        The server matches the name with SQL ``LIKE`` (``_`` and ``%`` are wildcards; MySQL and
        MariaDB also ignore case), so its answer may be another entity, or a 404 when a wildcard
        matched several. Then the list at ``candidates`` is searched for the exact name.
        """
        found = self.find(path, params)
        if found is not None and found.get("name") == name:
            return found
        if found is None and not _LIKE_WILDCARDS.intersection(name):
            return None
        log.debug(
            "%s?name=%s matched %s: searching %s for the exact name",
            path,
            name,
            found.get("name") if found is not None else "several",
            candidates,
        )
        return next((item for item in self._list(candidates) if item.get("name") == name), None)

    def find_registered_model(self, name: str) -> Json | None:
        return self._find_exact("/registered_model", {"name": name}, name, "/registered_models")

    def get_registered_model(self, model_id: str) -> Json | None:
        return self._call("GET", f"/registered_models/{model_id}", allow_404=True)

    def create_registered_model(self, body: Json) -> Json:
        return self.post("/registered_models", body)

    def update_registered_model(self, model_id: str, body: Json) -> Json:
        return self.patch(f"/registered_models/{model_id}", body)

    def _scoped(self, what: str, lookup: Callable[[], T]) -> T | None:
        """``lookup()``, or ``None`` when the server cannot do lookups scoped to a parent."""
        if not self.parent_lookups:
            return None
        try:
            return lookup()
        except RegistryError as exc:
            if exc.status != 500:
                raise
            log.warning("the model registry cannot list %s (%s): searching its global lists instead", what, exc)
            self.parent_lookups = False
            return None

    def _versions_of(self, model_id: str) -> list[Json]:
        return [v for v in self._list("/model_versions") if str(v.get("registeredModelId")) == model_id]

    def list_versions(self, model_id: str) -> list[Json]:
        scoped = self._scoped(
            f"the versions of RegisteredModel {model_id}", lambda: self._list(f"/registered_models/{model_id}/versions")
        )
        return self._versions_of(model_id) if scoped is None else scoped

    def find_model_version(self, name: str, model_id: str) -> Json | None:
        found = self._scoped(
            f"the versions of RegisteredModel {model_id}",
            lambda: [
                self._find_exact(
                    "/model_version",
                    {"name": name, "parentResourceId": model_id},
                    name,
                    f"/registered_models/{model_id}/versions",
                )
            ],
        )
        if found is not None:
            return found[0]
        return next((v for v in self._versions_of(model_id) if v.get("name") == name), None)

    def get_model_version(self, version_id: str) -> Json | None:
        return self._call("GET", f"/model_versions/{version_id}", allow_404=True)

    def create_model_version(self, body: Json) -> Json:
        return self.post("/model_versions", body)

    def update_model_version(self, version_id: str, body: Json) -> Json:
        return self.patch(f"/model_versions/{version_id}", body)

    def version_artifacts(self, version_id: str) -> list[Json] | None:
        """The artifacts of a version; ``None`` when the server cannot list them (see
        :attr:`parent_lookups`: the global list does not say which version an artifact is of)."""
        page = self._scoped(
            f"the artifacts of ModelVersion {version_id}",
            lambda: self.get(f"/model_versions/{version_id}/artifacts", {"pageSize": "100"}),
        )
        return None if page is None else list(page.get("items") or [])

    def create_version_artifact(self, version_id: str, body: Json) -> Json:
        return self.post(f"/model_versions/{version_id}/artifacts", body)

    def get_model_artifact(self, artifact_id: str) -> Json | None:
        return self._call("GET", f"/model_artifacts/{artifact_id}", allow_404=True)

    def update_model_artifact(self, artifact_id: str, body: Json) -> Json:
        return self.patch(f"/model_artifacts/{artifact_id}", body)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
