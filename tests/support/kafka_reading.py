"""Bounded reads of a topic, for assertions on what a service published."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Message


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int,
    timeout: float = 20.0,
    extra: dict[str, Any] | None = None,
) -> list[Message]:
    """Read ``topic`` from the beginning until ``expect`` messages arrived or ``timeout`` s
    passed; returns what arrived (the caller asserts on the count)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": 10,
            **(extra or {}),
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(messages) < expect:
            for message in consumer.consume(100, 0.2):
                if message.error() is None:
                    messages.append(message)
    finally:
        consumer.close()
    return messages
