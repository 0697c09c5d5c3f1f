"""The Model Registry calls of the upload program, through the official ``model-registry`` client.

The calls go through the client's generated API (``mr_openapi.ModelRegistryServiceApi``, part
of the ``model-registry`` distribution, what its ``ModelRegistry`` class itself calls): its
models build and check each request body (the create and update schemas) and read each answer.
What stays here, each for a reason the client does not cover:

- the client's ``ModelRegistry`` class and its ``RegisteredModel`` / ``ModelVersion`` /
  ``ModelArtifact`` types are not used: the constructor calls ``nest_asyncio.apply()``
  (patching asyncio for the whole process) unless given a runner; ``register_model`` reuses a
  model of the same name, where an upload refuses a taken name and resumes only its own unfinished entities;
  the types send no ``customProperties`` at all when they are empty (the last marker could
  never be removed) and carry only str / int / float / bool values (a struct property of the
  metadata would be dropped);
- the coroutines run on one event loop in a background thread (:func:`_loop`), so that the
  OCI push's worker threads can record the layer journal while the transfer runs;
- an exact name lookup: the server matches names with SQL ``LIKE`` (:meth:`RegistryClient._find_exact`);
- the global-list fallback for the pinned server's broken parent-scoped lookups on PostgreSQL
  (:attr:`RegistryClient.parent_lookups`);
- a PATCH is retried on 502/503/504 and connection errors like a GET (the client's retries
  skip PATCH), and errors keep this program's messages (method, path, the server's message).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from .config import RegistryConfig, label
from .errors import RegistryError, certificate_failure, tls_verification_failed

if TYPE_CHECKING:
    from mr_openapi import ModelRegistryServiceApi  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

API_PATH = "/api/model_registry/v1alpha3"
Json = dict[str, Any]
T = TypeVar("T")
_LIKE_WILDCARDS = frozenset("_%")
_TRANSIENT = frozenset({502, 503, 504})
ATTEMPTS = 3
"""Tries of an idempotent call (GET, PATCH) on a transient failure."""

_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()


def _loop() -> asyncio.AbstractEventLoop:
    """The event loop of every registry call of this process, running in a daemon thread."""
    global _LOOP  # noqa: PLW0603 - one loop per process, started on first use
    with _LOOP_LOCK:
        if _LOOP is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="model-registry-client", daemon=True).start()
            _LOOP = loop
        return _LOOP


def _mr() -> Any:  # noqa: ANN401 - the client's package
    """The official client's package, imported on first use: it defines several hundred models
    (over a second of start-up), which a run stopped by a configuration error does not need."""
    import mr_openapi  # noqa: PLC0415
    import mr_openapi.exceptions  # type: ignore[import-untyped]  # noqa: PLC0415

    return mr_openapi


def _dict(model: Any) -> Json:  # noqa: ANN401 - a generated model
    """The JSON form (camelCase, custom properties typed) of a model the client returned."""
    if model is None:
        return {}
    data = json.loads(model.to_json())  # plain strings, where to_dict() keeps the enums
    return data if isinstance(data, dict) else {}


class RegistryClient:
    def __init__(self, cfg: RegistryConfig, timeout: float = 60.0) -> None:
        self.base = cfg.url.rstrip("/") + API_PATH
        self.parent_lookups = True
        """False once the server failed a lookup scoped to a parent (HTTP 500): the model
        registry v0.3.0 does on PostgreSQL, its SQL names mixed-case tables unquoted. The
        global lists, which do work there, are searched instead."""
        self.timeout = float(timeout)
        self.config = _mr().Configuration(
            host=cfg.url.rstrip("/"),
            access_token=cfg.token.get_secret_value() if cfg.token is not None else None,
            ssl_ca_cert=str(cfg.custom_ca) if cfg.custom_ca else None,
        )

    # -- transport ---------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        call: Callable[[ModelRegistryServiceApi], Awaitable[T]],
        *,
        allow_404: bool = False,
    ) -> T | None:
        """``call`` with a fresh API client (the client's own pattern: one session per call);
        failures become :class:`RegistryError` naming ``method`` and ``path``."""

        import aiohttp  # noqa: PLC0415 - with the client (see _mr)

        mr = _mr()

        async def run() -> T:
            async with mr.ApiClient(self.config) as api_client:
                return await call(mr.ModelRegistryServiceApi(api_client))

        attempts = ATTEMPTS if method in ("GET", "PATCH") else 1
        for attempt in range(1, attempts + 1):
            try:
                result = asyncio.run_coroutine_threadsafe(run(), _loop()).result()
            except mr.exceptions.ApiException as exc:
                status = exc.status or 0
                log.debug("%s %s -> %s", method, path, status)
                if status == 404 and allow_404:
                    return None
                if status in _TRANSIENT and attempt < attempts:
                    time.sleep(0.3 * 2 ** (attempt - 1))
                    continue
                raise self._refused(method, path, status, exc.body) from None
            except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
                reason = certificate_failure(exc)
                if reason is not None:  # a configuration error: not retried, and the Job is not either
                    ca = f"{label('registry_custom_ca')} or {label('registry_custom_ca_envvar')}"
                    raise tls_verification_failed(f"model registry {self.base}: TLS error", reason, ca) from None
                raise RegistryError(f"model registry {self.base}: TLS error: {exc.__class__.__name__}") from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt < attempts:
                    time.sleep(0.3 * 2 ** (attempt - 1))
                    continue
                raise RegistryError(
                    f"model registry unreachable at {self.base}: {exc.__class__.__name__}: {_short(exc)}"
                ) from None
            except ValidationError as exc:  # an answer (or a body) outside the API's schema
                raise RegistryError(f"model registry {method} {path}: unexpected response: {_short(exc)}") from None
            log.debug("%s %s -> ok", method, path)
            return result
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _refused(self, method: str, path: str, status: int, body: str | None) -> RegistryError:
        detail = _error_text(body)
        if status in (401, 403):
            return RegistryError(
                f"model registry refused {method} {path}: HTTP {status} (check the user token "
                f"and its permissions): {detail}",
                status,
            )
        return RegistryError(f"model registry {method} {path} failed: HTTP {status}: {detail}", status)

    def _json(
        self,
        method: str,
        path: str,
        call: Callable[[ModelRegistryServiceApi], Awaitable[Any]],
        *,
        allow_404: bool = False,
    ) -> Json | None:
        if allow_404:
            found = self._call(method, path, call, allow_404=True)
            return None if found is None else _dict(found)
        return _dict(self._call(method, path, call))

    # -- API -----------------------------------------------------------------------------

    def probe(self) -> None:
        """Connectivity and authorization check (``GET /registered_models?pageSize=1``)."""
        self._call("GET", "/registered_models", lambda api: api.get_registered_models(page_size="1", **self._t))

    @property
    def _t(self) -> dict[str, float]:
        return {"_request_timeout": self.timeout}

    def _list(self, path: str, page: Callable[[ModelRegistryServiceApi, str | None], Awaitable[Any]]) -> list[Json]:
        """Every item of a paged list endpoint."""
        items: list[Json] = []
        token: str | None = None
        while True:
            answer = self._call("GET", path, functools.partial(_page, page, token))
            batch = [_dict(item) for item in (getattr(answer, "items", None) or [])]
            items.extend(batch)
            token = getattr(answer, "next_page_token", None) or None
            if not token or not batch:
                return items

    def _registered_models(self) -> list[Json]:
        return self._list(
            "/registered_models",
            lambda api, tok: api.get_registered_models(page_size="100", next_page_token=tok, **self._t),
        )

    def _versions_under(self, model_id: str) -> list[Json]:
        return self._list(
            f"/registered_models/{model_id}/versions",
            lambda api, tok: api.get_registered_model_versions(
                model_id, page_size="100", next_page_token=tok, **self._t
            ),
        )

    def _find_exact(
        self,
        path: str,
        lookup: Callable[[ModelRegistryServiceApi], Awaitable[Any]],
        name: str,
        candidates: Callable[[], list[Json]],
        candidates_path: str,
    ) -> Json | None:
        """The entity named exactly ``name``, looked up by name at ``path``.

        The server matches the name with SQL ``LIKE`` (``_`` and ``%`` are wildcards; MySQL and
        MariaDB also ignore case), so its answer may be another entity, or a 404 when a wildcard
        matched several. Then the list at ``candidates`` is searched for the exact name.
        """
        found = self._json("GET", path, lookup, allow_404=True)
        if found is not None and found.get("name") == name:
            return found
        if found is None and not _LIKE_WILDCARDS.intersection(name):
            return None
        log.debug(
            "%s?name=%s matched %s: searching %s for the exact name",
            path,
            name,
            found.get("name") if found is not None else "several",
            candidates_path,
        )
        return next((item for item in candidates() if item.get("name") == name), None)

    def find_registered_model(self, name: str) -> Json | None:
        return self._find_exact(
            "/registered_model",
            lambda api: api.find_registered_model(name=name, **self._t),
            name,
            self._registered_models,
            "/registered_models",
        )

    def get_registered_model(self, model_id: str) -> Json | None:
        return self._json(
            "GET",
            f"/registered_models/{model_id}",
            lambda api: api.get_registered_model(model_id, **self._t),
            allow_404=True,
        )

    def create_registered_model(self, body: Json) -> Json:
        model = _mr().models.RegisteredModelCreate.from_dict(body)
        return self._json("POST", "/registered_models", lambda api: api.create_registered_model(model, **self._t)) or {}

    def update_registered_model(self, model_id: str, body: Json) -> Json:
        update = _mr().models.RegisteredModelUpdate.from_dict(body)
        return (
            self._json(
                "PATCH",
                f"/registered_models/{model_id}",
                lambda api: api.update_registered_model(model_id, update, **self._t),
            )
            or {}
        )

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
        every = self._list(
            "/model_versions",
            lambda api, tok: api.get_model_versions(page_size="100", next_page_token=tok, **self._t),
        )
        return [v for v in every if str(v.get("registeredModelId")) == model_id]

    def list_versions(self, model_id: str) -> list[Json]:
        scoped = self._scoped(f"the versions of RegisteredModel {model_id}", lambda: self._versions_under(model_id))
        return self._versions_of(model_id) if scoped is None else scoped

    def find_model_version(self, name: str, model_id: str) -> Json | None:
        found = self._scoped(
            f"the versions of RegisteredModel {model_id}",
            lambda: [
                self._find_exact(
                    "/model_version",
                    lambda api: api.find_model_version(name=name, parent_resource_id=model_id, **self._t),
                    name,
                    lambda: self._versions_under(model_id),
                    f"/registered_models/{model_id}/versions",
                )
            ],
        )
        if found is not None:
            return found[0]
        return next((v for v in self._versions_of(model_id) if v.get("name") == name), None)

    def get_model_version(self, version_id: str) -> Json | None:
        return self._json(
            "GET",
            f"/model_versions/{version_id}",
            lambda api: api.get_model_version(version_id, **self._t),
            allow_404=True,
        )

    def create_model_version(self, body: Json) -> Json:
        version = _mr().models.ModelVersionCreate.from_dict(body)
        return self._json("POST", "/model_versions", lambda api: api.create_model_version(version, **self._t)) or {}

    def update_model_version(self, version_id: str, body: Json) -> Json:
        update = _mr().models.ModelVersionUpdate.from_dict(body)
        return (
            self._json(
                "PATCH",
                f"/model_versions/{version_id}",
                lambda api: api.update_model_version(version_id, update, **self._t),
            )
            or {}
        )

    def version_artifacts(self, version_id: str) -> list[Json] | None:
        """The artifacts of a version; ``None`` when the server cannot list them (see
        :attr:`parent_lookups`: the global list does not say which version an artifact is of)."""
        path = f"/model_versions/{version_id}/artifacts"
        page = self._scoped(
            f"the artifacts of ModelVersion {version_id}",
            lambda: self._call(
                "GET", path, lambda api: api.get_model_version_artifacts(version_id, page_size="100", **self._t)
            ),
        )
        return None if page is None else [_dict(a) for a in (getattr(page, "items", None) or [])]

    def create_version_artifact(self, version_id: str, body: Json) -> Json:
        artifact = _mr().models.Artifact.from_dict(body)
        return (
            self._json(
                "POST",
                f"/model_versions/{version_id}/artifacts",
                lambda api: api.upsert_model_version_artifact(version_id, artifact, **self._t),
            )
            or {}
        )

    def get_model_artifact(self, artifact_id: str) -> Json | None:
        return self._json(
            "GET",
            f"/model_artifacts/{artifact_id}",
            lambda api: api.get_model_artifact(artifact_id, **self._t),
            allow_404=True,
        )

    def update_model_artifact(self, artifact_id: str, body: Json) -> Json:
        update = _mr().models.ModelArtifactUpdate.from_dict(body)
        return (
            self._json(
                "PATCH",
                f"/model_artifacts/{artifact_id}",
                lambda api: api.update_model_artifact(artifact_id, update, **self._t),
            )
            or {}
        )


def _page(
    page: Callable[[ModelRegistryServiceApi, str | None], Awaitable[Any]],
    token: str | None,
    api: ModelRegistryServiceApi,
) -> Awaitable[Any]:
    return page(api, token)


def _error_text(body: str | None) -> str:
    """The ``message`` of a JSON error body, else the body."""
    text = (body or "").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])[:300]
    return str(data)[:300]


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
