"""HTTP load on keep-alive connections: a closed loop (C clients, each sending its next
request when the last one answered) and an open loop (requests at fixed scheduled
times, whatever the server does).

The open loop's latency runs from each request's *scheduled* send time, not from when a
busy sender got round to it, so a stall counts against every request it delayed (no
coordinated omission). The schedule and the latency bookkeeping take an injectable clock
and sleep, so they are tested with a fake clock.

Only loopback addresses are accepted (`loopback_address`).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tools.bench.stats import latency_summary, rate

MAX_CONCURRENCY = 256
MAX_REQUESTS = 1_000_000
TIMEOUT_S = 15.0


def loopback_address(url: str) -> tuple[str, int]:
    """(host, port) of ``url``; raises ValueError unless it resolves to loopback only."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url}: only http:// URLs")
    port = parts.port or 80
    for info in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP):
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise ValueError(f"{url}: {info[4][0]} is not a loopback address; bench refuses")
    return parts.hostname, port


class Connection:
    """One keep-alive HTTP connection (one per sender thread); reconnects after an error."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        self.host, self.port = loopback_address(url)
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._connection = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        try:
            self._connection.request(method, path, data, {**self.headers, **(headers or {})})
            response = self._connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)
            raise

    def close(self) -> None:
        self._connection.close()


Send = Callable[[Connection, int], tuple[int, Any]]
"""Sends request ``i`` on a connection; returns (HTTP status, whatever the caller needs)."""


@dataclass
class Outcome:
    """One request: when it was scheduled (open loop) or sent, when it answered."""

    index: int
    scheduled: float
    finished: float
    status: int
    value: Any = None

    @property
    def latency(self) -> float:
        return self.finished - self.scheduled


@dataclass
class LoadResult:
    name: str
    seconds: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    items_per_request: int = 1
    unsent: int = 0
    """Requests of an open loop never sent: its time bound passed first (saturation)."""

    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if 200 <= o.status < 300]

    def summary(self) -> dict[str, Any]:
        ok = self.ok()
        return {
            "name": self.name,
            "requests": len(self.outcomes),
            "seconds": round(self.seconds, 3),
            "requests_per_s": rate(len(ok), self.seconds),
            "items": len(ok) * self.items_per_request,
            "items_per_s": rate(len(ok) * self.items_per_request, self.seconds),
            **latency_summary(o.latency for o in ok),
            "statuses": {
                str(k): v for k, v in sorted(Counter(o.status for o in self.outcomes).items())
            },
            "errors": dict(self.errors),
            **({"unsent": self.unsent} if self.unsent else {}),
        }


def closed_loop(
    name: str,
    url: str,
    send: Send,
    *,
    concurrency: int,
    seconds: float,
    max_requests: int = MAX_REQUESTS,
    headers: Mapping[str, str] | None = None,
    items_per_request: int = 1,
) -> LoadResult:
    """``concurrency`` clients send back to back for ``seconds`` (or ``max_requests``)."""
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be 1..{MAX_CONCURRENCY}")
    result = LoadResult(name, items_per_request=items_per_request)
    lock = threading.Lock()
    counter = iter(range(max_requests))
    started = time.perf_counter()
    deadline = started + seconds

    def client() -> None:
        connection = Connection(url, headers)
        try:
            while time.perf_counter() < deadline:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                sent = time.perf_counter()
                try:
                    status, value = send(connection, index)
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        result.errors[type(exc).__name__] += 1
                    continue
                outcome = Outcome(index, sent, time.perf_counter(), status, value)
                with lock:
                    result.outcomes.append(outcome)
        finally:
            connection.close()

    _run_threads(client, concurrency, seconds)
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class Schedule:
    """Request ``i`` is due at ``start + i / rate``."""

    rate: float
    start: float

    def due(self, index: int) -> float:
        return self.start + index / self.rate


class OpenLoop:
    """Sends ``count`` requests at ``rate``/s from ``senders`` threads; each thread takes
    the next index, sleeps until it is due, sends, and records the latency from the due
    time. With too few senders the requests go out late and their latency shows it."""

    def __init__(
        self,
        send: Callable[[int], tuple[int, Any]],
        *,
        rate: float,
        count: int,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or not 1 <= count <= MAX_REQUESTS:
            raise ValueError("rate must be > 0 and count 1..MAX_REQUESTS")
        self.send, self.rate, self.count = send, rate, count
        self.clock, self.sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = 0
        self._stopped = False
        self.schedule = Schedule(rate, 0.0)
        self.outcomes: list[Outcome] = []
        self.errors: Counter[str] = Counter()

    def start(self) -> None:
        self.schedule = Schedule(self.rate, self.clock())

    def stop(self) -> None:
        """No sender takes another request; those in flight finish."""
        with self._lock:
            self._stopped = True

    @property
    def unsent(self) -> int:
        with self._lock:
            return self.count - self._next

    def sender(self) -> None:
        """One sender's loop (run it in a thread, or directly in a test)."""
        while True:
            with self._lock:
                index = self._next
                if index >= self.count or self._stopped:
                    return
                self._next += 1
            due = self.schedule.due(index)
            wait = due - self.clock()
            if wait > 0:
                self.sleep(wait)
            try:
                status, value = self.send(index)
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.errors[type(exc).__name__] += 1
                continue
            outcome = Outcome(index, due, self.clock(), status, value)
            with self._lock:
                self.outcomes.append(outcome)


def open_loop(
    name: str,
    url: str,
    send: Send,
    *,
    rate: float,
    count: int,
    senders: int = 32,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """``count`` requests at ``rate``/s (latency from the scheduled time)."""
    local = threading.local()
    connections: list[Connection] = []
    lock = threading.Lock()

    def send_one(index: int) -> tuple[int, Any]:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = Connection(url, headers)
            with lock:
                connections.append(connection)
        return send(connection, index)

    loop = OpenLoop(send_one, rate=rate, count=count)
    loop.start()
    expected = count / rate
    running = _run_threads(loop.sender, min(senders, MAX_CONCURRENCY), expected)
    if running:  # past its bound (saturated): send no more, let those in flight answer
        loop.stop()
        for thread in running:
            thread.join(TIMEOUT_S + 1)
    # closing a connection a sender still uses would fail its request in the client
    for connection in connections:
        connection.close()
    result = LoadResult(name, outcomes=sorted(loop.outcomes, key=lambda o: o.index))
    result.errors = loop.errors
    result.unsent = loop.unsent
    result.seconds = (max((o.finished for o in loop.outcomes), default=0.0)) - loop.schedule.start
    return result


def _run_threads(target: Callable[[], None], count: int, seconds: float) -> list[threading.Thread]:
    """Run ``count`` threads of ``target`` for up to ``seconds`` plus a margin; returns
    those still running at the bound."""
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    bound = time.monotonic() + seconds + TIMEOUT_S + 5
    for thread in threads:
        thread.join(max(0.0, bound - time.monotonic()))
    return [thread for thread in threads if thread.is_alive()]
