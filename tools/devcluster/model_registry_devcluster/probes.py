"""Kubelet-style container probes for the process containers of the simulated node.

:class:`ContainerProber` runs a container's ``startupProbe``, ``livenessProbe`` and
``readinessProbe`` the way a kubelet's prober workers do, each in a thread of its own so that
neither a slow probe nor its ``timeoutSeconds`` ever holds up the node's work loop (which only
reads :meth:`ContainerProber.is_ready` / :meth:`ContainerProber.is_started`):

* handlers: ``httpGet`` (``host`` defaults to the Pod IP, named or numbered ``port``, ``path``,
  ``scheme`` HTTP / HTTPS without certificate verification, ``httpHeaders``; a status from 200 to
  399 is a success, redirects are not followed), ``tcpSocket`` (a connection is a success) and
  ``exec`` (exit code 0 is a success; run through a callback, which for a process container
  enters its mount namespace). ``grpc`` probes are not supported: such a probe is ignored, with
  a warning, as if it were not there;
* timing: the first attempt at ``initialDelaySeconds`` after the container started, then one
  every ``periodSeconds``; each attempt gives up after ``timeoutSeconds``;
* thresholds: a result flips after ``successThreshold`` consecutive successes or
  ``failureThreshold`` consecutive failures. Readiness starts as "not ready", liveness as
  "alive", startup as "unknown";
* gating: while a startup probe has not succeeded the container is not *started*, and neither
  liveness nor readiness is probed; they are tried as soon as it succeeds (a kubelet waits for
  its next period tick, here there is no point in waiting). The startup probe stops once it has
  succeeded;
* failures: a liveness or startup probe that fails ``failureThreshold`` times in a row calls
  ``on_failure``, which for a process container stops it (SIGTERM, then SIGKILL after the grace
  period) so that the node restarts it as the Pod's restartPolicy says, as a kubelet does;
* a container is ready when it has started and its readiness probe (if any) succeeds; one
  without probes is ready as soon as it runs.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Obj = dict[str, Any]

STARTUP, LIVENESS, READINESS = "startup", "liveness", "readiness"
PROBE_FIELDS = {STARTUP: "startupProbe", LIVENESS: "livenessProbe", READINESS: "readinessProbe"}
HANDLERS = ("httpGet", "tcpSocket", "exec")
USER_AGENT = "kube-probe/simulated"
MAX_BODY_BYTES = 10 * 1024
MAX_MESSAGE = 300


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe attempt; ``message`` says why it failed."""

    success: bool
    message: str = ""


ExecFunc = Callable[[list[str], float], ProbeResult]
"""Runs ``command`` in the container with a timeout in seconds (for ``exec`` probes)."""


@dataclass(frozen=True)
class Probe:
    """One probe of a container. Times are seconds (floats, so tests may use fractions)."""

    kind: str  # startup / liveness / readiness
    handler: str  # httpGet / tcpSocket / exec
    action: Obj  # the handler's fields
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: float | None = None  # probe-level terminationGracePeriodSeconds

    @classmethod
    def from_spec(cls, kind: str, spec: Obj | None) -> Probe | None:
        """The probe of a container spec (``None`` when absent or of an unsupported kind).

        Missing or zero fields take the Kubernetes defaults (period 10 s, timeout 1 s, success
        threshold 1, failure threshold 3).
        """
        if not spec:
            return None
        handler = next((h for h in HANDLERS if h in spec), None)
        if handler is None:
            log.warning("simnode probes: %s probe %s is not supported; ignored", kind, sorted(spec))
            return None
        grace = spec.get("terminationGracePeriodSeconds")
        return cls(
            kind=kind,
            handler=handler,
            action=dict(spec[handler] or {}),
            initial_delay=float(spec.get("initialDelaySeconds") or 0),
            period=float(spec.get("periodSeconds") or 10),
            timeout=float(spec.get("timeoutSeconds") or 1),
            success_threshold=int(spec.get("successThreshold") or 1),
            failure_threshold=int(spec.get("failureThreshold") or 3),
            termination_grace=float(grace) if grace is not None else None,
        )


