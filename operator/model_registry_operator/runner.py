"""Start the operator: settings once, one kopf registry, our own kopf keys and timeouts."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
from collections.abc import Callable, Collection, Iterable
from typing import Any, cast

import aiohttp
import kopf

from .api.common import GROUP
from .api.modeluploadjob import KIND as UPLOAD_JOB_KIND
from .handlers import modelregistry as modelregistry_handlers
from .handlers import modeluploadjob as modeluploadjob_handlers
from .handlers import platform as platform_handlers
from .kube import Kube, load_api_client
from .platform.discovery import CapabilityWatcher
from .reconcile.modelregistry import FINALIZER, RegistryReconciler
from .reconcile.modeluploadjob import UploadJobReconciler
from .settings import FIELD_MANAGER, OperatorSettings
from .watch_guard import tolerate_deleted_apis

log = logging.getLogger(__name__)

# kopf's HTTP connections: its watch streams (one per watched resource, about 20 at most) hold
# one each, the rest serve its patches and posted events. Unbounded (kopf's default), a burst of
# events opened hundreds of TLS connections at about 128 KiB each; beyond this, requests queue.
KOPF_CONNECTIONS = 64
# How often freed heap memory is handed back to the system (see _trim_memory).
TRIM_SECONDS = 10.0
QUEUE_IDLE_SECONDS = 0.5


class _QuietProbes(logging.Filter):
    """Liveness probes hit every few seconds; keep them out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/healthz" not in record.getMessage()


class _StorageInitializing(logging.Filter):
    """kopf logs every retried request at ERROR. A 429 "storage is (re)initializing" answers the
    first LIST of a CRD installed or updated a moment ago (ours, applied together with the
    operator; Istio installed while it runs) and is retried as the API server asks: INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        message = record.getMessage()
        if "will retry" not in message or "storage is (re)initializing" not in message:
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


# The logger of kopf's watch streams (their LIST and WATCH requests and retries).
KOPF_WATCH_LOGGER = "kopf._cogs.clients.watching"


def _emit(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    try:
        kopf.event(body, type=type_, reason=reason, message=message)  # type: ignore[arg-type]
    except Exception:  # events are best effort; never fail a reconcile for one
        log.debug("could not post event %s", reason, exc_info=True)


class DiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation diff base, kept only for the kinds whose handlers need one.

    kopf builds a diff base (a deep copy of the body) on every event of every watched kind and
    compares it with the one stored in an annotation. Only the kinds in ``tracked`` ("group/Kind")
    have create / update handlers; the registries (delete handler only: their generations are
    tracked by the reconciler) and the children (event handlers) need no diff, so nothing is
    copied, read or stored for them: their essence is always empty, so kopf sees no change
    (nothing to handle, nothing to log) but a deletion.
    """

    def __init__(self, *, tracked: Iterable[str], prefix: str, key: str) -> None:
        super().__init__(prefix=prefix, key=key)
        self.tracked: Collection[str] = frozenset(tracked)

    def _tracked(self, body: kopf.Body) -> bool:
        group = str(body.get("apiVersion", "")).rpartition("/")[0]
        return f"{group}/{body.get('kind')}" in self.tracked

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        if self._tracked(body):
            return super().build(body=body, extra_fields=extra_fields)
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return super().fetch(body=body) if self._tracked(body) else cast(kopf.BodyEssence, {})

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if self._tracked(body):
            super().store(body=body, patch=patch, essence=essence)


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
    async def login(**_: Any) -> kopf.AiohttpSession:
        # In-cluster tokens rotate: the client configuration re-reads them through its refresh hook.
        if api_configuration.refresh_api_key_hook is not None:
            api_configuration.refresh_api_key_hook(api_configuration)
        info = connection_info(api_configuration)
        # kopf's own session, but with a bounded connection pool (see KOPF_CONNECTIONS).
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=KOPF_CONNECTIONS, ssl=info.as_ssl_context()),
            headers=info.as_http_headers(),
        )
        return kopf.AiohttpSession(server=info.server, aiohttp_session=session)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = DiffBaseStorage(
            tracked=[f"{GROUP}/{UPLOAD_JOB_KIND}"], prefix=GROUP, key="last-handled-configuration"
        )
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 310
        settings.watching.connect_timeout = 30
        settings.posting.level = logging.WARNING
        settings.posting.reporting_component = FIELD_MANAGER
        settings.execution.max_workers = 8
        # kopf keeps one task per object for this long after its last event, holding that
        # event's decoded body: after a burst of creates that is thousands of bodies.
        settings.queueing.idle_timeout = QUEUE_IDLE_SECONDS
        settings.peering.standalone = True
        settings.networking.request_timeout = 60

    trim = _malloc_trim()
    if trim is not None:
        tasks: set[asyncio.Task[None]] = set()

        @kopf.on.startup(registry=registry, id="trim-memory")
        async def start_trimming(**_: Any) -> None:
            tasks.add(asyncio.get_running_loop().create_task(_trim_memory(trim, TRIM_SECONDS)))

        @kopf.on.cleanup(registry=registry, id="stop-trimming")
        async def stop_trimming(**_: Any) -> None:
            for task in tasks:
                task.cancel()

    if watcher is not None:
        platform_handlers.register(registry, watcher)
    modelregistry_handlers.register(registry, reconciler, settings.resync_seconds)
    uploads = UploadJobReconciler(
        reconciler.kube, settings, reconciler.emit, openshift=lambda: reconciler.capabilities().openshift
    )
    modeluploadjob_handlers.register(registry, uploads, settings.resync_seconds)
    return registry


def _glibc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each worker thread its own malloc arena; with 16 API threads parsing JSON
    that fragments memory and inflates RSS for nothing. Two arenas are plenty here."""
    libc = _glibc()
    if libc is None:
        return
    m_arena_max = -8
    libc.mallopt(m_arena_max, arenas)


def _malloc_trim() -> Callable[[int], int] | None:
    libc = _glibc()
    trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None) if libc is not None else None
    return trim


async def _trim_memory(trim: Callable[[int], int], interval: float) -> None:
    """glibc keeps what a burst freed (the decoded bodies of hundreds of events, rendered objects)
    in its heaps, where it counts as resident; malloc_trim hands the free pages back."""
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(trim, 0)


def run(settings: OperatorSettings, kubeconfig: str | None = None) -> None:
    """Run until interrupted."""
    _limit_malloc_arenas()
    tolerate_deleted_apis()  # an optional API's CRD deleted must not stop the operator
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").addFilter(_QuietProbes())
    logging.getLogger(KOPF_WATCH_LOGGER).addFilter(_StorageInitializing())
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    if settings.log_level != "DEBUG":  # kopf reports every handled child event at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        # Optional APIs (Routes, Istio, ...) absent on this cluster: discovery reports them once.
        logging.getLogger("kopf._core.reactor.observation").setLevel(logging.ERROR)
    api_client = load_api_client(kubeconfig, pool_size=settings.api_workers)
    kube = Kube(api_client)
    watcher = CapabilityWatcher(kube, settings.capability_refresh_seconds)
    reconciler = RegistryReconciler(kube, settings, watcher, _emit, rediscover=watcher.soon)

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
