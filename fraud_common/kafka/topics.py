"""Idempotent topic creation with the contract's partition counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from fraud_common.kafka.config import admin_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1


def contract_topics(
    transactions: str = "transactions",
    alerts: str = "fraud-alerts",
    *,
    transactions_partitions: int = 10,
    alerts_partitions: int = 5,
    replication_factor: int = 1,
) -> list[TopicSpec]:
    """The four topics of the contract: two work topics and their dead-letter topics."""
    return [
        TopicSpec(transactions, transactions_partitions, replication_factor),
        TopicSpec(f"{transactions}.dlq", 1, replication_factor),
        TopicSpec(alerts, alerts_partitions, replication_factor),
        TopicSpec(f"{alerts}.dlq", 1, replication_factor),
    ]


def ensure_topics(
    bootstrap_servers: str,
    specs: list[TopicSpec],
    *,
    timeout: float = 15.0,
    extra: dict[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    Already existing topics are left as they are (TOPIC_ALREADY_EXISTS is success).
    Raises `KafkaException` (or `TimeoutError` from the admin futures) when the broker
    cannot be reached within ``timeout``.
    """
    admin = AdminClient(admin_config(bootstrap_servers, extra))
    futures = admin.create_topics(
        [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication_factor)
            for s in specs
        ],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    if created:
        log.info("created topics", extra={"topics": created})
    return created