def container_probes(container: Obj) -> list[Probe]:
    """The supported probes of a container spec, startup first."""
    probes = [Probe.from_spec(kind, container.get(field)) for kind, field in PROBE_FIELDS.items()]
    return [p for p in probes if p is not None]


def container_ports(container: Obj) -> dict[str, int]:
    """Named ``containerPort`` s of a container spec."""
    return {str(p["name"]): int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name")}


@dataclass(frozen=True)
class ProbeTarget:
    """Where the probes of one container go."""

    pod_ip: str
    ports: Mapping[str, int]
    exec: ExecFunc | None = None


class ProbeConfigError(Exception):
    """The probe cannot be run as written (unknown named port, ...)."""


def resolve_port(port: Any, ports: Mapping[str, int]) -> int:  # noqa: ANN401 - IntOrString
    """A probe's ``port``: a number, or the name of a container port."""
    if isinstance(port, int):
        return port
    text = str(port or "")
    if text.isdigit():
        return int(text)
    if text in ports:
        return ports[text]
    raise ProbeConfigError(f"port {text!r} is not a port of the container")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def http_get(action: Obj, target: ProbeTarget, timeout: float) -> ProbeResult:
    """An ``httpGet`` probe: a status in [200, 400) is a success."""
    host = str(action.get("host") or target.pod_ip)
    port = resolve_port(action.get("port"), target.ports)
    scheme = str(action.get("scheme") or "HTTP").upper()
    path = str(action.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme.lower()}://{host}:{port}{path}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for header in action.get("httpHeaders") or []:
        headers[str(header["name"])] = str(header.get("value", ""))
    conn: http.client.HTTPConnection
    if scheme == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read(MAX_BODY_BYTES).decode("utf-8", "replace")
    except TimeoutError:
        return ProbeResult(False, f'Get "{url}": timeout after {timeout:g}s')
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(False, f'Get "{url}": {exc or type(exc).__name__}')
    finally:
        conn.close()
    if 200 <= response.status < 400:
        return ProbeResult(True, _short(body))
    return ProbeResult(False, _short(f"HTTP probe failed with statuscode: {response.status} {body}".strip()))


def tcp_socket(action: Obj, target: ProbeTarget, timeout: float) -> ProbeResult:
    """A ``tcpSocket`` probe: opening the connection is a success."""
    host = str(action.get("host") or target.pod_ip)
    port = resolve_port(action.get("port"), target.ports)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ProbeResult(True)
    except TimeoutError:
        return ProbeResult(False, f"dial tcp {host}:{port}: i/o timeout")
    except OSError as exc:
        return ProbeResult(False, f"dial tcp {host}:{port}: {exc.strerror or exc}")


def run_probe(probe: Probe, target: ProbeTarget) -> ProbeResult:
    """One attempt of ``probe`` against ``target`` (never raises)."""
    try:
        if probe.handler == "httpGet":
            return http_get(probe.action, target, probe.timeout)
        if probe.handler == "tcpSocket":
            return tcp_socket(probe.action, target, probe.timeout)
        command = [str(a) for a in probe.action.get("command") or []]
        if not command:
            return ProbeResult(False, "exec probe without a command")
        if target.exec is None:
            return ProbeResult(False, "exec probes are not supported for this container")
        return target.exec(command, probe.timeout)
    except ProbeConfigError as exc:
        return ProbeResult(False, str(exc))
    except Exception as exc:  # a probe must never take its worker down
        log.exception("simnode probes: %s probe crashed", probe.kind)
        return ProbeResult(False, f"probe error: {exc!r}")


class ProbeTracker:
    """The result of a probe from its consecutive outcomes, with the kubelet's thresholds.

    ``result`` starts at ``initial`` (``None``: unknown) and changes to the outcome of an attempt
    once that outcome was seen ``successThreshold`` (success) or ``failureThreshold``
    (failure) times in a row.
    """

    def __init__(self, probe: Probe, initial: bool | None) -> None:
        self.probe = probe
        self.result = initial
        self.last: bool | None = None
        self.run = 0
        self.message = ""

    def observe(self, outcome: ProbeResult) -> bool:
        """Record one attempt; whether ``result`` changed."""
        if outcome.success == self.last:
            self.run += 1
        else:
            self.last, self.run = outcome.success, 1
        if not outcome.success:
            self.message = outcome.message
        needed = self.probe.success_threshold if outcome.success else self.probe.failure_threshold
        if self.run < needed or self.result == outcome.success:
            return False
        self.result = outcome.success
        return True


FailureCallback = Callable[[Probe, str], None]


class ContainerProber:
    """The probe workers of one running container (see the module docstring).

    ``on_failure(probe, message)`` is called (from a worker thread, at most once) when the
    liveness or startup probe fails for good; the caller is expected to stop the container.
    ``started_at`` is the ``time.monotonic()`` the container started at.
    """

    def __init__(
        self,
        name: str,
        probes: Sequence[Probe],
        target: ProbeTarget,
        on_failure: FailureCallback,
        started_at: float | None = None,
    ) -> None:
        self.name = name
        self.target = target
        self.on_failure = on_failure
        self.started_at = time.monotonic() if started_at is None else started_at
        initial = {STARTUP: None, LIVENESS: True, READINESS: False}
        self.trackers = {p.kind: ProbeTracker(p, initial[p.kind]) for p in probes}
        self._cond = threading.Condition()
        self._stopped = False
        self._failed = False
        self._started = STARTUP not in self.trackers
        self._threads: list[threading.Thread] = []
        self.attempts: dict[str, int] = dict.fromkeys(self.trackers, 0)

    # -- state ---------------------------------------------------------------------------
    def is_started(self) -> bool:
        """The startup probe succeeded (or there is none)."""
        with self._cond:
            return self._started

    def is_ready(self) -> bool:
        """Started, not failed, and the readiness probe (if any) succeeds."""
        with self._cond:
            if not self._started or self._failed:
                return False
            readiness = self.trackers.get(READINESS)
            return readiness is None or readiness.result is True

    def failures(self) -> dict[str, str]:
        """The last failure message of each probe that failed at least once."""
        with self._cond:
            return {kind: t.message for kind, t in self.trackers.items() if t.message}

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        for kind, tracker in self.trackers.items():
            t = threading.Thread(target=self._worker, args=(tracker,), name=f"probe-{kind}-{self.name}", daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        """Stop the workers; never waits for an attempt in progress (it is dropped)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        for t in self._threads:
            t.join(timeout)

    # -- workers -------------------------------------------------------------------------
    def _wait(self, deadline: float, gated: bool) -> bool:
        """Sleep until ``deadline`` (and, when ``gated``, until started); ``False`` when stopped."""
        with self._cond:
            while not self._stopped:
                remaining = deadline - time.monotonic()
                if remaining <= 0 and (self._started or not gated):
                    return True
                self._cond.wait(remaining if remaining > 0 else None)
            return False

    def _worker(self, tracker: ProbeTracker) -> None:
        probe = tracker.probe
        gated = probe.kind != STARTUP
        due = self.started_at + probe.initial_delay
        while self._wait(due, gated):
            attempt_at = time.monotonic()
            outcome = run_probe(probe, self.target)
            with self._cond:
                if self._stopped:
                    return
                self.attempts[probe.kind] += 1
                changed = tracker.observe(outcome)
                if not outcome.success:
                    log.debug("simnode probes: %s probe of %s failed: %s", probe.kind, self.name, outcome.message)
                if changed:
                    log.info(
                        "simnode probes: %s probe of %s %s%s",
                        probe.kind,
                        self.name,
                        "succeeded" if tracker.result else "failed",
                        "" if tracker.result else f": {outcome.message}",
                    )
                if probe.kind == STARTUP and tracker.result is True:
                    self._started = True
                    self._cond.notify_all()
                    return
                failed = probe.kind in (STARTUP, LIVENESS) and tracker.result is False
                if failed:
                    self._failed = True
                    self._stopped = True
                    self._cond.notify_all()
            if failed:
                self.on_failure(probe, outcome.message)
                return
            due = attempt_at + probe.period
