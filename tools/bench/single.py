"""Single POSTs (closed loop at each concurrency, then an open loop) and batches."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tools.bench.context import Bench, Target
from tools.bench.load import Connection, LoadResult, Send, closed_loop, open_loop
from tools.bench.traffic import Traffic

PATH = "/api/v1/transactions"


def poster(traffic: Traffic, extra: dict[str, str] | None = None) -> Send:
    """POST item ``i`` of ``traffic`` with its own Idempotency-Key; the value is the
    transaction id of a 201."""

    def send(connection: Connection, index: int) -> tuple[int, Any]:
        headers = {"Idempotency-Key": traffic.idempotency_key(index), **(extra or {})}
        status, body = connection.request("POST", PATH, traffic.body(index), headers)
        return status, transaction_id(body) if status == 201 else None

    return send


def transaction_id(body: bytes) -> str | None:
    """The id in a 201 (ours: ``transactionId``; tolerant of the original's shapes)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    found = parsed.get("transactionId") or (parsed.get("transaction") or {}).get("id")
    return None if found is None else str(found)


def single(bench: Bench, target: Target, settle: Callable[[LoadResult], None]) -> dict[str, Any]:
    sizes = bench.sizes
    closed = []
    for concurrency in sizes.concurrency:
        traffic = Traffic(f"{bench.run}{target.name[0]}c{concurrency}")
        bench.progress(
            f"{target.name}: single POSTs, closed loop, c={concurrency}, {sizes.closed_seconds:g} s"
        )
        before = bench.monitor.mark()
        result = closed_loop(
            f"single c={concurrency}",
            target.transactions_url,
            poster(traffic),
            concurrency=concurrency,
            seconds=sizes.closed_seconds,
            headers=target.headers,
        )
        summary = {"concurrency": concurrency, **result.summary()}
        summary.update(bench.cpu_of(before, summary["items"]))
        bench.progress(line(summary))
        closed.append(summary)
        settle(result)
    traffic = Traffic(f"{bench.run}{target.name[0]}o")
    count = max(1, round(sizes.open_rate * sizes.open_seconds))
    bench.progress(
        f"{target.name}: single POSTs, open loop, {sizes.open_rate:g}/s offered, {count} requests"
    )
    before = bench.monitor.mark()
    result = open_loop(
        f"single open {sizes.open_rate:g}/s",
        target.transactions_url,
        poster(traffic),
        rate=sizes.open_rate,
        count=count,
        senders=128,
        headers=target.headers,
    )
    opened = {"offered_per_s": sizes.open_rate, **result.summary()}
    opened.update(bench.cpu_of(before, opened["items"]))
    bench.progress(line(opened))
    settle(result)
    return {"closed": closed, "open": opened}


def batches(bench: Bench, target: Target, settle: Callable[[LoadResult], None]) -> list[Any]:
    sizes = bench.sizes
    out = []
    for size in sizes.batch_sizes:
        traffic = Traffic(f"{bench.run}b{size}")

        send = batch_poster(traffic, size)
        bench.progress(
            f"batches of {size}, {sizes.batch_concurrency} clients, {sizes.batch_seconds:g} s"
        )
        before = bench.monitor.mark()
        result = closed_loop(
            f"batch of {size}",
            target.transactions_url,
            send,
            concurrency=sizes.batch_concurrency,
            seconds=sizes.batch_seconds,
            headers=target.headers,
            items_per_request=size,
        )
        summary = {"batch_size": size, **result.summary()}
        summary.update(bench.cpu_of(before, summary["items"]))
        bench.progress(line(summary))
        out.append(summary)
        settle(result)
    return out


def batch_poster(traffic: Traffic, size: int) -> Send:
    """POST batch ``number`` of ``size`` items with its own Idempotency-Key; the value is
    the last transaction id of a 201."""

    def send(connection: Connection, number: int) -> tuple[int, Any]:
        headers = {"Idempotency-Key": traffic.idempotency_key(number, "batch")}
        body = traffic.batch(number, size)
        status, answer = connection.request("POST", f"{PATH}/batch", body, headers)
        ids = json.loads(answer).get("transactionIds") if status == 201 else None
        return status, ids[-1] if ids else None

    return send


def line(summary: dict[str, Any]) -> str:
    return (
        f"{summary['name']}: {summary['items_per_s']:,.0f} items/s "
        f"({summary['requests']} requests in {summary['seconds']:.1f} s), "
        f"p50 {summary['p50_ms']} p99 {summary['p99_ms']} max {summary['max_ms']} ms, "
        f"statuses {summary['statuses']}"
        + (f", errors {summary['errors']}" if summary["errors"] else "")
        + (f", {summary['unsent']} never sent (past the time bound)" if "unsent" in summary else "")
    )
