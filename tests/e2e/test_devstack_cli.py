"""`python tools/devstack.py up` (what `make dev` runs): ready, then SIGTERM or a Ctrl-C
stops everything it started."""

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

from tools.devstack import REPO, http_ok
from tools.local_services import free_port, port_open

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


@pytest.mark.parametrize("stop", ["sigterm", "ctrl-c"])
def test_up_prints_ready_and_a_stop_leaves_nothing_behind(tmp_path: Path, stop: str) -> None:
    ports = {"transaction": free_port(), "detector": free_port(), "alert": free_port()}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "API_KEYS")
    }
    command = [
        sys.executable,
        str(REPO / "tools" / "devstack.py"),
        "up",
        "--transaction-port", str(ports["transaction"]),
        "--detector-port", str(ports["detector"]),
        "--alert-port", str(ports["alert"]),
        "--state-dir", str(tmp_path),
        "--transactions-topic", "transactions-cli",
        "--alerts-topic", "fraud-alerts-cli",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 90
        while not any("ready" in line for line in output):
            assert process.poll() is None, "devstack exited:\n" + "".join(output)
            assert time.monotonic() < deadline, "no ready line within 90 s:\n" + "".join(output)
            try:
                output.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        ready = next(line for line in output if "ready" in line)
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
        if process.poll() is None:
            process.kill()
            process.wait()
    while not lines.empty():
        output.append(lines.get())
    text = "".join(output)
    assert "devstack: stopped" in text
    left = [pid for pid in started if alive(pid)]
    assert not left, f"left running: {left}"
    for port in ports.values():
        assert not port_open(port), f"port {port} still open"
