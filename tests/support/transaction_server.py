"""The transaction-service under real gunicorn on a free port, and exact topic reads.

`transaction_server` runs the service with `tools.devstack.ServiceProcess`, exactly as
the local stack and the images do (``cd transaction-service && gunicorn --config
gunicorn.conf.py 'transaction_service:create_app()'``), with its settings in the
environment.
`read_messages` reads a topic by assigning every partition (no consumer group, so no
group join to wait for) and keeps only the messages a test is interested in.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema_rs
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from fraud_common.kafka.topics import contract_topics, ensure_topics
from tools.devstack import ServiceProcess

PARTITIONS = 10


def new_topics(bootstrap: str) -> dict[str, str]:
    """A fresh pair of contract topics (uuid-named); returns the service's env for them."""
    suffix = uuid.uuid4().hex[:10]
    transactions, alerts = f"transactions-{suffix}", f"fraud-alerts-{suffix}"
    ensure_topics(bootstrap, contract_topics(transactions, alerts))
    return {"TRANSACTIONS_TOPIC": transactions, "ALERTS_TOPIC": alerts}


@contextmanager
def transaction_server(
    settings: Mapping[str, str | None], *, workers: int = 1, timeout: float = 30.0
) -> Iterator[ServiceProcess]:
    """The transaction-service under gunicorn on a free port, serving (see
    `ServiceProcess.wait_serving`) until the block ends; ``settings`` go into its
    environment. Its log is in a directory of its own."""
    service = ServiceProcess.on_free_port(
        "transaction",
        {"WEB_CONCURRENCY": str(workers), "LOG_LEVEL": "WARNING", **settings},
        log_dir=Path(tempfile.mkdtemp(prefix="transaction-service-")),
    )
    try:
        service.start().wait_serving(timeout)
        yield service
    finally:
        service.stop()


def read_messages(
    bootstrap: str,
    topic: str,
    *,
    expect: int,
    partitions: int,
    keep: Callable[[Message], bool] = lambda _: True,
    timeout: float = 30.0,
    settle: float = 0.0,
) -> list[Message]:
    """Messages of ``topic`` (from the beginning) that ``keep`` accepts, until ``expect``
    of them arrived or ``timeout`` passed; then reads on for ``settle`` seconds more, so a
    test can assert that no extra message follows."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-assign-only",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while True:
            now = time.monotonic()
            if settle_until is None and (len(found) >= expect or now >= deadline):
                settle_until = now + settle
            if settle_until is not None and now >= settle_until:
                return found
            for message in consumer.consume(500, 0.1):
                if message.error() is None and keep(message):
                    found.append(message)
    finally:
        consumer.close()


def assert_conforms(document: dict[str, Any], path: str, method: str, response: Any) -> None:
    """Fail unless ``response`` (a `requests.Response`) is documented for the operation
    of ``document`` (an OpenAPI 3.1 dict): its status, JSON content type, required
    headers and body schema."""
    operation = document["paths"][path][method.lower()]
    spec = operation["responses"].get(str(response.status_code))
    assert spec is not None, f"{method} {path}: status {response.status_code} not documented"
    if "$ref" in spec:
        spec = document["components"]["responses"][spec["$ref"].rsplit("/", 1)[-1]]
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    for name, header in spec.get("headers", {}).items():
        if header.get("required"):
            assert name in response.headers, f"{method} {path}: header {name} missing"
    schema = spec["content"]["application/json"]["schema"]
    validator = jsonschema_rs.Draft202012Validator({"components": document["components"], **schema})
    errors = [str(e) for e in validator.iter_errors(response.json())]
    assert not errors, f"{method} {path} {response.status_code}: {errors}\n{response.text}"
