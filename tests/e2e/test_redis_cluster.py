"""The local stack on a real 3-master Redis Cluster (``REDIS_CLUSTER=true``), two detector
processes: test-client.py's scenarios pass, and 2,000 transactions are decided exactly
once with every expected alert stored and streamed once.

Every transaction of the exactly-once run has its own user, so the only rule that can
fire is the large-amount one: one ``large_transaction_detected`` per transaction above
10,000 USD, none otherwise. Durability is ``none`` here: WAITAOF confirms one node only,
and this machine's redis-server 7.0 has no WAITAOF anyway.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
import requests

from fraud_common import keys
from fraud_common.redis_client import connect
from tests.support.devstack_helpers import run_client, start_test_stack, wait_for_stored_alerts
from tools.devstack import DevStack
from tools.local_services import wait_for
from tools.redis_cluster import RedisCluster

pytestmark = pytest.mark.e2e

TOTAL = 2000
SENDERS = 4
LARGE = "large_transaction_detected"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as running:
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, cluster: RedisCluster) -> Iterator[DevStack]:
    running = start_test_stack(
        tmp_path_factory.mktemp("cluster-stack"),
        detectors=2,
        redis_url=cluster.url,
        redis_cluster=True,
        extra_env={"REDIS_DURABILITY": "none"},
    )
    print(running.ready_line())
    try:
        print(f"pipeline warm after {running.warm_up():.1f} s")
    except BaseException:
        running.stop()
        raise
    yield running
    running.stop()


@pytest.fixture
def cluster_client(cluster: RedisCluster) -> Iterator[redis.Redis]:
    client = connect(cluster.url, cluster=True)
    yield client
    client.close()


def test_the_stack_spreads_its_keys_over_every_node(stack: DevStack, cluster: RedisCluster) -> None:
    """The warm-up's keys landed on all three masters: the stack really runs on the
    cluster, not on one node of it."""
    for port in cluster.ports:
        node = redis.Redis(port=port)
        try:
            assert node.dbsize() > 0, f"no keys on the node on port {port}"
        finally:
            node.close()


def test_all_scenarios_with_the_live_stream_on_the_cluster(stack: DevStack) -> None:
    result = run_client(stack, "--test", "all", "--follow", "--count", "12", "--delay", "0.05")
    assert result.returncode == 0, result.stdout + result.stderr
    for scenario in ("large", "rapid", "location", "random"):
        assert re.search(rf"PASS {scenario}: .* seen live", result.stdout), scenario
    assert "all passed" in result.stdout
    health = run_client(stack, "--health")
    assert health.returncode == 0, health.stdout


def send(url: str, run: str) -> tuple[dict[str, bool], dict[str, str]]:
    """POST `TOTAL` transactions from `SENDERS` threads, one user each, every tenth
    large; returns transactionId -> large? and transactionId -> userId."""
    large_of: dict[str, bool] = {}
    user_of: dict[str, str] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def sender(numbers: range) -> None:
        session = requests.Session()
        try:
            for n in numbers:
                large = n % 10 == 0
                user = f"cl-{run}-{n}"
                body = {
                    "userId": user,
                    "amount": "15000.00" if large else f"{20 + n % 7}.50",
                    "currency": "USD",
                    "location": "Berlin",
                }
                response = session.post(
                    f"{url}/api/v1/transactions",
                    json=body,
                    headers={"Idempotency-Key": f"cl-{run}-{n}"},
                    timeout=10,
                )
                assert response.status_code == 201, (response.status_code, response.text)
                transaction_id = response.json()["transactionId"]
                with lock:
                    large_of[transaction_id] = large
                    user_of[transaction_id] = user
        except BaseException as exc:
            errors.append(exc)
            raise

    threads = [
        threading.Thread(target=sender, args=(range(s, TOTAL, SENDERS),), daemon=True)
        for s in range(SENDERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), "sending took too long"
    return large_of, user_of


def test_2000_transactions_are_decided_and_alerted_exactly_once_on_the_cluster(
    stack: DevStack, cluster_client: redis.Redis
) -> None:
    run = uuid.uuid4().hex[:8]
    started = time.monotonic()
    large_of, user_of = send(stack.service("transaction").url, run)
    sent_in = time.monotonic() - started
    assert len(large_of) == TOTAL
    ids = list(large_of)

    def decisions() -> dict[str, str]:
        # One GET per key: the decisions of different transactions are in different slots.
        pipe = cluster_client.pipeline(transaction=False)
        for transaction_id in ids:
            pipe.get(keys.decision(transaction_id))
        values = pipe.execute()
        return {i: str(v) for i, v in zip(ids, values, strict=True) if v is not None}

    try:
        wait_for(lambda: len(decisions()) == TOTAL, timeout=60, interval=0.5, what="decisions")
    except TimeoutError:
        pytest.fail(f"only {len(decisions())} of {TOTAL} accepted transactions decided")
    decided_in = time.monotonic() - started
    final = {tx: json.loads(raw) for tx, raw in decisions().items()}
    expected = {(tx, LARGE) for tx, large in large_of.items() if large}
    reasons = Counter((tx, a["alertType"]) for tx, d in final.items() for a in d["reasons"])
    assert set(reasons) == expected and max(reasons.values()) == 1
    assert {tx for tx, d in final.items() if d["status"] == "review"} == {t for t, _ in expected}

    large_users = [user_of[tx] for tx, _ in expected]
    found = wait_for_stored_alerts(stack.service("alert").url, large_users, expected)
    pairs = Counter((t, k) for t, k, _ in found)
    assert set(pairs) == expected and max(pairs.values()) == 1
    assert max(Counter(a for _, _, a in found).values()) == 1

    # The stream (live subscribers, notification channels) holds each alert once.
    ours = set(large_of)
    entries: list[tuple[str, dict[str, str]]] = cluster_client.xrange(keys.ALERTS_STREAM)  # type: ignore[assignment]
    alerts = [(json.loads(fields["alert"]), fields["alertId"]) for _, fields in entries]
    streamed = Counter(
        (alert["transaction"]["transactionId"], alert_id)
        for alert, alert_id in alerts
        if alert["transaction"]["transactionId"] in ours
    )
    assert {t for t, _ in streamed} == {t for t, _ in expected}
    assert max(streamed.values()) == 1 and len(streamed) == len(expected)

    # The dashboard's per-second counts are read across slots too.
    stats = requests.get(
        f"{stack.service('alert').url}/api/v1/stats", params={"seconds": "300"}, timeout=10
    )
    assert stats.status_code == 200, stats.text
    assert sum(stats.json()["transactions"]) >= TOTAL
    assert sum(stats.json()["alerts"]) >= len(expected)
    print(
        f"\ncluster run {run}: {TOTAL} accepted in {sent_in:.1f} s, all decided after "
        f"{decided_in:.1f} s; {len(expected)} alerts stored and streamed once"
    )
