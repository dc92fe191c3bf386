"""Detector drain: stop the detector, preload a backlog onto the ``transactions`` topic,
start it (with 1, then 2 processes), time until every transaction is decided.

The backlog is produced straight to the topic with the services' producer settings
(idempotent, acks=all; lingering longer, for speed) and the shared `Transaction` schema,
each with its USD value stamped as the transaction-service would. Users are at home and
their transactions 5 minutes apart in event time, ~1% large: ~1% alert, as live.

Done is read in Redis: the detector keeps each partition in order, so the backlog is
decided once the last message of every partition is (polled every 20 ms), and then every
decision of the backlog is checked to be there. The rate runs from the first decision
(the first message of some partition) to the last, so the detector's start (gazetteer,
group join) is reported apart, as ``startup_s``.

Needs the stack the bench started itself (`tools.stack.DevStack`), whose supervision API
stops and starts the detector (`ServiceProcess.stop` is deliberate: the supervisor leaves
it down). The archive-service, when the stack runs one, is stopped for the drain too, so
it does not share the two cores with the detector (the JSON says so).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from confluent_kafka import KafkaError, Message, Producer

from fraud_common import keys
from fraud_common.kafka.config import producer_config
from fraud_common.money import load_fx_rates
from fraud_common.schemas import Transaction, usd_stamp
from tools.bench.context import Bench
from tools.bench.traffic import Traffic
from tools.local_services import wait_for

SPACING = timedelta(minutes=5)
CHECK_CHUNK = 5000


def backlog(traffic: Traffic, count: int) -> list[Transaction]:
    """``count`` transactions of ``traffic``, with event times ``SPACING`` apart per user
    ending no later than now."""
    rates = load_fx_rates()
    now = datetime.now(UTC)
    per_user = -(-count // traffic.users)
    start = now - SPACING * per_user
    items = []
    for index in range(count):
        body = traffic.body(index)
        amount = Decimal(body["amount"])
        items.append(
            Transaction(
                transactionId=str(uuid.uuid4()),
                userId=body["userId"],
                amount=amount,
                currency=body["currency"],
                location=body["location"],
                timestamp=traffic.event_time(index, start, SPACING),
                receivedAt=now,
                **usd_stamp(amount, body["currency"], rates),
            )
        )
    return items


def preload(bootstrap: str, topic: str, items: list[Transaction]) -> dict[int, tuple[str, str]]:
    """Produce ``items``; returns partition -> (first, last) transaction id on it."""
    producer = Producer(
        producer_config(
            bootstrap,
            client_id="bench-preload",
            delivery_timeout_ms=120_000,
            linger_ms=50,
            extra={"batch.size": 1_000_000, "queue.buffering.max.messages": 200_000},
        )
    )
    placed: dict[int, list[tuple[int, str]]] = {}
    failed: list[str] = []

    def delivered(error: KafkaError | None, message: Message, transaction_id: str) -> None:
        if error is not None:
            failed.append(f"{transaction_id}: {error}")
            return
        offsets = placed.setdefault(message.partition() or 0, [])
        offsets.append((message.offset() or 0, transaction_id))

    for item in items:
        report = functools.partial(_report, delivered, item.transactionId)
        while True:
            try:
                producer.produce(
                    topic,
                    value=item.to_json().encode(),
                    key=item.userId.encode(),
                    on_delivery=report,
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120) or failed:
        raise RuntimeError(f"the preload was not acknowledged: {failed[:3]}")
    ends = {}
    for partition, offsets in placed.items():
        offsets.sort()
        ends[partition] = (offsets[0][1], offsets[-1][1])
    return ends


def _report(
    delivered: Callable[[KafkaError | None, Message, str], None],
    transaction_id: str,
    error: KafkaError | None,
    message: Message,
) -> None:
    delivered(error, message, transaction_id)


def drains(bench: Bench) -> list[dict[str, Any]]:
    stack = bench.stack
    if stack is None or bench.redis_url is None:
        bench.progress("drain: skipped (needs the stack the bench starts itself)")
        return [{"skipped": "needs the stack the bench starts itself (no URLs)"}]
    out = []
    archive = stack.services.get("archive-service")
    if archive is not None:
        bench.progress("drain: stopping the archive-service for the drain")
        archive.stop()
    for processes in bench.sizes.drain_processes:
        out.append(drain(bench, processes))
        if archive is not None:
            out[-1]["archive_service"] = "stopped during the drain"
    return out


def drain(bench: Bench, processes: int) -> dict[str, Any]:
    stack = bench.stack
    assert stack is not None and bench.redis_url is not None
    sizes = bench.sizes
    count = sizes.drain_transactions
    detector = stack.service("detector")
    bench.progress(f"drain with {processes} detector process(es): stopping the detector")
    detector.stop()
    traffic = Traffic(f"{bench.run}n{processes}", users=sizes.drain_users)
    started = time.monotonic()
    items = backlog(traffic, count)
    ends = preload(stack.kafka_bootstrap_servers, stack.transactions_topic, items)
    bench.progress(f"drain: {count:,} transactions preloaded in {time.monotonic() - started:.1f} s")
    firsts = [first for first, _ in ends.values()]
    lasts = [last for _, last in ends.values()]
    client = redis.Redis.from_url(bench.redis_url, socket_timeout=10)
    try:
        detector.env["WEB_CONCURRENCY"] = str(processes)
        launched = time.perf_counter()
        detector.start()
        first_at = _wait_any(client, firsts, sizes.settle_timeout)
        before = bench.monitor.mark()
        bench.progress(f"drain: first decision {first_at - launched:.1f} s after the start")
        last_at = _wait_all(client, lasts, sizes.settle_timeout)
        missing = _missing(client, [item.transactionId for item in items])
        if missing:  # not in order after all (a rebalance): wait for every one
            wait_for(
                lambda: not _missing(client, missing),
                timeout=sizes.settle_timeout,
                interval=0.2,
                what="every decision of the backlog",
            )
            last_at = time.perf_counter()
        cost = bench.cpu_of(before, count)
    finally:
        client.close()
    seconds = last_at - first_at
    summary = {
        "name": f"drain, {processes} process(es)",
        "processes": processes,
        "transactions": count,
        "users": sizes.drain_users,
        "startup_s": round(first_at - launched, 2),
        "seconds": round(seconds, 3),
        "per_second": round(count / seconds, 1) if seconds > 0 else None,
        "per_second_from_start": round(count / (last_at - launched), 1),
        "out_of_order_checked": len(missing),
        **cost,
    }
    detector_ms = cost["cpu_ms_per_item"].get("fraud-detection-service")
    bench.progress(
        f"drain, {processes} process(es): {count:,} in {seconds:.2f} s = "
        f"{summary['per_second'] or 0:,.0f}/s (detector {detector_ms} ms CPU per transaction)"
    )
    detector.wait_healthy(60)
    return summary


def _exists(client: redis.Redis, ids: list[str]) -> list[bool]:
    pipe = client.pipeline(transaction=False)
    for transaction_id in ids:
        pipe.exists(keys.decision(transaction_id))
    return [bool(found) for found in pipe.execute()]


def _missing(client: redis.Redis, ids: list[str]) -> list[str]:
    missing = []
    for start in range(0, len(ids), CHECK_CHUNK):
        chunk = ids[start : start + CHECK_CHUNK]
        missing += [t for t, found in zip(chunk, _exists(client, chunk), strict=True) if not found]
    return missing


def _wait_any(client: redis.Redis, ids: list[str], timeout: float) -> float:
    wait_for(
        lambda: any(_exists(client, ids)),
        timeout=timeout,
        interval=0.02,
        what="the backlog's first decision",
    )
    return time.perf_counter()


def _wait_all(client: redis.Redis, ids: list[str], timeout: float) -> float:
    wait_for(
        lambda: all(_exists(client, ids)),
        timeout=timeout,
        interval=0.02,
        what="the last decision of every partition",
    )
    return time.perf_counter()
