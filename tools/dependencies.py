"""The broker, Redis and PostgreSQL as the local stack holds them: started here or given
by address.

A `Dependency` started here can be stopped and started again on the same port (Redis
reloads its append-only file, PostgreSQL its data directory; the memory broker comes
back empty, so its topics are created again) and is watched by the stack's supervisor;
one given by address belongs to someone else and is never touched.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from tools.local_services import RedisServer, TansuBroker
from tools.postgres_server import PostgresServer


@contextlib.contextmanager
def terminal_interrupt_blocked() -> Iterator[None]:
    """Start children with SIGINT blocked (the mask is inherited across exec; it is the
    calling thread's): a Ctrl-C in the terminal reaches the whole foreground process
    group, and the broker and Redis must outlive the services, which the devstack stops
    first, in order."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Dependency:
    """The broker or Redis: one started here (restartable, supervised) or an existing one
    (neither). Like `ServiceProcess`, it has a lock and says whether it is `wanted`."""

    def __init__(
        self,
        name: str,
        address: str,
        server: RedisServer | TansuBroker | PostgresServer | None,
        *,
        after_start: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.server = server
        self.lock = threading.RLock()
        self.wanted = server is not None
        self._after_start = after_start

    @property
    def owned(self) -> bool:
        return self.server is not None

    @property
    def running(self) -> bool:
        process = None if self.server is None else self.server.process
        return process is not None and process.poll() is None

    @property
    def pid(self) -> int | None:
        process = None if self.server is None else self.server.process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def returncode(self) -> int | None:
        process = None if self.server is None else self.server.process
        return None if process is None else process.poll()

    def healthy(self) -> bool:
        return self.running  # `start` returns only once it answers

    def _own(self) -> RedisServer | TansuBroker | PostgresServer:
        if self.server is None:
            raise RuntimeError(f"{self.name} at {self.address} was not started by the devstack")
        return self.server

    def stop(self) -> None:
        """A deliberate stop: the supervisor leaves it down until `start`."""
        with self.lock:
            self.wanted = False
            self._own().stop()

    def kill(self) -> None:
        """SIGKILL, as a crash would (the supervisor notices)."""
        self._own().kill()

    def clean_up(self) -> None:
        """After a crash: reap the process, close its log."""
        with self.lock:
            self._own().stop()

    def start(self) -> None:
        """Start again on the same port (Redis reloads its append-only file; the memory
        broker starts empty, so the topics are created again)."""
        with self.lock:
            self.wanted = True
            with terminal_interrupt_blocked():
                self._own().start()
            if self._after_start is not None:
                self._after_start()

    def restart(self) -> None:
        self.stop()
        self.start()
