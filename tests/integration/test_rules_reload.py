"""Rules steered without a deploy (issue 8, item 2): a changed rules.yaml is picked up by
a running detector, through the file watcher, SIGHUP (to the gunicorn master) or the
reload endpoint; a broken file is refused with file, line and field while the previous
rules stay; a batch is never judged by two versions."""

from __future__ import annotations

import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
import redis
import requests

from fraud_common import keys
from fraud_common.schemas import Decision
from fraud_detection.openapi import build_document
from fraud_detection.rules.config import version_of
from fraud_detection.rules_source import RulesSource
from tests.conftest import TopicNames
from tests.support.detector_factories import transaction
from tests.support.detector_running import (
    RunningDetector,
    TopicWriter,
    detector_settings,
    new_group,
    read_to_end,
    serve,
    start_detector,
)
from tests.support.rules_files import rules_document, write_rules
from tests.support.transaction_server import assert_conforms
from tools.devstack import ServiceProcess
from tools.local_services import wait_for

pytestmark = pytest.mark.integration

DOCUMENT = build_document()


def _threshold(usd: int) -> dict:
    return rules_document(params={"large-amount": {"threshold_usd": usd}})


def _decision(store: redis.Redis, transaction_id: str) -> Decision | None:
    raw = store.get(keys.decision(transaction_id))
    return None if raw is None else Decision.model_validate_json(raw)


def test_the_watcher_picks_up_a_change_and_keeps_the_last_good_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_rules(tmp_path / "rules.yaml", _threshold(10000))
    source = RulesSource(path, poll_seconds=0.05)
    first = source.current().version
    watcher = threading.Thread(target=source.run, daemon=True)
    watcher.start()
    try:
        write_rules(path, _threshold(20000))
        wanted = version_of(path.read_bytes())
        wait_for(lambda: source.current().version == wanted, timeout=5, what="the new rules")
        assert wanted != first
        (large,) = [s for s in source.current().specs if s.rule_id == "large-amount"]
        assert str(large.params.threshold_usd) == "20000"

        with caplog.at_level(logging.ERROR, logger="fraud_detection.rules_source"):
            path.write_text("rules:\n  - {id: big, type: large_amount, score: 500}\n")
            wait_for(
                lambda: any("refused" in r.getMessage() for r in caplog.records),
                timeout=5,
                what="the refusal logged",
            )
        assert source.current().version == wanted, "a broken file replaced the rules"
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert "rules.yaml:2: rules[0].score" in str(refusals[0].__dict__["problems"])
    finally:
        source.stop()
        watcher.join(5)


@pytest.fixture
def detector_on_file(
    tmp_path: Path, kafka_bootstrap: str, redis_server, module_topics: TopicNames
) -> Iterator[tuple[RunningDetector, Path, str]]:
    path = write_rules(tmp_path / "rules.yaml", _threshold(10000))
    running = start_detector(
        detector_settings(
            kafka_bootstrap,
            redis_server.url,
            module_topics,
            new_group(),
            rules_file=path,
            rules_poll_seconds=60,  # only the endpoint reloads here
        )
    )
    try:
        with serve(running.app) as url:
            yield running, path, url
    finally:
        running.stop()


