"""The local stack supervises its services (issue 7): SIGKILL each service's gunicorn
master in turn while transactions flow; the stack stays up, the supervisor brings the
service back, and nothing accepted is lost or doubled.

Every transaction has its own user, so the only rule that can fire is the large-amount
one, and only on the amounts above 10,000 USD: the expected alerts are known by
construction (exactly one ``large_transaction_detected`` per large transaction, none
otherwise). Clients retry 503s, 409s and broken connections with the same
Idempotency-Key, as the API invites them to.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis
import requests

from fraud_common import keys
from tests.support.devstack_helpers import start_test_stack, wait_for_stored_alerts
from tools.devstack import Backoff, DevStack, Supervisor
from tools.local_services import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

TOTAL = 1000
SENDERS = 4
LARGE = "large_transaction_detected"
KILLS = ("transaction", "detector", "alert")
GATES = (200, 450, 700)  # accepted transactions before each kill


@dataclass
class Traffic:
    """What the senders did; `gates` hold senders back until the matching kill began,
    so every kill strikes while transactions are still being sent."""

    accepted: int = 0
    sent: int = 0
    retries: int = 0
    ids: dict[str, bool] = field(default_factory=dict)  # transactionId -> large?
    users: dict[str, str] = field(default_factory=dict)  # transactionId -> userId
    lock: threading.Lock = field(default_factory=threading.Lock)
    gates: list[tuple[int, threading.Event]] = field(default_factory=list)

    def reached(self, count: int) -> Callable[[], bool]:
        return lambda: self.accepted >= count

    def pass_gates(self) -> None:
        for count, begun in self.gates:
            if self.accepted >= count:
                assert begun.wait(120), f"the kill at {count} accepted never began"


def send(url: str, run: str, traffic: Traffic, deadline: float) -> list[BaseException]:
    """POST the transactions from `SENDERS` threads; returns the senders' errors."""

    def sender(numbers: range) -> None:
        session = requests.Session()
        for n in numbers:
            large = n % 10 == 0
            user = f"sup-{run}-{n}"
            body = {
                "userId": user,
                "amount": "15000.00" if large else f"{20 + n % 7}.50",
                "currency": "USD",
                "location": "Berlin",
            }
            key = f"sup-{run}-{n}"
            traffic.pass_gates()
            while True:
                assert time.monotonic() < deadline, "sending took too long"
                with traffic.lock:
                    traffic.sent += 1
                try:
                    response = session.post(
                        f"{url}/api/v1/transactions",
                        json=body,
                        headers={"Idempotency-Key": key},
                        timeout=10,
                    )
                except requests.RequestException:
                    response = None
                if response is not None and response.status_code == 201:
                    transaction_id = response.json()["transactionId"]
                    with traffic.lock:
                        traffic.accepted += 1
                        traffic.ids[transaction_id] = large
                        traffic.users[transaction_id] = user
                    break
                assert response is None or response.status_code in (503, 409), (
                    response.status_code,
                    response.text,
                )
                with traffic.lock:
                    traffic.retries += 1
                time.sleep(0.1)  # a client's pause before retrying, not a wait for state

    errors: list[BaseException] = []

    def guarded(numbers: range) -> None:
        try:
            sender(numbers)
        except BaseException as exc:
            errors.append(exc)
            for _, begun in traffic.gates:  # let the injector see it rather than hang
                begun.set()
            raise

    threads = [
        threading.Thread(target=guarded, args=(range(s, TOTAL, SENDERS),), daemon=True)
        for s in range(SENDERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevStack, list[str]]]:
    lines: list[str] = []
    running = start_test_stack(
        tmp_path_factory.mktemp("supervised-stack"),
        log_level="WARNING",
        # A request in flight when its worker dies leaves its key claimed this long
        # (409 to retries); the service's minimum keeps the test short.
        extra_env={"IDEMPOTENCY_IN_FLIGHT_SECONDS": "5"},
        report=lines.append,
    )
    yield running, lines
    running.stop()


def reported_back(lines: list[str], service: str) -> Callable[[], bool]:
    return lambda: any(line.startswith(f"{service} is back") for line in lines)


def others_pids(stack: DevStack, killed: str) -> dict[str, int | None]:
    """The masters of the services not killed, and the broker's and Redis's pids."""
    pids = {
        process.name: process.master_pid
        for process in stack.services.values()
        if process.name != stack.service(killed).name
    }
    assert stack.broker is not None and stack.redis is not None
    pids["kafka"] = stack.broker.pid
    pids["redis"] = stack.redis.pid
    return pids


