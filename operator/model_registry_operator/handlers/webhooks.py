"""The admission webhooks' server (``ENABLE_WEBHOOKS``), on every replica, leader or standby.

The webhook Service sends admission requests to every ready replica, and a standby is ready (see
:mod:`..health`), so each replica serves them, with the same decisions (the pure functions of
:mod:`..webhooks.admission`, through :mod:`..webhooks.review`; the cross-namespace name check
only reads the API). The server is kopf's public ``kopf.WebhookServer`` (TLS, and a restart of its
listener when the certificate files change), fed our own ``kopf.WebhookFn``; it runs beside the
health server, outside ``kopf.operator``, which only the leader runs.

kopf's own handlers (``kopf.on.validate`` / ``kopf.on.mutate``) were used before and could not
stay: kopf starts its admission server as one of ``kopf.operator``'s root tasks, and its request
dispatcher (``kopf._core.engines.admission.serve_admission_request``) needs the operator's
registry, the discovered resources (``Insights``), memories and indices that only
``kopf.operator`` builds; re-creating those on a standby would be kopf internals through and
through, for what is two calls of pure functions here.

The paths are the upstream operator's (kopf's server serves ``/<id>``), so ``config/webhook`` and
manifests written for upstream point at the same URLs. The certificate is the same on every
replica (:mod:`..webhooks.certificates`: the Secret, renewed by whichever replica wins the
optimistic-concurrency update; every replica re-reads it and rewrites its files).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import kopf
from aiohttp import web

from ..kinds import MODEL_REGISTRY
from ..kube import Kube
from ..platform.discovery import CapabilityWatcher
from ..settings import OperatorSettings
from ..webhooks.admission import Registry, shared_objects, validate
from ..webhooks.certificates import CertificateKeeper, operator_namespace, service_names
from ..webhooks.review import BadReview, Review, defaults_patch, response

log = logging.getLogger(__name__)

VALIDATE_ID = "validate-modelregistry-opendatahub-io-modelregistry"
MUTATE_ID = "mutate-modelregistry-opendatahub-io-modelregistry"
RETRY_SECONDS = 5.0
"""Pause before starting the server again after it failed (API server away, address in use)."""


class WebhookService:
    """The webhook server, its certificate upkeep and what its decisions read from the cluster."""

    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self.kube = kube
        self.settings = settings
        # A watcher of its own, without a listener: the leader's reconciles on an API change must
        # not run on a standby; on the leader this is one more discovery read per interval.
        self.capabilities = CapabilityWatcher(kube, settings.capability_refresh_seconds)
        self._tasks: set[asyncio.Task[None]] = set()
        self.listening = False
        """Whether the server accepts requests now (``/readyz``: the Service routes none here before)."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for job in (self._serve(), self.capabilities.run()):
            self._tasks.add(loop.create_task(job))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def review(self, request: Mapping[str, Any], *, webhook: str | None = None, **_: Any) -> dict[str, Any]:
        """A ``kopf.WebhookFn``: one AdmissionReview, by the path it came to."""
        try:
            review = Review.of(request)
        except BadReview as exc:  # kopf's server lets aiohttp's HTTP errors through as the answer
            raise web.HTTPBadRequest(reason=str(exc)) from None
        if webhook == MUTATE_ID:
            return response(review, patch=defaults_patch(review))
        if webhook != VALIDATE_ID:
            raise web.HTTPNotFound(reason=f"no webhook at /{webhook}")
        if review.unchanged:
            return response(review)
        others: list[Registry] = []
        capabilities = self.capabilities()
        if shared_objects(review.new, self.settings, capabilities):  # only then can another's name matter
            others = [Registry.of(item) for item in await self.kube.list(MODEL_REGISTRY)]
        problems = validate(review.new, review.old, others, self.settings, capabilities)
        if problems:  # the user's request failed, not the operator: INFO
            log.info(
                "refused %s of ModelRegistry %s/%s: %s",
                review.operation,
                review.new.namespace,
                review.new.name,
                "; ".join(str(p) for p in problems),
            )
        return response(review, problems)

    async def _serve(self) -> None:
        await self.capabilities.refresh()
        while True:
            keeping: asyncio.Task[None] | None = None
            try:
                server, keeper = await self._server()
                if keeper is not None:
                    keeping = asyncio.get_running_loop().create_task(
                        _keep(keeper, self.settings.webhook_cert_check_seconds)
                    )
                async for _ in server(cast(kopf.WebhookFn, self.review)):  # each time it listens
                    self.listening = True
                    log.info("serving the admission webhooks on port %s", self.settings.webhook_port)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the admission webhook server failed; starting it again in %s s", RETRY_SECONDS)
            finally:
                self.listening = False
                if keeping is not None:
                    keeping.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await keeping
            await asyncio.sleep(RETRY_SECONDS)

    async def _server(self) -> tuple[kopf.WebhookServer, CertificateKeeper | None]:
        settings = self.settings
        directory = Path(settings.webhook_cert_dir)
        common: dict[str, Any] = {
            "addr": settings.webhook_host,
            "port": settings.webhook_port,
            "file_check_interval": settings.webhook_cert_check_seconds,
        }
        if settings.webhook_cert_source == "files":  # cert-manager's Secret, mounted (tls.crt, tls.key, ca.crt)
            ca = directory / "ca.crt"
            server = kopf.WebhookServer(
                certfile=directory / "tls.crt",
                pkeyfile=directory / "tls.key",
                cafile=ca if ca.exists() else None,
                **common,
            )
            return server, None
        namespace = operator_namespace(settings.operator_namespace)
        extra = [name.strip() for name in settings.webhook_cert_extra_names.split(",")]
        keeper = CertificateKeeper(
            self.kube,
            namespace=namespace,
            secret=settings.webhook_cert_secret,
            names=service_names(settings.webhook_service, namespace, extra),
            directory=directory,
            configurations=(settings.webhook_validating_configuration, settings.webhook_mutating_configuration),
            validity=datetime.timedelta(seconds=settings.webhook_cert_validity_seconds),
        )
        await keeper.ensure()  # the files must exist before the server starts
        server = kopf.WebhookServer(
            certfile=keeper.serving_file, pkeyfile=keeper.serving_file, cafile=keeper.ca_file, **common
        )
        return server, keeper


async def _keep(keeper: CertificateKeeper, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await keeper.ensure()
        except asyncio.CancelledError:
            raise
        except Exception:  # the API server may be away for a while: try again next time
            log.warning("could not renew the webhook certificate or patch the CA bundles", exc_info=True)