def test_the_reload_endpoint_switches_rules_and_refuses_a_broken_file(
    detector_on_file: tuple[RunningDetector, Path, str], store: redis.Redis, writer: TopicWriter
) -> None:
    _, path, url = detector_on_file
    shown = requests.get(f"{url}/api/v1/rules", timeout=5)
    assert_conforms(DOCUMENT, "/api/v1/rules", "get", shown)
    before = shown.json()
    assert [r["id"] for r in before["rules"]] == [
        "large-amount",
        "rapid-transactions",
        "location-change",
    ]
    assert before["rules"][0]["params"] == {"threshold_usd": "10000"}
    assert before["decision"] == {"review_at": 40, "decline_at": 80}

    user = f"reload-{uuid.uuid4().hex[:6]}"
    judged_before = transaction(user=user, amount="15000")
    writer.send([judged_before])
    wait_for(lambda: _decision(store, judged_before.transactionId), timeout=60, what="decision")

    write_rules(path, _threshold(20000))
    answer = requests.post(f"{url}/api/v1/rules/reload", timeout=5)
    assert answer.status_code == 200, answer.text
    assert_conforms(DOCUMENT, "/api/v1/rules/reload", "post", answer)
    assert answer.json()["changed"] is True
    assert answer.json()["version"] == version_of(path.read_bytes())

    judged_after = transaction(user=user, amount="15000", at=judged_before.timestamp + timedelta(1))
    writer.send([judged_after])
    wait_for(lambda: _decision(store, judged_after.transactionId), timeout=30, what="decision")
    first, second = (
        _decision(store, judged_before.transactionId),
        _decision(store, judged_after.transactionId),
    )
    assert first is not None and second is not None
    assert (first.status, first.rulesVersion) == ("review", before["version"])
    assert (second.status, second.rulesVersion) == ("approve", answer.json()["version"])

    path.write_text(
        "decision: {review_at: 40}\nrules:\n  - id: x\n    type: large_amount\n"
        "    params: {threshold_usd: zero}\n"
    )
    refused = requests.post(f"{url}/api/v1/rules/reload", timeout=5)
    assert refused.status_code == 400
    assert_conforms(DOCUMENT, "/api/v1/rules/reload", "post", refused)
    error = refused.json()["error"]
    assert error["code"] == "rules_invalid"
    assert error["details"] == [
        {
            "file": str(path),
            "line": 5,
            "field": "rules[0].params.threshold_usd",
            "message": error["details"][0]["message"],
        }
    ]
    after = requests.get(f"{url}/api/v1/rules", timeout=5).json()
    assert after["version"] == answer.json()["version"], "the last good rules stay"
    large = after["rules"][0]
    assert large["stats"]["evaluated"] >= 2
    assert large["stats"]["hits"] >= 1


def test_while_transactions_flow_a_reload_switches_at_one_point(
    tmp_path: Path,
    kafka_bootstrap: str,
    redis_server,
    topic_factory: Callable[[], TopicNames],
    store: redis.Redis,
) -> None:
    """One user's transactions (one partition, consumed in order), 15,000 USD each, while
    the threshold moves from 10,000 to 20,000: every decision carries one of the two
    versions, and in consumption order the old version's (with an alert each) all come
    before the new one's (without)."""
    topics = topic_factory()
    path = write_rules(tmp_path / "rules.yaml", _threshold(10000))
    old = version_of(path.read_bytes())
    running = start_detector(
        detector_settings(
            kafka_bootstrap,
            redis_server.url,
            topics,
            new_group(),
            rules_file=path,
            rules_poll_seconds=0.05,
            consumer_batch_size=20,
        )
    )
    writer = TopicWriter(kafka_bootstrap, topics.transactions)
    user = f"flow-{uuid.uuid4().hex[:6]}"
    base = datetime.now(UTC) - timedelta(days=1)
    sent = []
    try:
        for round_ in range(6):
            batch = [
                transaction(user=user, amount="15000", at=base + timedelta(minutes=len(sent) + i))
                for i in range(50)
            ]
            writer.send(batch)
            sent.extend(batch)
            if round_ == 2:
                write_rules(path, _threshold(20000))
        new = version_of(path.read_bytes())
        wait_for(
            lambda: all(store.exists(keys.decision(t.transactionId)) for t in sent),
            timeout=90,
            what="every decision",
        )
    finally:
        running.stop()
    decisions = [_decision(store, t.transactionId) for t in sent]
    versions = [d.rulesVersion for d in decisions if d is not None]
    assert set(versions) <= {old, new} and len(versions) == len(sent)
    assert new in versions, "the reload never took effect"
    switch = versions.index(new)
    assert versions[:switch] == [old] * switch
    assert versions[switch:] == [new] * (len(sent) - switch), "versions interleave"
    statuses = [d.status for d in decisions if d is not None]
    assert statuses == ["review"] * switch + ["approve"] * (len(sent) - switch)