def test_sigkill_each_master_in_turn_stack_stays_up_nothing_lost_or_doubled(
    supervised: tuple[DevStack, list[str]],
) -> None:
    stack, lines = supervised
    run = uuid.uuid4().hex[:8]
    traffic = Traffic(gates=[(count, threading.Event()) for count in GATES])
    kills: list[str] = []
    injector_errors: list[BaseException] = []

    def inject() -> None:
        try:
            for (count, begun), name in zip(traffic.gates, KILLS, strict=True):
                wait_for(traffic.reached(count), timeout=120, what=f"{count} accepted")
                before = others_pids(stack, name)
                assert None not in before.values(), before
                started = time.monotonic()
                old = stack.kill(name)
                begun.set()
                new = stack.wait_restarted(name, old, timeout=60)
                took = time.monotonic() - started
                assert new != old
                assert stack.restarts(name) == 1
                assert others_pids(stack, name) == before, "the stack did not stay up"
                assert stack.fatal is None
                kills.append(f"{name} pid {old} -> {new} back in {took:.1f} s")
        except BaseException as exc:
            injector_errors.append(exc)
            for _, begun in traffic.gates:
                begun.set()
            raise

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    started = time.monotonic()
    sender_errors = send(stack.service("transaction").url, run, traffic, started + 120)
    injector.join(120)
    assert not injector.is_alive(), "the kills did not finish"
    if injector_errors:
        raise injector_errors[0]
    if sender_errors:
        raise sender_errors[0]
    sent_in = time.monotonic() - started
    assert traffic.accepted == TOTAL
    assert len(traffic.ids) == TOTAL  # one id per transaction, retries included

    for name in KILLS:
        service = stack.service(name).name
        assert f"{service} exited with -9 (SIGKILL); restarting in 0.5 s (restart 1)" in lines
        wait_for(  # the supervisor's own health check reports it a moment later
            reported_back(lines, service), timeout=10, what=f"a line saying {service} is back"
        )

    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    ids = list(traffic.ids)

    def decisions() -> dict[str, str]:
        values = client.mget([keys.decision(i) for i in ids])
        return {i: str(v) for i, v in zip(ids, values, strict=True) if v is not None}

    try:
        wait_for(lambda: len(decisions()) == TOTAL, timeout=60, interval=0.5, what="decisions")
    except TimeoutError:
        pytest.fail(f"only {len(decisions())} of {TOTAL} accepted transactions decided")
    final = {tx: json.loads(raw) for tx, raw in decisions().items()}
    expected = {(tx, LARGE) for tx, large in traffic.ids.items() if large}
    decided = Counter((tx, a["alertType"]) for tx, d in final.items() for a in d["reasons"])
    assert set(decided) == expected and max(decided.values()) == 1
    assert {tx for tx, d in final.items() if d["status"] == "review"} == {t for t, _ in expected}

    found = wait_for_stored_alerts(stack.service("alert").url, traffic.users.values(), expected)
    pairs = Counter((t, k) for t, k, _ in found)
    alert_ids = Counter(a for _, _, a in found)
    stream_entries = client.xlen(keys.ALERTS_STREAM)
    client.close()
    print(
        f"\nsupervision run {run}: {TOTAL} accepted of {traffic.sent} requests "
        f"({traffic.retries} retried) in {sent_in:.1f} s; {len(expected)} alerts expected, "
        f"{len(found)} stored; stream entries {stream_entries}; kills: " + "; ".join(kills)
    )
    assert len(kills) == len(KILLS)
    assert set(pairs) == expected  # every expected alert, no other
    assert max(pairs.values()) == 1 and max(alert_ids.values()) == 1  # each stored once
    assert stream_entries == len(expected)  # live subscribers saw each alert once


class Child:
    """A real process for the supervisor to watch: ``python -c <code>``."""

    def __init__(self, name: str, code: str) -> None:
        self.name = name
        self.code = code
        self.lock = threading.RLock()
        self.wanted = False
        self.process: subprocess.Popen[bytes] | None = None
        self.starts: list[float] = []

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def start(self) -> Child:
        with self.lock:
            self.process = subprocess.Popen([sys.executable, "-c", self.code])
            self.wanted = True
            self.starts.append(time.monotonic())
            return self

    def stop(self) -> None:
        with self.lock:
            self.wanted = False
            if self.process is not None:
                self.process.terminate()
                self.process.wait(10)

    def clean_up(self) -> None:
        if self.process is not None:
            self.process.wait(10)

    def healthy(self) -> bool:
        return self.running


def test_a_crash_loop_backs_off_to_the_cap_and_a_deliberate_stop_stays_down() -> None:
    lines: list[str] = []
    supervisor = Supervisor(lines.append, backoff=Backoff(first=0.1, cap=0.4), interval=0.02)
    crashing = Child("crashing", "raise SystemExit(3)")
    steady = Child("steady", "import time; time.sleep(60)")
    supervisor.watch(crashing.start())
    supervisor.watch(steady.start())
    try:
        wait_for(lambda: supervisor.restarts("crashing") >= 6, timeout=10, what="6 restarts")
        steady.stop()  # as `docker stop`: not restarted
        stopped_at = supervisor.restarts("steady")
        wait_for(lambda: supervisor.restarts("crashing") >= 8, timeout=10, what="8 restarts")
    finally:
        supervisor.stop()
        steady.stop()
    after = supervisor.restarts("crashing")
    assert stopped_at == supervisor.restarts("steady") == 0
    assert not steady.running
    restarts = [line for line in lines if "restarting in" in line]
    delays = [line.split("restarting in ")[1].split(" s")[0] for line in restarts]
    assert delays[:5] == ["0.1", "0.2", "0.4", "0.4", "0.4"], lines
    assert restarts[0] == "crashing exited with 3; restarting in 0.1 s (restart 1)"
    gaps = [b - a for a, b in itertools.pairwise(crashing.starts)]
    assert min(gaps[2:]) >= 0.4  # capped, never a busy loop
    assert len(crashing.starts) == after + 1  # stop() returned: no start after it
