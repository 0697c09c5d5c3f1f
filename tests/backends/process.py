"""Start and stop a throwaway server process bound to 127.0.0.1 (shared by the upload back-ends)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.backends.databases import LOOPBACK, MissingServerBinaryError, ServerStartError, free_port

__all__ = ["LOOPBACK", "ManagedProcess", "cache_bin", "free_port", "require_binary"]


def cache_bin() -> Path:
    root = os.environ.get("MRO_CACHE_DIR") or str(Path.home() / ".cache" / "model-registry-operator")
    return Path(root) / "bin"


def require_binary(name: str, *candidates: str) -> str:
    """Absolute path of a tool: the cache bin dir first, then PATH and the given candidates."""
    cached = cache_bin() / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    found = shutil.which(name)
    if found:
        return found
    for c in candidates:
        if Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise MissingServerBinaryError(f"{name} not found (looked in {cache_bin()}, PATH): run make deps")


class Backend:
    """A server a test starts and stops: ``with Backend() as b`` is ``b.start()`` ... ``b.stop()``."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class ManagedProcess:
    """A background server: started with its own log file, stopped by PID."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if ready():
                    return
            except Exception:  # noqa: BLE001, S110 - not ready yet
                pass
            time.sleep(0.1)
        self.stop()
        raise ServerStartError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
