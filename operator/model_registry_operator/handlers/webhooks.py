"""kopf registrations of the admission webhooks (``ENABLE_WEBHOOKS``): thin, the decisions are
the pure functions of :mod:`..webhooks.admission`.

The handler ids are the webhook paths (kopf serves ``/<id>``), the upstream operator's, so
``config/webhook`` and manifests written for upstream point at the same URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from pathlib import Path
from typing import Any

import kopf

from ..kinds import MODEL_REGISTRY
from ..reconcile.modelregistry import RegistryReconciler
from ..settings import OperatorSettings
from ..webhooks.admission import Registry, default_spec, shared_objects, validate
from ..webhooks.certificates import CertificateKeeper, operator_namespace, service_names

log = logging.getLogger(__name__)

RESOURCE = MODEL_REGISTRY.resource
VALIDATE_ID = "validate-modelregistry-opendatahub-io-modelregistry"
MUTATE_ID = "mutate-modelregistry-opendatahub-io-modelregistry"


class _RefusalsAtInfo(logging.Filter):
    """kopf logs a refused admission as an ERROR of the handler ("failed permanently"); it is the
    user's request that failed, not the operator: logged at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and f"Webhook '{VALIDATE_ID}' failed permanently" in record.getMessage():
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def register(registry: kopf.OperatorRegistry, reconciler: RegistryReconciler, settings: OperatorSettings) -> None:
    """Register the webhook handlers and the start-up of their server on ``registry``."""
    logging.getLogger("kopf.objects").addFilter(_RefusalsAtInfo())
    tasks: set[asyncio.Task[None]] = set()
    operator_settings = settings  # kopf passes its own settings to the start-up handler as `settings`

    @kopf.on.validate(*RESOURCE, id=VALIDATE_ID, operations=["CREATE", "UPDATE"], registry=registry)
    async def validate_registry(body: kopf.Body, **kwargs: Any) -> None:
        old = kwargs.get("old")  # the stored object, on UPDATE
        new = Registry.of(body)
        previous = Registry.of(old, new.namespace) if old else None
        if new.deleting or (previous is not None and previous.spec == new.spec):
            return  # kopf's finalizer, a label: always allowed (see validate), no list needed
        others: list[Registry] = []
        capabilities = reconciler.capabilities()
        if shared_objects(new, settings, capabilities):  # only then can another registry's name matter
            others = [Registry.of(item) for item in await reconciler.kube.list(MODEL_REGISTRY)]
        problems = validate(new, previous, others, settings, capabilities)
        if problems:
            raise kopf.AdmissionError("; ".join(str(problem) for problem in problems), code=422)

    @kopf.on.mutate(*RESOURCE, id=MUTATE_ID, operations=["CREATE", "UPDATE"], registry=registry)
    async def default_registry(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        spec = body.get("spec")
        defaulted = default_spec(spec)
        if defaulted != spec:
            patch.fns.append(lambda raw: raw.__setitem__("spec", defaulted))

    @kopf.on.startup(registry=registry, id="webhook-server")
    async def start_webhook_server(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.admission.server = await _server(reconciler, tasks, operator_settings)

    @kopf.on.cleanup(registry=registry, id="stop-webhook-certificates")
    async def stop_certificates(**_: Any) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _server(
    reconciler: RegistryReconciler, tasks: set[asyncio.Task[None]], settings: OperatorSettings
) -> kopf.WebhookServer:
    directory = Path(settings.webhook_cert_dir)
    common: dict[str, Any] = {
        "addr": settings.webhook_host,
        "port": settings.webhook_port,
        "file_check_interval": settings.webhook_cert_check_seconds,
    }
    if settings.webhook_cert_source == "files":  # cert-manager's Secret, mounted (tls.crt, tls.key, ca.crt)
        ca = directory / "ca.crt"
        return kopf.WebhookServer(
            certfile=directory / "tls.crt", pkeyfile=directory / "tls.key", cafile=ca if ca.exists() else None, **common
        )
    namespace = operator_namespace(settings.operator_namespace)
    extra = [name.strip() for name in settings.webhook_cert_extra_names.split(",")]
    keeper = CertificateKeeper(
        reconciler.kube,
        namespace=namespace,
        secret=settings.webhook_cert_secret,
        names=service_names(settings.webhook_service, namespace, extra),
        directory=directory,
        configurations=(settings.webhook_validating_configuration, settings.webhook_mutating_configuration),
        validity=datetime.timedelta(seconds=settings.webhook_cert_validity_seconds),
    )
    await keeper.ensure()  # the files must exist before the server starts
    tasks.add(asyncio.get_running_loop().create_task(_keep(keeper, settings.webhook_cert_check_seconds)))
    return kopf.WebhookServer(
        certfile=keeper.serving_file, pkeyfile=keeper.serving_file, cafile=keeper.ca_file, **common
    )


async def _keep(keeper: CertificateKeeper, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await keeper.ensure()
        except asyncio.CancelledError:
            raise
        except Exception:  # the API server may be away for a while: try again next time
            log.warning("could not renew the webhook certificate or patch the CA bundles", exc_info=True)
