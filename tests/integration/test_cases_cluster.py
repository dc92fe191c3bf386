"""Cases on a real 3-master Redis Cluster: every script stays in one slot (the user's),
the lookup, the indexes and the rule counters are single-key steps on other nodes, and
opening, joining, redelivering, paging, closing and the counts work as on one Redis."""

from __future__ import annotations

import pytest
import redis
from redis.crc import key_slot

from alert_service.cases.quality import RuleQuality
from alert_service.cases.store import CaseClosed, CaseStore
from alert_service.store import AlertStore
from fraud_common import keys
from tests.support.cases_support import rule_alert

pytestmark = pytest.mark.integration


def test_a_case_lives_in_its_users_slot_and_its_indexes_elsewhere() -> None:
    user, case_id = "u-slot", "3f0c2a1e-0000-4000-8000-000000000000"
    in_user_slot = {
        key_slot(k.encode())
        for k in (
            keys.case_open(user),
            keys.case_members(user),
            keys.case(user, case_id),
            keys.case_alerts(user, case_id),
            keys.case_history(user, case_id),
        )
    }
    assert len(in_user_slot) == 1
    elsewhere = [keys.case_owner(case_id), keys.cases_index("open"), keys.LABELS]
    assert in_user_slot.isdisjoint(key_slot(k.encode()) for k in elsewhere)
    assert key_slot(keys.rule_quality("large-amount").encode()) == key_slot(
        keys.rule_quality_seen("large-amount").encode()
    )


def test_cases_of_many_users_on_the_cluster(cluster_client: redis.Redis) -> None:
    quality = RuleQuality(cluster_client)
    cases = CaseStore(cluster_client, quality)
    users = [f"u-{i}" for i in range(30)]
    alerts = [
        rule_alert(u, rule, 40 + i)
        for i, u in enumerate(users)
        for rule in ("large-amount", "location-change")
    ]
    AlertStore(cluster_client).store(alerts)
    joined = cases.add_alerts([*alerts, alerts[0]])
    again = cases.add_alerts(alerts[::-1])  # a redelivery, reversed
    assert sum(j.outcome == "opened" for j in joined) == 30
    assert {j.outcome for j in again} == {"already"}
    nodes = {cluster_client.get_node_from_key(keys.case_open(u)).name for u in users}  # type: ignore[attr-defined]
    assert len(nodes) == 3  # the users' cases are spread over every primary

    listed: list[str] = []
    cursor = None
    while True:
        page = cases.list_cases(status="open", limit=7, cursor=cursor)
        listed += [c["userId"] for c in page.items]
        assert all(c["alertCount"] == 2 for c in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(listed) == sorted(users)

    by_user = {j.case_id: a.transaction.userId for a, j in zip(alerts, joined, strict=False)}
    for case_id, user in list(by_user.items())[:10]:
        verdict = "confirmed_fraud" if user in ("u-0", "u-1") else "false_positive"
        closed = cases.close(case_id, verdict, "", actor="ana")
        assert closed["status"] == "closed"
        with pytest.raises(CaseClosed):
            cases.close(case_id, verdict, "", actor="ana")
    assert len(cases.list_cases(status="open", limit=100, cursor=None).items) == 20
    assert len(cases.list_cases(status="closed", limit=100, cursor=None).items) == 10
    report = {r["ruleId"]: r for r in quality.report()}
    for rule in ("large-amount", "location-change"):
        assert (report[rule]["alerts"], report[rule]["labelled"]) == (30, 10)
        assert (report[rule]["confirmedFraud"], report[rule]["falsePositive"]) == (2, 8)
        assert report[rule]["precision"] == 0.2
    assert len(list(quality.labels())) == 20  # one per transaction of the closed cases

    # A closed user's next alert opens a new case on its node.
    nxt = rule_alert("u-0", "large-amount", 90)
    assert cases.add_alerts([nxt])[0].outcome == "opened"
