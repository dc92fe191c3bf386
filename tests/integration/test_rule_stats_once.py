"""The rule counters (`RuleStats`) count each transaction's first decision exactly once,
even when the batch is retried because publishing failed after its decisions were
stored (the retry finds them stored: replays, which count nothing): on one Redis and on
a real 3-master Redis Cluster."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import pytest
import redis

from fraud_common import keys
from fraud_common.kafka.producer import DeliveryFailed, Outgoing
from fraud_common.schemas import Transaction
from fraud_detection.rules_api import RuleStats
from tests.integration.test_decide_batch import decision_of, make_handler, records
from tests.support.detector_factories import T0, transaction
from tests.support.rules_files import shipped_rules
from tools.backtest_replay import Collector

pytestmark = pytest.mark.integration


class FailsFirstSend(Collector):
    """A `MessageSender` whose first ``send_all`` fails as an unacknowledged send does."""

    def __init__(self) -> None:
        super().__init__()
        self.failures_left = 1

    def send_all(self, messages: Sequence[Outgoing], timeout: float) -> None:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise DeliveryFailed("broker down (test)")
        super().send_all(messages, timeout)


@pytest.fixture(params=["single", "cluster"])
def client(request: pytest.FixtureRequest) -> redis.Redis:
    name = "redis_client" if request.param == "single" else "cluster_client"
    value: redis.Redis = request.getfixturevalue(name)
    return value


def expected_stats(client: redis.Redis, batch: list[Transaction]) -> dict[str, dict[str, int]]:
    """The counters the stored decisions call for: every evaluated rule once per
    transaction, and each hit (active and shadow) of its stored decision once."""
    unique = list(dict.fromkeys(t.transactionId for t in batch))
    hits: Counter[str] = Counter()
    for transaction_id in unique:
        stored = json.loads(decision_of(client, transaction_id))
        hits.update(r["ruleId"] for r in (*stored["reasons"], *stored["shadowHits"]))
    return {
        spec.rule_id: {"evaluated": len(unique), "hits": hits[spec.rule_id]}
        for spec in shipped_rules().evaluated
    }


def test_a_batch_retried_after_a_failed_publish_is_counted_once(client: redis.Redis) -> None:
    # users over many slots, one user with several transactions (velocity), one large
    # amount, one transaction twice in the batch
    batch = [transaction(user=f"u-{n}", at=T0 - timedelta(minutes=n)) for n in range(12)]
    batch += [transaction(user="u-busy", at=T0 - timedelta(seconds=n)) for n in range(6)]
    batch.append(transaction(user="u-large", amount="20000", at=T0))
    batch.append(batch[2])
    sender = FailsFirstSend()
    handler = make_handler(client, sender)

    with pytest.raises(DeliveryFailed):
        handler.handle(records(batch))
    assert sender.decisions == []  # nothing was published: the loop retries the batch
    handler.handle(records(batch))

    stats = RuleStats(client).read()
    expected = expected_stats(client, batch)
    assert any(counts["hits"] > 0 for counts in expected.values())  # the test has hits
    assert stats == expected
    # the second run handled the batch (redeliveries count there, as before)
    assert int(client.get(keys.stats_transactions(int(T0.timestamp()))) or 0) == len(batch)

    # a later redelivery of the whole batch counts no rule again
    handler.handle(records(batch))
    assert RuleStats(client).read() == expected
