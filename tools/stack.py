"""The local stack without Docker: a broker, Redis, PostgreSQL and the services, supervised.

`DevStack` starts the embedded Tansu broker and a ``redis-server`` (append-only, so its
data survives a restart) on free ports unless existing ones are given, creates the
topics, runs each service under gunicorn (`tools.service_process`) and waits until every
health endpoint answers 200. With ``archive`` (the default) it also starts PostgreSQL
(`tools.postgres_server`: initdb into the state directory, a free port; or uses
``archive_database_url``) and the archive-service, and every service gets
``ARCHIVE_DATABASE_URL``. Then a `tools.supervision.Supervisor` watches them, as
compose's ``restart: unless-stopped`` would:

- a service whose master dies is restarted (backoff, a report line saying so);
- a redis-server that dies is restarted on its append-only file: nothing is lost;
- the broker keeps its topics in memory, so its death cannot be undone by a restart
  (the topics and every message not yet consumed are gone): the supervisor reports it
  loudly and sets `DevStack.fatal`; ``tools/devstack.py up`` then stops the stack rather
  than run on as if nothing had been lost.

Broker and Redis given by address are not the stack's: they are neither restarted nor
stopped here. A Redis Cluster is given so (``REDIS_URL`` naming any node) with
``redis_cluster=True`` or ``REDIS_CLUSTER=true`` in the environment: the services get
``REDIS_CLUSTER`` and use the cluster client (`tools.redis_cluster` builds one).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from confluent_kafka import KafkaException

from fraud_common.kafka.topics import contract_topics, ensure_topics
from fraud_common.metrics import MULTIPROC_ENV, prepare_multiprocess_dir
from tools.dependencies import Dependency, terminal_interrupt_blocked
from tools.local_services import RedisServer, TansuBroker, free_port, wait_for
from tools.postgres_server import PostgresServer
from tools.service_process import (
    ARCHIVE,
    CONSUMER_GROUPS,
    REPO,
    SERVICES,
    ServiceProcess,
    ServiceSpec,
    http_ok,
    service_env,
    spec,
)
from tools.supervision import Backoff, Supervisor

log = logging.getLogger(__name__)

BROKER_DEATH = (
    "the broker keeps its topics in memory, so they are gone, and with them every "
    "accepted transaction and alert not yet consumed; a restart cannot bring them back, "
    "so the stack stops instead of running on without them (start it again: make dev)"
)


class DevStack:
    """Broker, Redis and the three services; a context manager; `stop` is idempotent.

    With ``supervise`` (the default) the started stack restarts what dies, see the
    module's docstring; ``report`` receives the supervisor's lines (default: this
    module's logger)."""

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        log_dir: Path | None = None,
        transaction_port: int = 3001,
        detector_port: int = 5001,
        alert_port: int = 5002,
        archive_port: int | None = None,
        archive: bool = True,
        archive_database_url: str | None = None,
        detectors: int = 1,
        kafka_bootstrap_servers: str | None = None,
        redis_url: str | None = None,
        redis_cluster: bool | None = None,
        transactions_topic: str = "transactions",
        alerts_topic: str = "fraud-alerts",
        log_level: str = "INFO",
        extra_env: Mapping[str, str | None] | None = None,
        consumer_group_suffix: str | None = None,
        supervise: bool = True,
        backoff: Backoff | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.state_dir = (state_dir or REPO / ".devstack").resolve()
        self.log_dir = (log_dir or self.state_dir / "logs").resolve()
        self.ports = {
            "transaction-service": transaction_port,
            "fraud-detection-service": detector_port,
            "alert-service": alert_port,
            # Not a contract port (health and metrics only): free unless given, so that
            # two stacks on one machine never collide on it.
            "archive-service": archive_port or free_port(),
        }
        self.archive = archive
        self._postgres_given = archive_database_url
        self.detectors = detectors
        self.transactions_topic = transactions_topic
        self.alerts_topic = alerts_topic
        self.log_level = log_level
        self.extra_env = dict(extra_env or {})
        self.consumer_group_suffix = consumer_group_suffix
        self._kafka_given = kafka_bootstrap_servers
        self._redis_given = redis_url
        # None: the services inherit REDIS_CLUSTER from this environment, if set.
        self.redis_cluster = redis_cluster
        self._supervise = supervise
        self._backoff = backoff
        self._report = report or log.warning
        self.broker: Dependency | None = None
        self.redis: Dependency | None = None
        self.postgres: Dependency | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.supervisor: Supervisor | None = None

    @classmethod
    def on_free_ports(cls, **kwargs: object) -> DevStack:
        """A stack whose three services listen on free ports (for tests)."""
        names = ("transaction_port", "detector_port", "alert_port", "archive_port")
        ports = {name: free_port() for name in names}
        return cls(**ports, **kwargs)  # type: ignore[arg-type]

    # -- addresses ----------------------------------------------------------------

    @property
    def kafka_bootstrap_servers(self) -> str:
        if self.broker is None:
            raise RuntimeError("the stack is not started")
        return self.broker.address

    @property
    def redis_url(self) -> str:
        if self.redis is None:
            raise RuntimeError("the stack is not started")
        return self.redis.address

    @property
    def archive_database_url(self) -> str | None:
        """The archive's PostgreSQL (None without the archive)."""
        return None if self.postgres is None else self.postgres.address

    @property
    def specs(self) -> tuple[ServiceSpec, ...]:
        """The services this stack runs: the three, and the archiver with an archive."""
        return (*SERVICES, ARCHIVE) if self.archive else SERVICES

    def service(self, name: str) -> ServiceProcess:
        """A service by name or short name (``transaction``, ``detector``, ``alert``)."""
        return self.services[spec(name).name]

    @property
    def urls(self) -> dict[str, str]:
        return {name: process.url for name, process in self.services.items()}

    def ready_line(self) -> str:
        parts = [f"{name} {process.url}" for name, process in self.services.items()]
        archive = f"postgres {self.archive_database_url}; " if self.archive else ""
        return (
            f"devstack ready: {', '.join(parts)}; dashboard {self.service('alert').url}/; "
            f"kafka {self.kafka_bootstrap_servers}; redis {self.redis_url}; {archive}"
            f"logs {self.log_dir}"
        )

    # -- lifecycle ------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> Self:
        """Start everything, wait for every health endpoint, then supervise; on failure
        stop what was started and raise."""
        try:
            self._start_dependencies()
            self.create_topics()
            for service in self.specs:
                process = ServiceProcess(
                    service,
                    port=self.ports[service.name],
                    env=self._service_env(service),
                    log_dir=self.log_dir,
                )
                self.services[service.name] = process
                # Each master also empties it on start (gunicorn_hooks.on_starting).
                prepare_multiprocess_dir(self._metrics_dir(service))
                process.start()
            deadline = time.monotonic() + timeout
            for process in self.services.values():
                process.wait_healthy(max(1.0, deadline - time.monotonic()))
            if self._supervise:
                self._start_supervisor()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_supervisor(self) -> None:
        self.supervisor = Supervisor(self._report, backoff=self._backoff)
        for process in self.services.values():
            self.supervisor.watch(process)
        for dependency in (self.redis, self.postgres):
            if dependency is not None and dependency.owned:
                self.supervisor.watch(dependency)
        if self.broker is not None and self.broker.owned:
            self.supervisor.watch(self.broker, fatal=BROKER_DEATH)

    def warm_up(self, *, transactions: int = 20, timeout: float = 90.0) -> float:
        """Send probe transactions (users ``devstack-probe-<n>``, spread over partitions so
        every detector worker gets some) and wait until all are decided; returns the
        seconds it took. Health answers before a detector has joined its group and loaded
        its gazetteer; after this the pipeline answers at full speed."""
        base = self.service("transaction").url
        headers = {"Content-Type": "application/json"}
        keys = self._service_env(SERVICES[0]).get("API_KEYS", "")
        if keys.strip():
            headers["X-API-Key"] = keys.split(",")[0].strip()
        started = time.monotonic()
        pending = []
        for number in range(transactions):
            body = {
                "userId": f"devstack-probe-{number}",
                "amount": "1.00",
                "currency": "USD",
                "location": "Berlin",
            }
            request = urllib.request.Request(  # noqa: S310 - our own URL
                f"{base}/api/v1/transactions", json.dumps(body).encode(), headers, method="POST"
            )
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                pending.append(json.loads(response.read())["transactionId"])

        def decided() -> bool:
            for transaction_id in list(pending):
                request = urllib.request.Request(  # noqa: S310 - our own URL
                    f"{base}/api/v1/transactions/{transaction_id}", headers=headers
                )
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    if json.loads(response.read()).get("status") != "pending":
                        pending.remove(transaction_id)
            return not pending

        wait_for(decided, timeout=timeout, interval=0.2, what="the probe transactions' decisions")
        return time.monotonic() - started

    def _start_dependencies(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with terminal_interrupt_blocked():
            self._start_broker_and_redis()

    def _start_broker_and_redis(self) -> None:
        if self._kafka_given:
            self.broker = Dependency("kafka", self._kafka_given, None)
        else:
            broker = TansuBroker(self.state_dir / "tansu").start()
            self.broker = Dependency(
                "kafka", broker.bootstrap_servers, broker, after_start=self.create_topics
            )
        if self._redis_given:
            self.redis = Dependency("redis", self._redis_given, None)
        else:
            server = RedisServer(self.state_dir / "redis", appendonly=True).start()
            self.redis = Dependency("redis", server.url, server)
        if not self.archive:
            return
        if self._postgres_given:
            self.postgres = Dependency("postgres", self._postgres_given, None)
        else:
            postgres = PostgresServer(self.state_dir / "postgres").start()
            self.postgres = Dependency("postgres", postgres.url, postgres)

    def create_topics(self, timeout: float = 30.0) -> None:
        """The contract's four topics under this stack's names (idempotent)."""
        specs = contract_topics(self.transactions_topic, self.alerts_topic)
        deadline = time.monotonic() + timeout
        while True:
            try:
                ensure_topics(self.kafka_bootstrap_servers, specs)
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _metrics_dir(self, service: ServiceSpec) -> Path:
        """The service's PROMETHEUS_MULTIPROC_DIR: its workers' metric files."""
        return self.state_dir / "metrics" / service.name

    def _service_env(self, service: ServiceSpec) -> dict[str, str]:
        settings: dict[str, str | None] = {
            MULTIPROC_ENV: str(self._metrics_dir(service)),
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "REDIS_URL": self.redis_url,
            **(
                {}
                if self.redis_cluster is None
                else {"REDIS_CLUSTER": str(self.redis_cluster).lower()}
            ),
            "LOG_LEVEL": self.log_level,
            "TRANSACTIONS_TOPIC": self.transactions_topic,
            "ALERTS_TOPIC": self.alerts_topic,
            "ARCHIVE_DATABASE_URL": self.archive_database_url,
        }
        if service.name == "fraud-detection-service":
            settings["WEB_CONCURRENCY"] = str(self.detectors)  # one consumer per worker
        group = CONSUMER_GROUPS.get(service.name)
        if group and self.consumer_group_suffix:
            settings["CONSUMER_GROUP"] = f"{group}-{self.consumer_group_suffix}"
        return service_env(service, self.ports[service.name], {**settings, **self.extra_env})

    def stop(self) -> None:
        """End supervision, SIGTERM every service at once, wait for each (each has the
        contract's 10 s), then stop the broker and Redis."""
        if self.supervisor is not None:
            self.supervisor.stop()
        for process in self.services.values():
            process.terminate()
        for process in reversed(list(self.services.values())):
            process.stop()
        for dependency in (self.broker, self.redis, self.postgres):
            if dependency is not None and dependency.owned:
                dependency.stop()
        if self.postgres is not None and isinstance(self.postgres.server, PostgresServer):
            self.postgres.server.cleanup()  # as root its data lives in a temporary directory

    # -- supervision ------------------------------------------------------------------

    @property
    def fatal(self) -> str | None:
        """Why the stack cannot go on (the broker died), or None."""
        return None if self.supervisor is None else self.supervisor.fatal_reason

    def restarts(self, name: str) -> int:
        """How often the supervisor restarted a service (``redis`` and ``kafka`` too)."""
        key = name if name in ("redis", "kafka", "postgres") else spec(name).name
        return 0 if self.supervisor is None else self.supervisor.restarts(key)

    def kill(self, name: str) -> int:
        """SIGKILL a service's gunicorn master (not a worker), as a crash would; returns
        the dead master's pid, for `wait_restarted`."""
        return self.service(name).kill_master()

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 90.0) -> int:
        """Until the supervisor has brought ``name`` back: a master other than ``old_pid``
        runs and health answers 200. Returns the new master's pid."""
        if self.supervisor is None:
            raise RuntimeError("the stack is not supervised")
        process = self.service(name)
        new_pid = old_pid

        def back() -> bool:
            nonlocal new_pid
            if self.fatal:
                raise RuntimeError(self.fatal)
            new_pid = process.master_pid or old_pid
            return new_pid != old_pid and http_ok(process.health_url)

        try:
            wait_for(back, timeout=timeout, interval=0.2, what=f"{process.name} back")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{process.name} log:\n{process.log_tail()}") from None
        return new_pid

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
