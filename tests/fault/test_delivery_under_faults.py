"""Nothing lost, nothing doubled: the whole local stack under real faults (issue 3).

While 2,000 transactions are POSTed, the detector and the alert-service are each killed
with SIGKILL twice and brought back by the stack's supervisor (as compose's restart
policy would), and redis-server (append-only persistence on) is SIGKILLed half-way and
brought back on its append-only file by the supervisor. Clients retry 503s with the
same Idempotency-Key, as the API invites them to. Afterwards every accepted transaction
has exactly one decision, every expected alert exists exactly once in the alert-service's
store, and no other alert exists. Expected alerts follow from the scenario by
construction (event timestamps fixed by the test), not from the service's own rules.

Run alone with ``make test-fault`` (``pytest -m fault``).
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import requests
from confluent_kafka import Consumer, TopicPartition

from fraud_common import keys
from tests.support.devstack_helpers import start_test_stack
from tools.devstack import DevStack
from tools.local_services import wait_for

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

USERS = 200
PER_USER = 10  # 2,000 transactions
SENDERS = 8
LARGE = "large_transaction_detected"
RAPID = "multiple_rapid_transactions_detected"
LOCATION = "unusual_location_change_detected"


@dataclass(frozen=True)
class Planned:
    key: str
    user: str
    body: dict[str, object]
    expected: frozenset[str]


def plan(run: str) -> list[list[Planned]]:
    """Per user, ten transactions one second apart (event time): the 6th to the 10th are
    rapid; every 3rd user's 4th is 20,000 USD (large); every 4th user is in Tokyo for
    the 8th, one second after New York and back one second later (two location alerts)."""
    base = datetime.now(UTC) - timedelta(hours=2)
    users = []
    for u in range(USERS):
        user = f"fault-{run}-{u}"
        start = base + timedelta(seconds=u)  # state is per user: users never interfere
        planned = []
        for i in range(PER_USER):
            expected = set()
            amount = "20000.00" if (u % 3 == 0 and i == 3) else f"{10 + i}.25"
            place = "Tokyo" if (u % 4 == 0 and i == 7) else "New York"
            if amount == "20000.00":
                expected.add(LARGE)
            if i >= 5:
                expected.add(RAPID)
            if u % 4 == 0 and i in (7, 8):
                expected.add(LOCATION)
            body = {
                "userId": user,
                "amount": amount,
                "currency": "USD",
                "location": place,
                "timestamp": (start + timedelta(seconds=i)).isoformat(),
            }
            planned.append(Planned(f"{user}-{i}", user, body, frozenset(expected)))
        users.append(planned)
    return users


@dataclass
class Figures:
    sent: int = 0
    accepted: int = 0
    retries: int = 0
    ids: dict[str, Planned] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # (accepted count, fault begun): senders that reach a count wait until its fault has
    # begun, so each fault strikes while traffic is still flowing, not after it.
    gates: list[tuple[int, threading.Event]] = field(default_factory=list)

    def pass_gates(self) -> None:
        for count, begun in self.gates:
            if self.accepted >= count:
                assert begun.wait(120), f"fault at {count} accepted never began"


def send_all(url: str, users: list[list[Planned]], figures: Figures, deadline: float) -> None:
    """Each sender owns some users and sends their transactions in order; a 503, 409 or a
    broken connection is retried with the same Idempotency-Key until 201."""

    def sender(mine: list[list[Planned]]) -> None:
        session = requests.Session()
        for i in range(PER_USER):
            for planned in (user[i] for user in mine):
                figures.pass_gates()
                while True:
                    assert time.monotonic() < deadline, "sending took too long"
                    with figures.lock:
                        figures.sent += 1
                    try:
                        response = session.post(
                            f"{url}/api/v1/transactions",
                            json=planned.body,
                            headers={"Idempotency-Key": planned.key},
                            timeout=10,
                        )
                    except requests.RequestException:
                        response = None
                    if response is not None and response.status_code == 201:
                        with figures.lock:
                            figures.accepted += 1
                            figures.ids[response.json()["transactionId"]] = planned
                        break
                    assert response is None or response.status_code in (503, 409), (
                        response.status_code,
                        response.text,
                    )
                    with figures.lock:
                        figures.retries += 1
                    time.sleep(0.1)  # a client's pause before retrying, not a wait for state

    errors: list[BaseException] = []

    def guarded(mine: list[list[Planned]]) -> None:
        try:
            sender(mine)
        except BaseException as exc:
            errors.append(exc)
            raise

    threads = [
        threading.Thread(target=guarded, args=(users[n::SENDERS],), daemon=True)
        for n in range(SENDERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    running = start_test_stack(tmp_path_factory.mktemp("fault-stack"), log_level="WARNING")
    yield running
    running.stop()


def committed_total(stack: DevStack, service: str, topic: str, partitions: int) -> int:
    """Sum of the group's committed offsets. (Tansu's high watermarks count record batches,
    not records, so a lag computed from them would be wrong; compare committed offsets.)"""
    group = (
        stack.service(service).env.get("CONSUMER_GROUP")
        or {
            "detector": "fraud-detection-group",
            "alert": "fraud-alert-group",
        }[service]
    )
    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap_servers, "group.id": group})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
        return sum(max(tp.offset, 0) for tp in committed)
    finally:
        consumer.close()


def test_every_transaction_decided_once_and_every_alert_stored_once(stack: DevStack) -> None:
    run = uuid.uuid4().hex[:8]
    users = plan(run)
    total = USERS * PER_USER
    figures = Figures()
    url = stack.service("transaction").url
    faults: list[str] = []

    plan_of_faults = [
        (0.15, "kill detector"),
        (0.30, "kill alert"),
        (0.45, "crash redis"),
        (0.60, "kill detector"),
        (0.75, "kill alert"),
    ]
    figures.gates = [(int(share * total), threading.Event()) for share, _ in plan_of_faults]

    def inject() -> None:
        for (count, begun), (_, action) in zip(figures.gates, plan_of_faults, strict=True):
            wait_for(lambda c=count: figures.accepted >= c, timeout=240, what=f"{count} sent")
            verb, target = action.split()
            at = figures.accepted
            if verb == "kill":  # SIGKILL master and workers; traffic goes on meanwhile
                process = stack.service(target)
                master = process.master_pid
                assert master is not None, f"{target} is not running"
                process.kill()  # returns once the processes are gone and the port is free
                begun.set()
                stack.wait_restarted(target, master, 90)  # the supervisor brings it back
            else:  # SIGKILL redis-server: the supervisor restarts it on its append-only file
                assert stack.redis is not None
                before = stack.restarts("redis")
                stack.redis.kill()
                begun.set()
                wait_for(
                    lambda b=before: stack.restarts("redis") > b and stack.redis.running,
                    timeout=60,
                    what="redis-server back after SIGKILL",
                )
            faults.append(f"{action} at {at} accepted (back at {figures.accepted})")

    injection_errors: list[BaseException] = []

    def guarded_inject() -> None:
        try:
            inject()
        except BaseException as exc:
            injection_errors.append(exc)
            raise

    injector = threading.Thread(target=guarded_inject, daemon=True)
    injector.start()
    send_all(url, users, figures, deadline=time.monotonic() + 240)
    injector.join(120)
    assert not injector.is_alive(), "fault injection did not finish"
    if injection_errors:
        raise injection_errors[0]
    assert figures.accepted == total
    assert len(figures.ids) == total  # one id per planned transaction, retries included

    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)

    def decisions() -> dict[str, str]:
        ids = list(figures.ids)
        values = client.mget([keys.decision(i) for i in ids])
        return {i: v for i, v in zip(ids, values, strict=True) if v is not None}

    try:
        wait_for(lambda: len(decisions()) == total, timeout=120, interval=0.5, what="decisions")
    except TimeoutError:
        pytest.fail(f"only {len(decisions())} of {total} transactions decided")

    expected = {(tx, kind) for tx, p in figures.ids.items() for kind in p.expected}

    def stored_alerts() -> list[tuple[str, str, str]]:
        found = []
        for user in {p.user for p in figures.ids.values()}:
            response = requests.get(
                f"{stack.service('alert').url}/api/v1/alerts",
                params={"userId": user, "limit": 1000},
                timeout=10,
            )
            response.raise_for_status()
            for alert in response.json()["alerts"]:
                found.append(
                    (alert["transaction"]["transactionId"], alert["alertType"], alert["alertId"])
                )
        return found

    wait_for(
        lambda: {(t, k) for t, k, _ in stored_alerts()} >= expected,
        timeout=120,
        interval=1.0,
        what="every expected alert stored",
    )
    found = stored_alerts()
    pairs = Counter((t, k) for t, k, _ in found)
    duplicates = sum(n - 1 for n in pairs.values() if n > 1)
    duplicate_ids = sum(n - 1 for n in Counter(a for _, _, a in found).values() if n > 1)
    unexpected = set(pairs) - expected
    stream_entries = client.xlen(keys.ALERTS_STREAM)
    final = {tx: json.loads(raw) for tx, raw in decisions().items()}
    flagged = {tx for tx, d in final.items() if d["status"] in ("review", "decline")}
    decided_alerts = {(tx, a["alertType"]) for tx, d in final.items() for a in d["reasons"]}

    print(
        f"\nfault run {run}: sent {figures.sent} requests, accepted {figures.accepted}, "
        f"retried {figures.retries}; evaluated {len(decisions())}; alerts expected "
        f"{len(expected)}, found {len(pairs)}, duplicates {duplicates + duplicate_ids}, "
        f"unexpected {len(unexpected)}; stream entries {stream_entries}; faults: "
        + "; ".join(faults)
    )
    assert len(faults) == 5
    assert stack.restarts("detector") == 2 and stack.restarts("alert") == 2
    assert stack.restarts("redis") == 1  # SIGKILLed once, brought back by the supervisor
    assert duplicates == 0 and duplicate_ids == 0
    assert not unexpected
    assert set(pairs) == expected
    assert decided_alerts == expected  # what the detector published is what was stored
    assert stream_entries == len(expected)  # live subscribers saw each alert once
    assert flagged == {tx for tx, p in figures.ids.items() if p.expected}
    assert {d["status"] for d in final.values()} <= {"approve", "review", "decline"}
    client.close()


@pytest.mark.parametrize("name", ["transaction", "detector", "alert"])
def test_sigterm_stops_within_ten_seconds_and_commits(stack: DevStack, name: str) -> None:
    """SIGTERM: stop taking work, finish, flush, commit, exit within 10 s (the contract)."""
    process = stack.service(name)
    wait_for(process.healthy, timeout=90, interval=0.2, what=f"{name} healthy")
    before = committed_total(stack, "detector", stack.transactions_topic, 10)
    if name == "detector":
        # Work in hand when the signal arrives must be committed, not redone.
        response = requests.post(
            f"{stack.service('transaction').url}/api/v1/transactions",
            json={"userId": "sigterm", "amount": "5", "currency": "USD", "location": "Paris"},
            timeout=10,
        )
        assert response.status_code == 201
        tx = response.json()["transactionId"]
        wait_for(
            lambda: (
                requests.get(
                    f"{stack.service('transaction').url}/api/v1/transactions/{tx}", timeout=10
                ).json()["status"]
                != "pending"
            ),
            timeout=30,
            what="the detector's decision",
        )
    master = process.process  # the supervisor replaces process.process once it restarts
    assert master is not None
    log_size = process.log_path.stat().st_size if process.log_path.exists() else 0
    started = time.monotonic()
    master.send_signal(signal.SIGTERM)
    master.wait(15)
    elapsed = time.monotonic() - started
    print(f"\n{name} exited {master.returncode} {elapsed:.2f}s after SIGTERM")
    assert elapsed < 10
    assert master.returncode == 0, process.log_tail()
    if name == "detector":
        # The transaction evaluated before the signal is committed: nothing is redone.
        assert committed_total(stack, "detector", stack.transactions_topic, 10) >= before + 1
    with Path(process.log_path).open("rb") as log:
        log.seek(log_size)
        assert b"Traceback" not in log.read(), process.log_tail()
    # A SIGTERM that is not the stack's own stop is a service gone, as with compose's
    # restart: unless-stopped: the supervisor starts it again.
    stack.wait_restarted(name, master.pid, 90)
