"""librdkafka configurations, built from plain values.

Chosen to behave on Apache Kafka and to start fast on the embedded Tansu broker used
without Docker: Tansu's group join waits about half of ``session.timeout.ms``, so that
is kept at Kafka's minimum (6 s), which also lets a killed consumer's partitions move
on quickly.

``fetch.wait.max.ms`` is a setting (``KAFKA_FETCH_WAIT_MAX_MS``) because the two brokers
differ: Apache Kafka answers a fetch as soon as data arrives, so a long wait (its default,
500 ms) costs no latency and spares the broker an empty fetch every few milliseconds per
idle consumer; Tansu holds a fetch for part of the wait even when data is there, so on
Tansu every consumer hop adds up to the wait and the local stack keeps it at 10 ms (at
the price of ~4% of a core per idle consumer in Tansu; docs/benchmarks/ingest.md).
"""

from __future__ import annotations

from typing import Any


def producer_config(
    bootstrap_servers: str,
    *,
    client_id: str,
    delivery_timeout_ms: int = 5000,
    linger_ms: int = 2,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Idempotent, acks=all producer: a delivery report means durably on the topic.

    ``delivery_timeout_ms`` bounds how long a send may wait for the broker before it
    fails (the HTTP API turns that into a 503 well inside 5 s).
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger_ms,
        "message.timeout.ms": delivery_timeout_ms,
        "request.timeout.ms": min(delivery_timeout_ms, 30000),
        "socket.keepalive.enable": True,
        "compression.type": "lz4",
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
    }
    config.update(extra or {})
    return config


def consumer_config(
    bootstrap_servers: str,
    *,
    group_id: str,
    client_id: str,
    fetch_wait_max_ms: int = 10,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """At-least-once consumer: offsets are stored by the loop only after the work is done,
    and committed by librdkafka (periodically, on rebalance and on close)."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "client.id": client_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        "enable.auto.offset.store": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 300000,
        "fetch.wait.max.ms": fetch_wait_max_ms,
        # librdkafka prefetches up to 64 MB by default; a backlog fills it and the
        # detector's RSS went 95 -> 170 MB with it. 4 MB still holds ~16 batches of 500
        # (drain rate unchanged within noise; docs/benchmarks/detector.md, "Memory").
        "queued.max.messages.kbytes": 4096,
        "partition.assignment.strategy": "cooperative-sticky",
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
    }
    config.update(extra or {})
    return config


def admin_config(bootstrap_servers: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers}
    config.update(
        {k: v for k, v in (extra or {}).items() if k.startswith(("security.", "sasl.", "ssl."))}
    )
    return config
