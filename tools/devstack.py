"""The local stack without Docker: a broker, Redis and the three services under gunicorn.

`DevStack` starts the embedded Tansu broker and a ``redis-server`` (append-only, so its
data survives a restart) on free ports unless existing ones are given, creates the
topics, then runs each service exactly as its Docker image does::

    cd <service-dir> && gunicorn --config gunicorn.conf.py '<package>:create_app()'

and waits until every health endpoint answers 200. Each gunicorn master leads its own
process group, so `ServiceProcess.kill` can crash a service with all its workers at
once (SIGKILL), as the fault-injection tests need, and `ServiceProcess.stop` shuts it
down as ``docker stop`` would (SIGTERM, wait, then SIGKILL).

``python tools/devstack.py up`` (what ``make dev`` runs) is a thin command line over
`DevStack`: it prints one line containing ``ready`` with the URLs, follows the
services' JSON logs as readable lines, and stops everything it started on Ctrl-C or
SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Self, TextIO

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `tools` and `fraud_common` importable
    sys.path.insert(0, str(REPO))

from confluent_kafka import KafkaException  # noqa: E402

from fraud_common.kafka.topics import contract_topics, ensure_topics  # noqa: E402
from fraud_common.settings import ALERT_GROUP, DETECTOR_GROUP  # noqa: E402
from tools.local_services import (  # noqa: E402
    RedisServer,
    TansuBroker,
    free_port,
    port_open,
    wait_for,
)


@dataclass(frozen=True)
class ServiceSpec:
    """How one service is run and checked."""

    name: str
    directory: str
    app: str
    health_path: str
    host_port: int
    """The contract's host port (the default of ``tools/devstack.py up``)."""
    container_port: int


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "transaction-service",
        "transaction-service",
        "transaction_service:create_app()",
        "/api/v1/health",
        3001,
        3000,
    ),
    ServiceSpec(
        "fraud-detection-service",
        "fraud-detection-service",
        "fraud_detection:create_app()",
        "/health",
        5001,
        5000,
    ),
    ServiceSpec(
        "alert-service", "alert-service", "alert_service:create_app()", "/health", 5002, 5000
    ),
)
_CONSUMER_GROUPS = {"fraud-detection-service": DETECTOR_GROUP, "alert-service": ALERT_GROUP}
_ALIASES = {"transaction": 0, "detector": 1, "fraud-detection": 1, "alert": 2}


def spec(name: str) -> ServiceSpec:
    """A service by its name (``alert-service``) or short name (``alert``, ``detector``)."""
    for item in SERVICES:
        if item.name == name:
            return item
    if name in _ALIASES:
        return SERVICES[_ALIASES[name]]
    raise KeyError(f"no service named {name!r}")


def service_command(service: ServiceSpec) -> list[str]:
    """The command a service runs, here and as its Docker image's CMD."""
    return ["gunicorn", "--config", "gunicorn.conf.py", service.app]


def _gunicorn_argv(service: ServiceSpec) -> list[str]:
    """`service_command` with the gunicorn of the running interpreter's environment."""
    command = service_command(service)
    script = Path(sys.executable).with_name("gunicorn")
    if script.exists():
        return [str(script), *command[1:]]
    return [sys.executable, "-m", "gunicorn", *command[1:]]


def _group_pids(pgid: int) -> list[int]:
    """Live processes of a process group (gunicorn master and workers), from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command (which may hold spaces) start after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return sorted(pids)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status ``url`` answers with; None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our URL
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, urllib.error.URLError):
        return None


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 200."""
    return http_status(url, timeout) == 200