def test_sighup_to_the_gunicorn_master_reloads_every_worker_in_place(
    tmp_path: Path, kafka_bootstrap: str, redis_url: str, topics: TopicNames
) -> None:
    path = write_rules(tmp_path / "rules.yaml", _threshold(10000))
    service = ServiceProcess.on_free_port(
        "detector",
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "REDIS_URL": redis_url,
            **topics.as_env(),
            "CONSUMER_GROUP": new_group(),
            "WEB_CONCURRENCY": "2",
            "RULES_FILE": str(path),
            "RULES_POLL_SECONDS": "60",  # so only the signal can explain a reload
            "LOG_LEVEL": "INFO",
        },
        log_dir=tmp_path,
    )
    service.start()
    try:
        service.wait_healthy(60)
        workers_before = _worker_pids(service)
        write_rules(path, _threshold(20000))
        wanted = version_of(path.read_bytes())
        master = service.master_pid
        assert master is not None
        os.kill(master, signal.SIGHUP)
        wait_for(
            lambda: service.log_path.read_text(errors="replace").count("rules reloaded") >= 2,
            timeout=30,
            what="both workers reloaded",
        )
        versions = {
            requests.get(f"{service.url}/api/v1/rules", timeout=5).json()["version"]
            for _ in range(8)
        }
        assert versions == {wanted}
        assert _worker_pids(service) == workers_before, "SIGHUP re-spawned the workers"
        assert "Traceback" not in service.log_path.read_text(errors="replace")
    finally:
        service.stop()


def _worker_pids(service: ServiceProcess) -> set[int]:
    master = service.master_pid
    assert master is not None
    return {child.pid for child in psutil.Process(master).children()}


def test_a_shadow_rule_is_counted_but_never_alerts_nor_scores(
    tmp_path: Path,
    kafka_bootstrap: str,
    redis_server,
    topic_factory: Callable[[], TopicNames],
    store: redis.Redis,
) -> None:
    topics = topic_factory()
    path = write_rules(
        tmp_path / "rules.yaml",
        rules_document(
            extra=[
                {
                    "id": "big-spender-trial",
                    "type": "large_amount",
                    "alert_type": "big_spender_trial_detected",
                    "score": 90,
                    "mode": "shadow",
                    "params": {"threshold_usd": 100},
                }
            ]
        ),
    )
    running = start_detector(
        detector_settings(kafka_bootstrap, redis_server.url, topics, new_group(), rules_file=path)
    )
    try:
        with serve(running.app) as url:

            def counters() -> dict[str, dict[str, int]]:
                rules = requests.get(f"{url}/api/v1/rules", timeout=5).json()["rules"]
                return {r["id"]: r["stats"] for r in rules}

            before = counters()  # the module's Redis has counted other tests' decisions
            medium = transaction(user=f"shadow-{uuid.uuid4().hex[:6]}", amount="500")
            large = transaction(user=f"shadow-{uuid.uuid4().hex[:6]}", amount="15000")
            TopicWriter(kafka_bootstrap, topics.transactions).send([medium, large])
            wait_for(
                lambda: all(_decision(store, t.transactionId) for t in (medium, large)),
                timeout=60,
                what="both decisions",
            )
            # the counters are written after the decisions: wait until each has moved at
            # least as far as it should, then check below that none moved further
            least = {
                ("big-spender-trial", "evaluated"): 2,
                ("big-spender-trial", "hits"): 2,
                ("large-amount", "evaluated"): 2,
                ("large-amount", "hits"): 1,
            }

            def counted() -> bool:
                now = counters()
                return all(now[r][n] - before[r][n] >= k for (r, n), k in least.items())

            wait_for(counted, timeout=30, what="the batches' rule counters")
            after = counters()
            stats = {
                rule: {name: after[rule][name] - before[rule][name] for name in after[rule]}
                for rule in after
            }
    finally:
        running.stop()
    quiet, loud = _decision(store, medium.transactionId), _decision(store, large.transactionId)
    assert quiet is not None and loud is not None
    assert (quiet.status, quiet.riskScore, quiet.reasons) == ("approve", 0, [])
    assert [r.ruleId for r in quiet.shadowHits] == ["big-spender-trial"]
    assert (loud.status, loud.riskScore) == ("review", 60), "the shadow rule moved the score"
    assert [r.ruleId for r in loud.reasons] == ["large-amount"]
    assert stats["big-spender-trial"] == {"evaluated": 2, "hits": 2}
    assert stats["large-amount"] == {"evaluated": 2, "hits": 1}
    alert_types = {
        dict(m.headers() or [])["alert-type"].decode()
        for m in read_to_end(kafka_bootstrap, topics.alerts)
    }
    assert alert_types == {"large_transaction_detected"}, "a shadow rule alerted"
