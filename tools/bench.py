"""Measure a running stack (``make bench``; never part of ``make test``).

Against the local stack's URLs by default (start it with ``make dev``):

* single POSTs: ``--requests`` N transactions from ``--concurrency`` C clients, each on
  its own keep-alive connection; throughput and p50/p95/p99 latency;
* batches (``--batches``): POST /api/v1/transactions/batch of ``--batch-size`` items;
* end-to-end alert latency (``--alert-latency`` K): K large transactions, each timed from
  its POST to its alert arriving on the alert-service's live stream.

Bounded in count (at most 100,000 requests) and time (``--max-seconds``), and it only
talks to loopback addresses.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 256


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


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass
class Result:
    name: str
    requests: int = 0
    items: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        ms = {
            f"p{int(f * 100)}_ms": round(percentile(ordered, f) * 1000, 2)
            for f in (0.5, 0.95, 0.99)
        }
        return {
            "name": self.name,
            "requests": self.requests,
            "items": self.items,
            "seconds": round(self.seconds, 3),
            "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "items_per_s": round(self.items / self.seconds, 1) if self.seconds else 0.0,
            **ms,
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
        }


class Poster:
    """Sends POSTs on one keep-alive connection (one per client thread)."""

    def __init__(self, host: str, port: int, api_key: str | None) -> None:
        self.host, self.port = host, port
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["X-API-Key"] = api_key
        self.connection = http.client.HTTPConnection(host, port, timeout=15)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        try:
            self.connection.request("POST", path, data, self.headers)
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=15)
            raise

    def close(self) -> None:
        self.connection.close()


def transaction(user: str, amount: str = "42.00") -> dict[str, Any]:
    return {"userId": user, "amount": amount, "currency": "USD", "location": "Berlin"}


def run_load(
    name: str,
    host: str,
    port: int,
    *,
    path: str,
    total: int,
    concurrency: int,
    deadline: float,
    body: Any,
    items_per_request: int,
    api_key: str | None,
) -> Result:
    """``total`` POSTs of ``body(i)`` from ``concurrency`` threads, until done or deadline."""
    result = Result(name)
    lock = threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        poster = Poster(host, port, api_key)
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                started = time.perf_counter()
                try:
                    status, _ = poster.post(path, body(index))
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        result.errors[type(exc).__name__] += 1
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    result.requests += 1
                    result.statuses[status] += 1
                    result.latencies.append(elapsed)
                    if status == 201:
                        result.items += items_per_request
        finally:
            poster.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 20)
    result.seconds = time.perf_counter() - started
    return result


def alert_latency(
    host: str, port: int, alerts: tuple[str, int], count: int, deadline: float, api_key: str | None
) -> Result:
    """Time from POSTing a large transaction to its alert on the live stream."""
    result = Result("alert end-to-end")
    seen: dict[str, float] = {}
    arrived = threading.Condition()
    connected = threading.Event()

    def follow() -> None:
        connection = http.client.HTTPConnection(*alerts, timeout=30)
        headers = {"Accept": "text/event-stream"}
        if api_key:  # the alert-service's data routes need it too when API_KEYS is set
            headers["X-API-Key"] = api_key
        connection.request("GET", "/api/v1/alerts/stream", headers=headers)
        response = connection.getresponse()
        connected.set()
        while time.monotonic() < deadline:
            line = response.readline()
            if not line:
                return
            if line.startswith(b"data:"):
                alert = json.loads(line[5:])
                transaction_id = alert.get("transaction", {}).get("transactionId")
                with arrived:
                    seen.setdefault(str(transaction_id), time.perf_counter())
                    arrived.notify_all()

    threading.Thread(target=follow, daemon=True).start()
    if not connected.wait(10):
        result.errors["stream did not answer"] += 1
        return result
    poster = Poster(host, port, api_key)
    started_all = time.perf_counter()
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            status, body = poster.post(
                "/api/v1/transactions", transaction(f"bench-e2e-{uuid.uuid4().hex[:12]}", "20000")
            )
            result.requests += 1
            result.statuses[status] += 1
            if status != 201:
                continue
            transaction_id = json.loads(body)["transactionId"]
            with arrived:
                if arrived.wait_for(lambda: transaction_id in seen, timeout=15):  # noqa: B023
                    result.latencies.append(seen[transaction_id] - started)
                    result.items += 1
                else:
                    result.errors["alert not seen within 15 s"] += 1
    finally:
        poster.close()
    result.seconds = time.perf_counter() - started_all
    return result


def show(summary: dict[str, Any]) -> None:
    print(
        f"{summary['name']:<18} {summary['requests']:>6} requests in {summary['seconds']:>7.2f} s"
        f"  {summary['requests_per_s']:>8.1f} req/s  {summary['items_per_s']:>8.1f} txn/s"
        f"  p50 {summary['p50_ms']:>7.2f} ms  p95 {summary['p95_ms']:>7.2f} ms"
        f"  p99 {summary['p99_ms']:>7.2f} ms  statuses {summary['statuses']}"
        + (f"  errors {summary['errors']}" if summary["errors"] else "")
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3001", help="transaction-service")
    parser.add_argument("--alerts-url", default="http://127.0.0.1:5002", help="alert-service")
    parser.add_argument("--requests", type=int, default=2000, help="single POSTs to send")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--users", type=int, default=1000, help="distinct user ids")
    parser.add_argument("--batches", type=int, default=0, help="batch POSTs to send (0: skip)")
    parser.add_argument("--batch-size", type=int, default=100, help="transactions per batch")
    parser.add_argument(
        "--alert-latency", type=int, default=0, help="large transactions to time end to end"
    )
    parser.add_argument("--max-seconds", type=float, default=120.0, help="overall time bound")
    parser.add_argument("--api-key", help="X-API-Key, when the service requires one")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.requests + args.batches * args.batch_size <= MAX_REQUESTS:
        parser.error(f"send between 1 and {MAX_REQUESTS} transactions in all")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        parser.error(f"--concurrency must be 1..{MAX_CONCURRENCY}")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be 1..1000")
    if args.max_seconds <= 0 or args.max_seconds > 3600:
        parser.error("--max-seconds must be in (0, 3600]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        host, port = loopback_address(args.url)
        alerts = loopback_address(args.alerts_url)
    except (ValueError, OSError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.max_seconds
    run = uuid.uuid4().hex[:8]
    users = [f"bench-{run}-{n}" for n in range(max(1, args.users))]
    results = []
    if args.requests:
        results.append(
            run_load(
                "single POST",
                host,
                port,
                path="/api/v1/transactions",
                total=args.requests,
                concurrency=args.concurrency,
                deadline=deadline,
                body=lambda i: transaction(users[i % len(users)]),
                items_per_request=1,
                api_key=args.api_key,
            )
        )
    if args.batches:
        size = args.batch_size
        results.append(
            run_load(
                f"batch of {size}",
                host,
                port,
                path="/api/v1/transactions/batch",
                total=args.batches,
                concurrency=min(args.concurrency, args.batches),
                deadline=deadline,
                body=lambda i: {
                    "transactions": [
                        transaction(users[(i * size + j) % len(users)]) for j in range(size)
                    ]
                },
                items_per_request=size,
                api_key=args.api_key,
            )
        )
    if args.alert_latency:
        results.append(
            alert_latency(host, port, alerts, args.alert_latency, deadline, args.api_key)
        )
    summaries = [r.summary() for r in results]
    if args.json:
        print(json.dumps(summaries, indent=2))
    else:
        for summary in summaries:
            show(summary)
    failed = any(s["errors"] or set(s["statuses"]) - {201} for s in summaries)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
