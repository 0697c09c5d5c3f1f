"""Start the operator: settings once, one kopf registry, our own kopf keys and timeouts."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
from typing import Any

import kopf

from .api.common import GROUP
from .handlers import modelregistry as modelregistry_handlers
from .handlers import modeluploadjob as modeluploadjob_handlers
from .handlers import platform as platform_handlers
from .kube import Kube, load_api_client
from .platform.discovery import CapabilityWatcher
from .reconcile.modelregistry import RegistryReconciler
from .reconcile.modeluploadjob import UploadJobReconciler
from .settings import FIELD_MANAGER, OperatorSettings

log = logging.getLogger(__name__)


class _QuietProbes(logging.Filter):
    """Liveness probes hit every few seconds; keep them out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/healthz" not in record.getMessage()


def _emit(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    try:
        kopf.event(body, type=type_, reason=reason, message=message)  # type: ignore[arg-type]
    except Exception:  # events are best effort; never fail a reconcile for one
        log.debug("could not post event %s", reason, exc_info=True)


def connection_info(configuration: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from the same client configuration the reconciler uses."""
    auth = (configuration.api_key or {}).get("authorization") or configuration.api_key.get("BearerToken")
    scheme, _, token = (auth or "").partition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        expiration=None,
    )


def build_registry(
    settings: OperatorSettings,
    reconciler: RegistryReconciler,
    api_configuration: Any,
    watcher: CapabilityWatcher | None = None,
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # In-cluster tokens rotate: the client configuration re-reads them through its refresh hook.
        if api_configuration.refresh_api_key_hook is not None:
            api_configuration.refresh_api_key_hook(api_configuration)
        return connection_info(api_configuration)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 310
        settings.watching.connect_timeout = 30
        settings.posting.level = logging.WARNING
        settings.posting.reporting_component = FIELD_MANAGER
        settings.execution.max_workers = 8
        settings.peering.standalone = True
        settings.networking.request_timeout = 60

    if watcher is not None:
        platform_handlers.register(registry, watcher)
    modelregistry_handlers.register(registry, reconciler, settings.resync_seconds)
    uploads = UploadJobReconciler(reconciler.kube, settings, reconciler.emit)
    modeluploadjob_handlers.register(registry, uploads, settings.resync_seconds)
    return registry


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each worker thread its own malloc arena; with 16 API threads parsing JSON
    that fragments memory and inflates RSS for nothing. Two arenas are plenty here."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    m_arena_max = -8
    libc.mallopt(m_arena_max, arenas)


def run(settings: OperatorSettings, kubeconfig: str | None = None) -> None:
    """Run until interrupted."""
    _limit_malloc_arenas()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").addFilter(_QuietProbes())
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    if settings.log_level != "DEBUG":  # kopf reports every handled child event at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        # Optional APIs (Routes, Istio, ...) absent on this cluster: discovery reports them once.
        logging.getLogger("kopf._core.reactor.observation").setLevel(logging.ERROR)
    api_client = load_api_client(kubeconfig, pool_size=settings.api_workers)
    kube = Kube(api_client)
    watcher = CapabilityWatcher(kube, settings.capability_refresh_seconds)
    reconciler = RegistryReconciler(kube, settings, watcher, _emit)

    async def apis_changed(*_: object) -> None:  # new or gone APIs change what registries render
        await reconciler.reconcile_all()

    watcher.listener = apis_changed
    registry = build_registry(settings, reconciler, api_client.configuration, watcher)
    loop = asyncio.new_event_loop()
    # Blocking API calls run in threads; size the pool for parallel applies.
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=settings.api_workers))
    asyncio.set_event_loop(loop)
    namespaces = [settings.watch_namespace] if settings.watch_namespace else []
    try:
        loop.run_until_complete(
            kopf.operator(
                registry=registry,
                clusterwide=not namespaces,
                namespaces=namespaces,
                standalone=True,
                liveness_endpoint=f"http://{settings.health_host}:{settings.health_port}/healthz",
            )
        )
    finally:
        loop.close()
