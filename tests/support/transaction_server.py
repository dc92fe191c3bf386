"""The transaction-service under real gunicorn on a free port, and exact topic reads.

`TransactionServer` runs the service exactly as the local stack and the images do
(``cd transaction-service && gunicorn --config gunicorn.conf.py
'transaction_service:create_app()'``) with its settings in the environment.
`read_messages` reads a topic by assigning every partition (no consumer group, so no
group join to wait for) and keeps only the messages a test is interested in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import jsonschema_rs
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from fraud_common.kafka.topics import contract_topics, ensure_topics
from tools.local_services import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = ROOT / "transaction-service"
PARTITIONS = 10


def new_topics(bootstrap: str) -> dict[str, str]:
    """A fresh pair of contract topics (uuid-named); returns the service's env for them."""
    suffix = uuid.uuid4().hex[:10]
    transactions, alerts = f"transactions-{suffix}", f"fraud-alerts-{suffix}"
    ensure_topics(bootstrap, contract_topics(transactions, alerts))
    return {"TRANSACTIONS_TOPIC": transactions, "ALERTS_TOPIC": alerts}


class TransactionServer:
    """gunicorn serving the transaction-service; ``env`` holds its settings."""

    def __init__(self, env: dict[str, str], *, workers: int = 1) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(SERVICE_DIR)]),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self.dir = Path(tempfile.mkdtemp(prefix="transaction-service-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "gunicorn.log"

    def start(self, timeout: float = 30.0) -> Self:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "--config",
                "gunicorn.conf.py",
                "transaction_service:create_app()",
            ],
            cwd=SERVICE_DIR,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(self._answers, timeout=timeout, what=f"transaction-service on {self.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{self.log_text()[-3000:]}")
        try:
            requests.get(f"{self.url}/api/v1/openapi.json", timeout=2)
        except (requests.ConnectionError, requests.Timeout):
            return False
        return True

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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
