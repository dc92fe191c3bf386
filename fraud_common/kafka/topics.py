"""Idempotent topic creation with the contract's partition counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from fraud_common.kafka.config import admin_config
from fraud_common.settings import ServiceSettings

log = logging.getLogger(__name__)

DECISIONS_TOPIC = "decisions"
"""Every stored decision (key = userId, value = the Decision JSON as stored), for the
archive; the detector's ``DECISIONS_TOPIC`` setting names it ('' turns it off)."""

SETUP_ERRORS: tuple[type[Exception], ...] = (KafkaException, TimeoutError)
"""What `ensure_topics` raises when the broker cannot be reached in time."""


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
    decisions: str | None = DECISIONS_TOPIC,
) -> list[TopicSpec]:
    """The contract's topics: two work topics and their dead-letter topics, and the
    decisions topic (partitioned like ``transactions``, keyed by user; None: not)."""
    specs = [
        TopicSpec(transactions, transactions_partitions, replication_factor),
        TopicSpec(f"{transactions}.dlq", 1, replication_factor),
        TopicSpec(alerts, alerts_partitions, replication_factor),
        TopicSpec(f"{alerts}.dlq", 1, replication_factor),
    ]
    if decisions:
        specs.append(TopicSpec(decisions, transactions_partitions, replication_factor))
    return specs


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


def ensure_service_topics(
    settings: ServiceSettings, *, timeout: float, decisions: str | None = DECISIONS_TOPIC
) -> None:
    """`ensure_topics` for the contract's topics as ``settings`` name and size them
    (``decisions``: the decisions topic's name, None for none).

    Raises one of `SETUP_ERRORS` when the broker cannot be reached within ``timeout``.
    """
    specs = contract_topics(
        settings.transactions_topic,
        settings.alerts_topic,
        transactions_partitions=settings.transactions_partitions,
        alerts_partitions=settings.alerts_partitions,
        replication_factor=settings.topic_replication_factor,
        decisions=decisions,
    )
    ensure_topics(
        settings.kafka_bootstrap_servers,
        specs,
        timeout=timeout,
        extra=settings.kafka_extra_config,
    )


def try_ensure_service_topics(settings: ServiceSettings, *, timeout: float) -> bool:
    """`ensure_service_topics`, where a broker that is not up yet is only a warning.

    For a service that must start anyway (never crash-loop) and copes with missing
    topics meanwhile; returns whether the topics are known to exist.
    """
    try:
        ensure_service_topics(settings, timeout=timeout)
    except SETUP_ERRORS:
        log.warning("could not ensure topics; the broker may not be up yet", exc_info=True)
        return False
    return True