def service_env(
    service: ServiceSpec, port: int, settings: Mapping[str, str | None]
) -> dict[str, str]:
    """The environment a service runs with here: this process's environment with the
    repository and the service directory on PYTHONPATH, unbuffered output, loopback on
    ``port``, then ``settings`` (None removes a variable). The worker count and the
    consumer group are never inherited from the shell: only ``settings`` choose them."""
    env = dict(os.environ)
    paths = [str(REPO), str(REPO / service.directory), env.get("PYTHONPATH", "")]
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "PYTHONUNBUFFERED": "1",
            "HOST": "127.0.0.1",
            "PORT": str(port),
        }
    )
    # gunicorn's control socket defaults to one path per user (~/.gunicorn), which
    # every master of every stack on the machine would fight over.
    env.setdefault("GUNICORN_CMD_ARGS", "--no-control-socket")
    for inherited in (
        "KAFKA_HOST",  # legacy names
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "WEB_CONCURRENCY",  # each service's gunicorn.conf.py default
        "CONSUMER_GROUP",  # never one group for both consumers
    ):
        env.pop(inherited, None)
    for key, value in settings.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class ServiceProcess:
    """One service under gunicorn, in its own process group, logging to a file."""

    def __init__(
        self, service: ServiceSpec, *, port: int, env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.spec = service
        self.port = port
        self.env = dict(env)
        self.log_path = log_dir / f"{service.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @classmethod
    def on_free_port(
        cls, name: str, settings: Mapping[str, str | None], *, log_dir: Path
    ) -> ServiceProcess:
        """A service (by name or short name) on a free port, its environment built by
        `service_env` from ``settings`` (for tests that run one service alone)."""
        service, port = spec(name), free_port()
        return cls(service, port=port, env=service_env(service, port, settings), log_dir=log_dir)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str:
        return self.url + self.spec.health_path

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> list[int]:
        """The gunicorn master and its workers (empty when not running)."""
        if self.process is None:
            return []
        return _group_pids(self.process.pid)

    def start(self) -> Self:
        """Start gunicorn (without waiting for health: see `wait_healthy`)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        try:  # a process that was just killed may hold its socket a moment longer
            wait_for(lambda: not port_open(self.port), timeout=10, what=f"port {self.port}")
        except TimeoutError:
            raise RuntimeError(f"port {self.port} for {self.name} is already in use") from None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            _gunicorn_argv(self.spec),
            cwd=REPO / self.spec.directory,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: kill() takes the workers too,
        )  # and a Ctrl-C in the terminal reaches only the devstack, which stops in order
        return self

    def healthy(self) -> bool:
        return self.running and http_ok(self.health_url)

    def wait_healthy(self, timeout: float = 90.0) -> None:
        self._wait_until(lambda: http_ok(self.health_url), timeout, "to answer 200")

    def wait_serving(self, timeout: float = 90.0) -> None:
        """Until the health endpoint answers at all, whatever its status (a service whose
        broker or Redis is away still serves: it answers 503)."""
        self._wait_until(lambda: http_status(self.health_url) is not None, timeout, "to answer")

    def _wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        def check() -> bool:
            if not self.running:
                raise RuntimeError(f"{self.name} exited during start:\n{self.log_tail()}")
            return ready()

        try:
            wait_for(check, timeout=timeout, interval=0.2, what=f"{self.health_url} {what}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.name} log:\n{self.log_tail()}") from None

    def kill(self) -> None:
        """SIGKILL the master and every worker at once, as a crash would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._wait_group_gone()
        self._close_log()

    def _wait_group_gone(self, timeout: float = 10.0) -> None:
        """Until no process of the group is left (workers outlive a killed master for a
        moment) and the kernel has closed the listening socket (a moment later still)."""
        if self.process is not None:
            pgid = self.process.pid
            wait_for(
                lambda: not _group_pids(pgid) and not port_open(self.port),
                timeout=timeout,
                what=f"{self.name} gone and port {self.port} closed",
            )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (gunicorn stops its workers gracefully), wait, then SIGKILL what is left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # leftovers: workers, a hung master
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        with contextlib.suppress(TimeoutError):  # stopping goes on with the others anyway
            self._wait_group_gone()
        self._close_log()

    def restart(self, timeout: float = 90.0) -> None:
        self.stop()
        self.start()
        self.wait_healthy(timeout)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def _terminal_interrupt_blocked() -> Iterator[None]:
    """Start children with SIGINT blocked (the mask is inherited across exec): a Ctrl-C in
    the terminal reaches the whole foreground process group, and the broker and Redis
    must outlive the services, which the devstack stops first, in order."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Dependency:
    """The broker or Redis: one started here (restartable) or an existing one (not)."""

    def __init__(
        self,
        name: str,
        address: str,
        server: RedisServer | TansuBroker | None,
        *,
        after_start: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.server = server
        self._after_start = after_start

    @property
    def owned(self) -> bool:
        return self.server is not None

    def _own(self) -> RedisServer | TansuBroker:
        if self.server is None:
            raise RuntimeError(f"{self.name} at {self.address} was not started by the devstack")
        return self.server

    def stop(self) -> None:
        self._own().stop()

    def kill(self) -> None:
        self._own().kill()

    def start(self) -> None:
        """Start again on the same port (Redis reloads its append-only file; the memory
        broker starts empty, so the topics are created again)."""
        with _terminal_interrupt_blocked():
            self._own().start()
        if self._after_start is not None:
            self._after_start()

    def restart(self) -> None:
        self.stop()
        self.start()


class DevStack:
    """Broker, Redis and the three services; a context manager; `stop` is idempotent."""

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        log_dir: Path | None = None,
        transaction_port: int = 3001,
        detector_port: int = 5001,
        alert_port: int = 5002,
        detectors: int = 1,
        kafka_bootstrap_servers: str | None = None,
        redis_url: str | None = None,
        transactions_topic: str = "transactions",
        alerts_topic: str = "fraud-alerts",
        log_level: str = "INFO",
        extra_env: Mapping[str, str | None] | None = None,
        consumer_group_suffix: str | None = None,
    ) -> None:
        self.state_dir = (state_dir or REPO / ".devstack").resolve()
        self.log_dir = (log_dir or self.state_dir / "logs").resolve()
        self.ports = {
            "transaction-service": transaction_port,
            "fraud-detection-service": detector_port,
            "alert-service": alert_port,
        }
        self.detectors = detectors
        self.transactions_topic = transactions_topic
        self.alerts_topic = alerts_topic
        self.log_level = log_level
        self.extra_env = dict(extra_env or {})
        self.consumer_group_suffix = consumer_group_suffix
        self._kafka_given = kafka_bootstrap_servers
        self._redis_given = redis_url
        self.broker: Dependency | None = None
        self.redis: Dependency | None = None
        self.services: dict[str, ServiceProcess] = {}

    @classmethod
    def on_free_ports(cls, **kwargs: object) -> DevStack:
        """A stack whose three services listen on free ports (for tests)."""
        ports = {name: free_port() for name in ("transaction_port", "detector_port", "alert_port")}
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

    def service(self, name: str) -> ServiceProcess:
        """A service by name or short name (``transaction``, ``detector``, ``alert``)."""
        return self.services[spec(name).name]

    @property
    def urls(self) -> dict[str, str]:
        return {name: process.url for name, process in self.services.items()}

    def ready_line(self) -> str:
        parts = [f"{name} {process.url}" for name, process in self.services.items()]
        return (
            f"devstack ready: {', '.join(parts)}; dashboard {self.service('alert').url}/; "
            f"kafka {self.kafka_bootstrap_servers}; redis {self.redis_url}; "
            f"logs {self.log_dir}"
        )

    # -- lifecycle ------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> Self:
        """Start everything and wait for every health endpoint; on failure stop what
        was started and raise."""
        try:
            self._start_dependencies()
            self.create_topics()
            for service in SERVICES:
                process = ServiceProcess(
                    service,
                    port=self.ports[service.name],
                    env=self._service_env(service),
                    log_dir=self.log_dir,
                )
                self.services[service.name] = process
                process.start()
            deadline = time.monotonic() + timeout
            for process in self.services.values():
                process.wait_healthy(max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

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
        with _terminal_interrupt_blocked():
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

    def _service_env(self, service: ServiceSpec) -> dict[str, str]:
        settings: dict[str, str | None] = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "REDIS_URL": self.redis_url,
            "LOG_LEVEL": self.log_level,
            "TRANSACTIONS_TOPIC": self.transactions_topic,
            "ALERTS_TOPIC": self.alerts_topic,
        }
        if service.name == "fraud-detection-service":
            settings["WEB_CONCURRENCY"] = str(self.detectors)  # one consumer per worker
        group = _CONSUMER_GROUPS.get(service.name)
        if group and self.consumer_group_suffix:
            settings["CONSUMER_GROUP"] = f"{group}-{self.consumer_group_suffix}"
        return service_env(service, self.ports[service.name], {**settings, **self.extra_env})

    def stop(self) -> None:
        """SIGTERM every service at once, wait for each, then stop the broker and Redis."""
        for process in self.services.values():
            if process.running and process.process is not None:
                process.process.terminate()
        for process in reversed(list(self.services.values())):
            process.stop()
        for dependency in (self.broker, self.redis):
            if dependency is not None and dependency.server is not None:
                dependency.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- readable logs ------------------------------------------------------------------

_COLOURS = {"transaction-service": "36", "fraud-detection-service": "35", "alert-service": "33"}
_LEVEL_COLOURS = {"WARNING": "33", "ERROR": "31", "CRITICAL": "31;1"}
_PLAIN_FIELDS = {"time", "level", "logger", "message", "service", "taskName"}


def readable(line: str, source: str, *, colour: bool = False) -> str:
    """One service log line for a person: JSON lines become ``time LEVEL logger: message
    key=value ...``; anything else (gunicorn's own lines) is shown as it is."""

    def paint(text: str, code: str | None) -> str:
        return f"\033[{code}m{text}\033[0m" if colour and code else text

    prefix = paint(f"{source:<23}", _COLOURS.get(source))
    try:
        record = json.loads(line)
    except ValueError:
        return f"{prefix} {line}"
    if not isinstance(record, dict):
        return f"{prefix} {line}"
    when = str(record.get("time", ""))[11:23] or str(record.get("time", ""))
    level = str(record.get("level", ""))
    extras = " ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in record.items()
        if key not in _PLAIN_FIELDS and key != "exc_info"
    )
    text = f"{prefix} {when} {paint(f'{level:<7}', _LEVEL_COLOURS.get(level))} "
    text += f"{record.get('logger', '')}: {record.get('message', '')}"
    if extras:
        text += f"  {extras}"
    if record.get("exc_info"):
        text += "\n" + str(record["exc_info"])
    return text


class LogFollower:
    """Follows the services' log files (like ``tail -F``) and prints readable lines."""

    def __init__(self, paths: Mapping[str, Path], out: TextIO, *, colour: bool) -> None:
        self._paths = dict(paths)
        self._out = out
        self._colour = colour
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        positions = {name: self._size(path) for name, path in self._paths.items()}
        while True:
            stopping = self._stop.is_set()  # one more pass after stop: the last lines
            for name, path in self._paths.items():
                for line in self._new_lines(path, positions, name):
                    print(readable(line, name, colour=self._colour), file=self._out, flush=True)
            if stopping:
                return
            self._stop.wait(0.2)

    @staticmethod
    def _size(path: Path) -> int:
        """Where following starts: the end of what earlier runs wrote."""
        try:
            return path.stat().st_size
        except OSError:
            return 0

    @staticmethod
    def _new_lines(path: Path, positions: dict[str, int], name: str) -> Iterator[str]:
        try:
            with path.open("rb") as handle:
                handle.seek(positions[name])
                data = handle.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # only whole lines; the rest waits for its newline
        positions[name] += end
        for raw in data[:end].splitlines():
            if raw.strip():
                yield raw.decode("utf-8", errors="replace")


# -- command line -------------------------------------------------------------------


class _Stop(Exception):
    """Raised in the main thread by the SIGTERM/SIGINT handler."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # One stop is enough: further signals are ignored while everything shuts down.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise _Stop(signal.Signals(signum).name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/devstack.py",
        description="Run the fraud detection platform locally without Docker.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up",
        help="start broker, Redis and the three services; Ctrl-C or SIGTERM stops them",
        description="Uses KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set; otherwise starts "
        "Tansu (memory storage) and redis-server (append-only) on free ports.",
    )
    up.add_argument("--transaction-port", type=int, default=3001)
    up.add_argument("--detector-port", type=int, default=5001)
    up.add_argument("--alert-port", type=int, default=5002)
    up.add_argument(
        "--detectors", type=int, default=1, help="detector processes in fraud-detection-group"
    )
    up.add_argument(
        "--state-dir", type=Path, default=REPO / ".devstack", help="Redis data, broker log"
    )
    up.add_argument("--log-dir", type=Path, help="service logs (default STATE_DIR/logs)")
    up.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    up.add_argument("--transactions-topic", default="transactions")
    up.add_argument("--alerts-topic", default="fraud-alerts")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to become ready")
    up.add_argument("--quiet", action="store_true", help="do not print the services' logs")
    return parser


def _up(args: argparse.Namespace) -> int:
    stack = DevStack(
        state_dir=args.state_dir,
        log_dir=args.log_dir,
        transaction_port=args.transaction_port,
        detector_port=args.detector_port,
        alert_port=args.alert_port,
        detectors=args.detectors,
        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        transactions_topic=args.transactions_topic,
        alerts_topic=args.alerts_topic,
        log_level=args.log_level,
    )
    follower: LogFollower | None = None
    if not args.quiet:
        follower = LogFollower(
            {service.name: stack.log_dir / f"{service.name}.log" for service in SERVICES},
            sys.stdout,
            colour=sys.stdout.isatty(),
        )
        follower.start()
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    print("devstack: starting broker, redis and services ...", flush=True)
    status = 0
    try:
        stack.start(timeout=args.timeout)
        print(stack.ready_line(), flush=True)
        while True:
            time.sleep(1.0)
            for process in stack.services.values():
                if process.process is not None and not process.running:
                    print(f"devstack: {process.name} exited ({process.process.returncode})")
                    status = 1
                    raise _Stop("a service exited")
    except _Stop as stop:
        print(f"devstack: stopping ({stop}) ...", flush=True)
    except (RuntimeError, TimeoutError) as exc:
        print(f"devstack: failed to start: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        if follower is not None:
            follower.stop()
        print("devstack: stopped", flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    return 2  # pragma: no cover - argparse rejects other commands


if __name__ == "__main__":
    sys.exit(main())
