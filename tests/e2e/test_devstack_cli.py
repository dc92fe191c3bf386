"""`python tools/devstack.py up` (what `make dev` runs): ready, then SIGTERM or a Ctrl-C
stops everything it started; meanwhile it restarts a service or Redis that dies, and stops
when the broker (topics in memory) dies."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tools.devstack import REPO, http_ok
from tools.local_services import free_port, port_open, wait_for

pytestmark = pytest.mark.e2e


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (by parent links in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children(pid: int) -> dict[int, str]:
    """Direct children of ``pid`` with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found[int(entry.name)] = command
    return found


def child_running(pid: int, marker: str) -> int | None:
    """The child of ``pid`` whose command line contains ``marker`` (a gunicorn master's
    app, ``redis-server``, ``tansu``)."""
    matches = [child for child, command in children(pid).items() if marker in command]
    assert len(matches) <= 1, matches
    return matches[0] if matches else None


class Up:
    """``tools/devstack.py up`` as a subprocess in its own process group (as a shell runs
    a foreground job), on free ports, its output collected line by line."""

    def __init__(self, state_dir: Path) -> None:
        self.ports = {"transaction": free_port(), "detector": free_port(), "alert": free_port()}
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "API_KEYS")
        }
        command = [
            sys.executable,
            str(REPO / "tools" / "devstack.py"),
            "up",
            "--transaction-port", str(self.ports["transaction"]),
            "--detector-port", str(self.ports["detector"]),
            "--alert-port", str(self.ports["alert"]),
            "--state-dir", str(state_dir),
            "--transactions-topic", "transactions-cli",
            "--alerts-topic", "fraud-alerts-cli",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    @property
    def text(self) -> str:
        return "".join(self.output)

    def wait_line(self, needle: str, timeout: float = 90.0, *, exits: bool = False) -> str:
        """The first output line containing ``needle``, waiting for it (``exits``: the
        devstack may exit meanwhile, as after the line that says it stops)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.output:
                if needle in line:
                    return line
            if not exits:
                assert self.process.poll() is None, "devstack exited:\n" + self.text
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout} s:\n" + self.text
            try:
                self.output.append(self._lines.get(timeout=1))
            except queue.Empty:
                continue

    def health(self, name: str) -> str:
        path = "/api/v1/health" if name == "transaction" else "/health"
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def finish(self) -> None:
        """Kill the devstack if a test left it running; collect the rest of its output."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        while not self._lines.empty():
            self.output.append(self._lines.get())


@pytest.mark.parametrize("stop", ["sigterm", "ctrl-c"])
def test_up_prints_ready_and_a_stop_leaves_nothing_behind(tmp_path: Path, stop: str) -> None:
    up = Up(tmp_path)
    process, ports = up.process, up.ports
    try:
        ready = up.wait_line("ready")
        for port in ports.values():
            assert f"http://127.0.0.1:{port}" in ready
        assert http_ok(f"http://127.0.0.1:{ports['transaction']}/api/v1/health")
        assert http_ok(f"http://127.0.0.1:{ports['detector']}/health")
        assert http_ok(f"http://127.0.0.1:{ports['alert']}/health")
        started = descendants(process.pid)
        # broker, redis, 3 gunicorn masters, >= 4 workers
        assert len(started) >= 9, started

        stopping = time.monotonic()
        if stop == "sigterm":
            process.send_signal(signal.SIGTERM)
        else:  # a terminal's Ctrl-C: SIGINT to the whole foreground process group
            os.killpg(process.pid, signal.SIGINT)
        assert process.wait(30) == 0
        print(f"{stop}: stopped in {time.monotonic() - stopping:.1f} s")
    finally:
        up.finish()
    text = up.text
    assert "devstack: stopped" in text
    left = [pid for pid in started if alive(pid)]
    assert not left, f"left running: {left}"
    for port in ports.values():
        assert not port_open(port), f"port {port} still open"


def test_up_restarts_what_dies_and_stops_when_the_broker_dies(tmp_path: Path) -> None:
    """SIGKILL a service's gunicorn master: the devstack says so and brings it back, the
    others untouched. SIGKILL redis-server: back on its append-only file, a transaction
    accepted before is still there. SIGKILL the broker (topics in memory): the devstack
    says what was lost and stops everything, with status 1."""
    up = Up(tmp_path)
    process = up.process
    try:
        up.wait_line("ready")
        started = descendants(process.pid)
        master = child_running(process.pid, "transaction_service:create_app()")
        others = {
            app: child_running(process.pid, app)
            for app in ("fraud_detection:create_app()", "alert_service:create_app()")
        }
        assert master is not None and None not in others.values(), children(process.pid)

        os.kill(master, signal.SIGKILL)
        up.wait_line(
            "devstack: transaction-service exited with -9 (SIGKILL); "
            "restarting in 0.5 s (restart 1)"
        )
        wait_for(
            lambda: (
                child_running(process.pid, "transaction_service:create_app()") not in (None, master)
                and http_ok(up.health("transaction"))
            ),
            timeout=60,
            interval=0.2,
            what="a new transaction-service master answering 200",
        )
        up.wait_line("devstack: transaction-service is back")
        assert {app: child_running(process.pid, app) for app in others} == others

        url = f"http://127.0.0.1:{up.ports['transaction']}/api/v1/transactions"
        body = {"userId": "cli-redis", "amount": "12.00", "currency": "EUR", "location": "Rome"}
        response = requests.post(url, json=body, timeout=10)
        assert response.status_code == 201, response.text
        transaction_id = response.json()["transactionId"]
        redis_pid = child_running(process.pid, "redis-server")
        assert redis_pid is not None
        os.kill(redis_pid, signal.SIGKILL)
        up.wait_line("devstack: redis exited with -9 (SIGKILL); restarting in 0.5 s (restart 1)")
        up.wait_line("devstack: redis is back")
        assert child_running(process.pid, "redis-server") not in (None, redis_pid)
        wait_for(
            lambda: http_ok(up.health("transaction")),
            timeout=60,
            interval=0.2,
            what="the transaction-service healthy on the restarted Redis",
        )
        record = requests.get(f"{url}/{transaction_id}", timeout=10)
        assert record.status_code == 200, record.text  # kept in the append-only file
        assert record.json()["amount"] == "12.00"

        broker = child_running(process.pid, "tansu")
        assert broker is not None
        running = descendants(process.pid)
        os.kill(broker, signal.SIGKILL)
        line = up.wait_line("devstack: kafka exited with -9 (SIGKILL)", exits=True)
        assert "topics in memory" in line and "stops" in line
        assert process.wait(30) == 1
    finally:
        up.finish()
    text = up.text
    print("\n".join(line for line in text.splitlines() if line.startswith("devstack")))
    assert "devstack: stopped" in text
    assert "restarting" not in text.split("kafka exited", 1)[1]  # the broker stays dead
    left = [pid for pid in started | running if alive(pid)]
    assert not left, f"left running: {left}"
    for port in up.ports.values():
        assert not port_open(port), f"port {port} still open"
