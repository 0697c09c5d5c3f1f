"""A TCP proxy on a free 127.0.0.1 port that breaks HTTP responses of a real server on purpose.

The faults a real nginx cannot be made to produce on demand (a connection cut halfway through
a body, a server that stops sending, a connection closed as soon as it is accepted) are made
here, on the wire, between the client under test and the real server; the bytes that do pass
are the server's own. Every request head the client sends is recorded
(:attr:`FaultProxy.requests`), so a test can assert which ``Range`` / ``If-Range`` /
``If-Match`` headers a retry carried, or which writes reached an S3 server behind it.

Request bodies (``Content-Length``) are passed on as they are. Requests are matched to faults
in the order they arrive: a :class:`Fault` applies to the next ``times`` requests its
``match`` accepts. As a client sends its next request on a connection only after reading the
previous answer, the response bytes that follow a request head on that connection are its
answer.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.backends.process import LOOPBACK, Backend


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""

    @property
    def range_start(self) -> int | None:
        """The first byte a ``Range: bytes=N-[M]`` asks for, ``None`` without a Range."""
        value = self.headers.get("range")
        if value is None:
            return None
        return int(value.removeprefix("bytes=").split("-", 1)[0])


@dataclass
class Fault:
    """What happens to the answers of the requests ``match`` accepts (``times`` of them).

    ``kind``: ``"cut"`` closes the connection after ``after`` bytes of the answer (head
    included); ``"stall"`` stops forwarding after ``after`` bytes for ``seconds``, then closes;
    ``"refuse"`` closes the connection without forwarding the request. ``on_fault`` runs once
    the fault happened (e.g. to change the file on the server before the client retries)."""

    kind: str
    match: Callable[[Request], bool] = lambda _req: True
    after: int = 0
    seconds: float = 0.0
    times: int = 1
    on_fault: Callable[[], None] | None = None
    applied: int = field(default=0, init=False)


class FaultProxy(Backend):
    def __init__(self, upstream_port: int, upstream_host: str = LOOPBACK) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> None:
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    def drop_connections(self) -> None:
        """Close every open connection (long watch streams included); new ones are accepted."""
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            _close(s)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            _close(s)

    # -- plumbing ---------------------------------------------------------------------------

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _fault_for(self, req: Request) -> Fault | None:
        with self._lock:
            self.requests.append(req)
            for fault in self.faults:
                if fault.applied < fault.times and fault.match(req):
                    fault.applied += 1
                    return fault
        return None

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._conns.update((client, upstream))
        state = _Connection(client, upstream)
        threading.Thread(target=self._responses, args=(state,), daemon=True).start()
        buf = b""
        body_left = 0  # of the current request's Content-Length body (chunked bodies are not sent here)
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    if body_left:
                        n = min(body_left, len(buf))
                        upstream.sendall(buf[:n])
                        buf, body_left = buf[n:], body_left - n
                        if body_left:
                            break
                    if b"\r\n\r\n" not in buf:
                        break
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    req = _parse(head)
                    fault = self._fault_for(req)
                    if fault is not None and fault.kind == "refuse":
                        if fault.on_fault:
                            fault.on_fault()
                        state.close()
                        return
                    state.begin(fault)
                    upstream.sendall(head + b"\r\n\r\n")
                    body_left = int(req.headers.get("content-length") or 0)
        except OSError:
            pass
        finally:
            state.close()
            with self._lock:
                self._conns.difference_update((client, upstream))

    def _responses(self, state: _Connection) -> None:
        try:
            while True:
                data = state.upstream.recv(65536)
                if not data:
                    break
                if not state.forward(data):
                    break
        except OSError:
            pass
        finally:
            state.close()


class _Connection:
    """One client connection and its upstream; counts the bytes of the current answer."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.lock = threading.Lock()
        self.fault: Fault | None = None
        self.sent = 0
        self.closed = False

    def begin(self, fault: Fault | None) -> None:
        with self.lock:
            self.fault = fault
            self.sent = 0

    def forward(self, data: bytes) -> bool:
        """Forward ``data`` to the client under the current fault; ``False`` once cut."""
        with self.lock:
            fault = self.fault
            allowed = len(data) if fault is None else max(0, min(len(data), fault.after - self.sent))
            self.sent += allowed
        if allowed:
            self.client.sendall(data[:allowed])
        if fault is None or allowed == len(data):
            return True
        if fault.kind == "stall":
            time.sleep(fault.seconds)
        if fault.on_fault:  # before the close: the client's retry sees the change
            fault.on_fault()
        self.close()
        return False

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        _close(self.client)
        _close(self.upstream)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


def _parse(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Request(method, path, headers)
