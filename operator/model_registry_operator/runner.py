"""Start the operator: settings once, one kopf registry, our own kopf keys and timeouts."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import kopf

from .handlers import modelregistry as modelregistry_handlers
from .handlers import modeluploadjob as modeluploadjob_handlers
from .handlers import platform as platform_handlers
from .handlers import webhooks as webhook_handlers
from .health import ApiServerCheck, HealthServer, Readiness
from .kopf_internals import (
    OBSERVATION_LOGGER,
    WATCH_LOGGER,
    DiffBaseStorage,
    StorageInitializing,
    tolerate_deleted_apis,
)
from .kube import Kube, load_api_client
from .leadership import LeaderElector, LeaseConfig, lead, lease_namespace, new_identity
from .names import (
    FIELD_MANAGER,
    FINALIZER,
    GROUP,
    KOPF_DIFFBASE_KEY,
    KOPF_PREFIX,
    MODEL_REGISTRY_PLURAL,
    MODEL_UPLOAD_JOB_KIND,
    MODEL_UPLOAD_JOB_PLURAL,
)
from .observability import logs as observability_logs
from .observability import sources as metric_sources
from .observability.endpoint import MetricsEndpoint
from .platform.discovery import CapabilityWatcher
from .reconcile.modelregistry import RegistryReconciler
from .reconcile.modeluploadjob import UploadJobReconciler
from .settings import OperatorSettings

log = logging.getLogger(__name__)

# kopf's HTTP connections: its watch streams (one per watched resource, about 20 at most) hold
# one each, the rest serve its patches and posted events. Unbounded (kopf's default), a burst of
# events opened hundreds of TLS connections at about 128 KiB each; beyond this, requests queue.
KOPF_CONNECTIONS = 64
# How often freed heap memory is handed back to the system (see _trim_memory).
TRIM_SECONDS = 10.0
QUEUE_IDLE_SECONDS = 0.5
# On shutdown, the longest the Lease waits for the worker threads' writes still in flight.
DRAIN_SECONDS = 5.0


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
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = DiffBaseStorage(
            tracked=[f"{GROUP}/{MODEL_UPLOAD_JOB_KIND}"], prefix=KOPF_PREFIX, key=KOPF_DIFFBASE_KEY
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
    metric_sources.observe(reconciler.queue, uploads.queue)
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


async def _operate(
    settings: OperatorSettings,
    kubeconfig: str | None,
    readiness: Readiness,
    reconcile: Callable[[asyncio.Event], Awaitable[None]],
    webhooks: webhook_handlers.WebhookService | None = None,
) -> None:
    """The probes and the admission webhooks always; the reconcilers (``reconcile(ready_flag)``)
    only while leading."""
    loop = asyncio.get_running_loop()
    # The Lease and the probes' API check have connections of their own: a burst of reconciles
    # must not delay a renewal or a probe.
    side = Kube(load_api_client(kubeconfig, pool_size=2))
    elector = None
    if settings.leader_elect:
        config = LeaseConfig(
            name=settings.leader_election_id,
            namespace=lease_namespace(settings.leader_election_namespace),
            identity=new_identity(),
            lease_duration=settings.lease_duration,
            renew_deadline=settings.renew_deadline,
            retry_period=settings.retry_period,
        )
        elector = LeaderElector(side, config)
    readiness.leading = lambda: elector is None or elector.leading
    readiness.standby = lambda: elector is not None and not elector.leading
    health = HealthServer(settings.health_host, settings.health_port, readiness, ApiServerCheck(side))
    await health.start()
    if webhooks is not None:  # a standby serves them too: the webhook Service routes to it
        await webhooks.start()
    stopping = asyncio.Event()  # a signal while a standby (kopf handles them once it runs)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)

    async def drain() -> bool:
        try:
            await asyncio.wait_for(loop.shutdown_default_executor(), min(DRAIN_SECONDS, settings.renew_deadline / 2))
        except TimeoutError:
            return False
        return True

    async def work() -> None:
        await reconcile(readiness.started)

    try:
        await lead(elector, work, drain, stopping)
    finally:
        if webhooks is not None:
            await webhooks.stop()
        await health.stop()


def run(settings: OperatorSettings, kubeconfig: str | None = None) -> None:
    """Run until interrupted."""
    _limit_malloc_arenas()
    readiness = Readiness(required_watches=(f"{MODEL_REGISTRY_PLURAL}.{GROUP}", f"{MODEL_UPLOAD_JOB_PLURAL}.{GROUP}"))
    # An optional API's CRD deleted must not stop the operator; the listings feed /readyz.
    tolerate_deleted_apis(on_listed=readiness.watch_listed)
    observability_logs.configure(settings.log_level, settings.log_format)
    logging.getLogger("aiohttp.access").addFilter(_QuietProbes())
    logging.getLogger(WATCH_LOGGER).addFilter(StorageInitializing())
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    if settings.log_level != "DEBUG":  # kopf reports every handled child event at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        # Optional APIs (Routes, Istio, ...) absent on this cluster: discovery reports them once.
        logging.getLogger(OBSERVATION_LOGGER).setLevel(logging.ERROR)
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
    metrics = MetricsEndpoint.from_settings(settings, kube)
    webhooks = webhook_handlers.WebhookService(kube, settings) if settings.enable_webhooks else None
    if webhooks is not None:
        service = webhooks
        readiness.webhooks = lambda: None if service.listening else "the admission webhook server is not listening yet"

    # kopf handles SIGTERM / SIGINT itself (no stop_flag: its waiter would hold kopf's exit 5 s).
    def reconcile(ready_flag: asyncio.Event) -> Awaitable[None]:
        return kopf.operator(
            registry=registry,
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            ready_flag=ready_flag,
        )

    try:
        if metrics is not None:  # before kopf: an address in use is a start-up error
            loop.run_until_complete(metrics.start())
        loop.run_until_complete(_operate(settings, kubeconfig, readiness, reconcile, webhooks))
    finally:
        if metrics is not None:
            loop.run_until_complete(metrics.stop())
        loop.close()
