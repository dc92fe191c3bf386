"""One service under gunicorn, run exactly as its Docker image runs it::

    cd <service-dir> && gunicorn --config gunicorn.conf.py '<package>:create_app()'

Each gunicorn master leads its own process group, so `ServiceProcess.kill` can crash a
service with all its workers at once (SIGKILL), as the fault-injection tests need, and
`ServiceProcess.stop` shuts it down as ``docker stop`` would (SIGTERM, wait, then
SIGKILL). A lock serialises start, stop, kill and the supervisor's restarts, and
`ServiceProcess.wanted` says whether the service should be running (False only after a
deliberate `stop`), which is what `tools.supervision` reads to decide on a restart.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

from fraud_common.settings import ALERT_GROUP, ARCHIVE_GROUP, DETECTOR_GROUP
from tools.local_services import free_port, port_open, wait_for

REPO = Path(__file__).resolve().parent.parent


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
ARCHIVE = ServiceSpec(
    "archive-service", "archive-service", "archive_service:create_app()", "/health", 5003, 5000
)
"""The archiver (PostgreSQL archive of records and decisions): run by the stack beside
`SERVICES` when it has an archive database (`tools.stack.DevStack` ``archive``)."""
CONSUMER_GROUPS = {
    "fraud-detection-service": DETECTOR_GROUP,
    "alert-service": ALERT_GROUP,
    "archive-service": ARCHIVE_GROUP,
}
_ALIASES = {"transaction": 0, "detector": 1, "fraud-detection": 1, "alert": 2}


def spec(name: str) -> ServiceSpec:
    """A service by its name (``alert-service``) or short name (``alert``, ``detector``)."""
    for item in (*SERVICES, ARCHIVE):
        if item.name == name:
            return item
    if name == "archive":
        return ARCHIVE
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


def group_pids(pgid: int) -> list[int]:
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
    # Local runs take the short test keys and .env.example's placeholders (fraud_common.secrets).
    env.setdefault("APP_ENV", "development")
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
    """One service under gunicorn, in its own process group, logging to a file (appended
    to across restarts)."""

    def __init__(
        self, service: ServiceSpec, *, port: int, env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.spec = service
        self.port = port
        self.env = dict(env)
        self.log_path = log_dir / f"{service.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.RLock()
        self.wanted = False
        """True from `start` until a deliberate `stop`; a crash leaves it True."""
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
        process = self.process
        return process is not None and process.poll() is None

    @property
    def master_pid(self) -> int | None:
        """The gunicorn master's pid while it runs (its workers are `pids` minus this)."""
        process = self.process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def returncode(self) -> int | None:
        """The last master's exit status; None while it runs or before the first start."""
        process = self.process
        return None if process is None else process.poll()

    def pids(self) -> list[int]:
        """The gunicorn master and its workers (empty when not running)."""
        if self.process is None:
            return []
        return group_pids(self.process.pid)

    def start(self) -> Self:
        """Start gunicorn (without waiting for health: see `wait_healthy`)."""
        with self.lock:
            if self.running:
                raise RuntimeError(f"{self.name} is already running")
            try:  # a process that was just killed may hold its socket a moment longer
                wait_for(lambda: not port_open(self.port), timeout=10, what=f"port {self.port}")
            except TimeoutError:
                raise RuntimeError(f"port {self.port} for {self.name} is already in use") from None
            self._close_log()
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
            self.wanted = True
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
        """SIGKILL the master and every worker at once, as a crash would (`wanted` stays
        True: a supervisor restarts the service)."""
        with self.lock:
            if self.process is None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.clean_up()

    def kill_master(self) -> int:
        """SIGKILL the gunicorn master alone, as a crash of a container's main process
        would; returns its pid. Its workers are left to `clean_up` (as a container runtime
        kills whatever is left in a container whose main process died)."""
        pid = self.master_pid
        if pid is None:
            raise RuntimeError(f"{self.name} is not running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def clean_up(self, timeout: float = 10.0) -> None:
        """After the master died: SIGKILL what is left of its group, wait until nothing of
        it runs and its port is closed, close the log."""
        with self.lock:
            if self.process is None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self._wait_group_gone(timeout)
            self._close_log()

    def _wait_group_gone(self, timeout: float = 10.0) -> None:
        """Until no process of the group is left (workers outlive a killed master for a
        moment) and the kernel has closed the listening socket (a moment later still)."""
        if self.process is not None:
            pgid = self.process.pid
            wait_for(
                lambda: not group_pids(pgid) and not port_open(self.port),
                timeout=timeout,
                what=f"{self.name} gone and port {self.port} closed",
            )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (gunicorn stops its workers gracefully), wait, then SIGKILL what is left.
        A deliberate stop: a supervisor leaves the service down until `start`."""
        with self.lock:
            self.wanted = False
            if self.process is None:
                return
            self.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
            with contextlib.suppress(ProcessLookupError):  # leftovers: workers, a hung master
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            with contextlib.suppress(TimeoutError):  # stopping goes on with the others anyway
                self._wait_group_gone()
            self._close_log()

    def terminate(self) -> None:
        """SIGTERM the master if it runs (returns at once; `stop` waits)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()

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
