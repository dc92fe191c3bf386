"""Process supervision for the local stack, as compose's ``restart: unless-stopped`` does.

One watcher thread per process::

    running ──(exits while wanted)──> report "<name> exited with -9 (SIGKILL);
       ^                              restarting in 0.5 s (restart 1)"
       |                              clean up what is left of it (workers, its port)
       |                              wait the backoff (0.5 s doubling to 10 s)
       └──────── start again ─────────┘  same command, port, environment, log file

- A process stopped on purpose (``wanted`` False, as after ``docker stop``) stays down.
- The backoff grows with each restart that did not stay up ``reset_after`` seconds and
  returns to its first step after one that did, so a crash loop costs one start per
  ``cap`` seconds, never a busy loop.
- A process whose death cannot be undone by a restart (the memory-storage broker: its
  topics die with it) is watched with ``fatal=True``: the supervisor reports it and sets
  `Supervisor.fatal`, and the owner stops the stack.

The watched object is anything with the `Supervised` shape: `tools.service_process.
ServiceProcess` and `tools.dependencies.Dependency`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


class Supervised(Protocol):
    """What the supervisor needs of a process it watches."""

    @property
    def name(self) -> str: ...

    @property
    def lock(self) -> threading.RLock: ...

    @property
    def wanted(self) -> bool: ...

    @property
    def running(self) -> bool: ...

    @property
    def returncode(self) -> int | None: ...

    def clean_up(self) -> None: ...

    def start(self) -> object: ...

    def healthy(self) -> bool: ...


@dataclass(frozen=True)
class Backoff:
    """Capped exponential delay before a restart."""

    first: float = 0.5
    factor: float = 2.0
    cap: float = 10.0
    reset_after: float = 30.0
    """A process that stayed up this long starts the next backoff from ``first``."""

    def delay(self, attempt: int) -> float:
        """The delay before restart number ``attempt`` (1-based) of one crash series."""
        return float(min(self.cap, self.first * self.factor ** max(0, attempt - 1)))


def describe_exit(code: int | None) -> str:
    """``-9 (SIGKILL)`` for a signal, the code otherwise."""
    if code is None:
        return "an unknown status"
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            return str(code)
    return str(code)


class Supervisor:
    """Watches processes and restarts the ones that die; `stop` ends the watching."""

    def __init__(
        self,
        report: Callable[[str], None],
        *,
        backoff: Backoff | None = None,
        interval: float = 0.2,
    ) -> None:
        self._report = report
        self.backoff = backoff or Backoff()
        self._interval = interval
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._restarts: dict[str, int] = {}
        self._counts = threading.Lock()
        self.fatal = threading.Event()
        """Set when a process watched with ``fatal=True`` died; see `fatal_reason`."""
        self.fatal_reason: str | None = None

    def watch(self, unit: Supervised, *, fatal: str | None = None) -> None:
        """Restart ``unit`` whenever it dies while wanted; with ``fatal`` (the reason a
        restart cannot help), report its death with that reason and set `fatal`."""
        with self._counts:
            self._restarts.setdefault(unit.name, 0)
        thread = threading.Thread(
            target=self._watch, args=(unit, fatal), name=f"supervise-{unit.name}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def restarts(self, name: str) -> int:
        """How many times the supervisor started ``name`` again after it died."""
        with self._counts:
            return self._restarts.get(name, 0)

    def stop(self) -> None:
        """Stop watching (no restart begins after this returns)."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(30)

    def _watch(self, unit: Supervised, fatal: str | None) -> None:
        attempt = 0  # restarts in the current crash series
        started = time.monotonic()
        back_since: float | None = None  # restarted, not yet healthy
        why = ""
        while not self._stopping.is_set():
            if unit.running or not unit.wanted:
                if back_since is not None and unit.running and unit.healthy():
                    took = time.monotonic() - back_since
                    self._report(f"{unit.name} is back (healthy {took:.1f} s after restarting)")
                    back_since = None
                self._stopping.wait(self._interval)
                continue
            with unit.lock:  # a deliberate stop/start in progress finishes first
                if unit.running or not unit.wanted:
                    continue
                why = why or f"exited with {describe_exit(unit.returncode)}"
                if fatal is not None:
                    self.fatal_reason = f"{unit.name} {why}: {fatal}"
                    self._report(self.fatal_reason)
                    self.fatal.set()
                    return
                if time.monotonic() - started >= self.backoff.reset_after:
                    attempt = 0
                attempt += 1
                number = self.restarts(unit.name) + 1
                delay = self.backoff.delay(attempt)
                self._report(f"{unit.name} {why}; restarting in {delay:g} s (restart {number})")
                due = time.monotonic() + delay
                self._clean_up(unit)
            if self._stopping.wait(max(0.0, due - time.monotonic())):
                return
            why = self._start(unit)
            started = time.monotonic()
            back_since = None if why else started

    def _clean_up(self, unit: Supervised) -> None:
        try:
            unit.clean_up()
        except (OSError, TimeoutError) as exc:  # the restart will say whether it matters
            log.warning("cleaning up after %s failed", unit.name, exc_info=True)
            self._report(f"{unit.name}: cleaning up failed: {exc}")

    def _start(self, unit: Supervised) -> str:
        """Start ``unit`` again unless someone stopped or started it meanwhile; the reason
        for the next restart when starting failed, else ""."""
        with unit.lock:
            if unit.running or not unit.wanted:
                return ""
            with self._counts:
                self._restarts[unit.name] += 1
            try:
                unit.start()
            except (OSError, RuntimeError, TimeoutError) as exc:
                log.warning("restarting %s failed", unit.name, exc_info=True)
                return f"failed to start ({exc})"
        return ""
