"""`tools/backtest.py` over the fixed file tests/data/backtest_transactions.jsonl.

The file (built by hand) holds, partly in scrambled order: large amounts (15,000 and
25,000 USD alert, exactly 10,000 does not), seven transactions 1 s apart (the 6th and
7th alert), New York -> Tokyo in 2 s (alerts), New York -> Newark and New York ->
London in 10 h (do not), one transaction both large and impossible travel (decline),
six 1 USD charges 20 s apart (no shipped rule; card testing would) and one as-POSTed
line without a timestamp (skipped). Both forms occur: as published on the topic and
as POSTed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from fraud_common import keys
from tools import backtest
from tools.backtest_workers import few_collections

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
INPUT = DATA / "backtest_transactions.jsonl"
LABELS = DATA / "backtest_labels.jsonl"
PROPOSED = DATA / "backtest_rules_proposed.yaml"
SHIPPED = REPO / "fraud-detection-service" / "rules.yaml"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    status = backtest.main(["--rules", str(SHIPPED), "--input", str(INPUT), "--json", *args])
    out = capsys.readouterr().out
    assert status == 0
    result: dict[str, Any] = json.loads(out)
    return result


def test_per_rule_hits_and_decisions_are_exactly_the_expected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = run_json(capsys)
    assert result["transactions"] == 24
    assert result["skipped"] == 1
    assert {rule: entry["hits"] for rule, entry in result["rules"].items()} == {
        "large-amount": 3,  # 15,000 and 25,000 USD, and the 12,000 that also travelled
        "rapid-transactions": 2,  # the 6th and 7th within 30 s
        "location-change": 2,  # New York -> Tokyo in 2 s and in 60 s
    }
    assert result["decisions"] == {"approve": 18, "review": 5, "decline": 1}


def test_the_json_shape_is_the_contracts(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys)
    assert isinstance(result["transactions"], int)
    assert set(result["decisions"]) == {"approve", "review", "decline"}
    for entry in result["rules"].values():
        assert isinstance(entry["hits"], int)
        assert entry["mode"] in ("active", "shadow", "off")


def test_two_runs_give_the_same_result_in_process_and_as_a_script(
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = run_json(capsys, "--compare-rules", str(PROPOSED), "--labels", str(LABELS))
    script = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "backtest.py"),
            "--rules",
            str(SHIPPED),
            "--input",
            str(INPUT),
            "--compare-rules",
            str(PROPOSED),
            "--labels",
            str(LABELS),
            "--json",
            "--batch-size",
            "5",  # other batch boundaries: the same judgement
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},  # as a user runs it
        check=True,
    )
    assert json.loads(script.stdout) == first


def test_precision_and_recall_from_labels(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, "--labels", str(LABELS))
    # 16 fraud-labelled transactions (two by id, the rapid user's 7 and the card
    # tester's 6 by user, the 12,000 one), 3 legit (25,000 USD and the London traveller).
    assert result["labels"] == {"labelled": 19, "fraud": 16}
    large = result["rules"]["large-amount"]
    assert (large["labelled"], large["fraudHits"]) == (3, 2)
    assert large["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert large["recall"] == pytest.approx(2 / 16)
    assert result["rules"]["rapid-transactions"]["precision"] == 1.0
    assert result["rules"]["location-change"]["recall"] == pytest.approx(2 / 16)


def test_new_and_gone_alerts_between_two_rule_files(capsys: pytest.CaptureFixture[str]) -> None:
    compared = run_json(capsys, "--compare-rules", str(PROPOSED))["compare"]
    # threshold 10,000 -> 20,000 drops two large alerts; the card testing rule adds one
    assert compared["gone"] == [
        {"transactionId": "bt-b2", "ruleId": "large-amount"},
        {"transactionId": "bt-l1", "ruleId": "large-amount"},
    ]
    assert compared["new"] == [{"transactionId": "bt-c6", "ruleId": "card-testing"}]
    assert compared["rules"]["card-testing"]["hits"] == 1
    # a shadow rule counts its hits but never alerts, so it is in neither list
    assert compared["rules"]["velocity-shadow"] == {"hits": 1, "mode": "shadow"}
    assert compared["decisions"] == {"approve": 18, "review": 6, "decline": 0}


def test_the_table_names_every_rule_and_the_comparison(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = backtest.main(
        ["--rules", str(SHIPPED), "--input", str(INPUT), "--compare-rules", str(PROPOSED)]
    )
    out = capsys.readouterr().out
    assert status == 0
    for rule_id in ("large-amount", "rapid-transactions", "location-change", "card-testing"):
        assert rule_id in out
    assert "1 new alerts, 2 gone" in out
    assert "decisions: approve 18, review 5, decline 1" in out


def _digest(url: str) -> tuple[int, str]:
    """DBSIZE and a hash of every key's name, type and serialized value."""
    client = redis.Redis.from_url(url)  # bytes: DUMP's payload is binary
    try:
        digest = hashlib.sha256()
        for name in sorted(client.scan_iter(count=1000)):
            digest.update(name + b"\0" + client.type(name) + b"\0" + client.dump(name))
        return int(client.dbsize()), digest.hexdigest()
    finally:
        client.close()


def test_a_backtest_never_touches_the_live_keys(
    capsys: pytest.CaptureFixture[str],
    redis_client: redis.Redis,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The live Redis holds state for the very users the file names, and REDIS_URL points
    # at it, as it would in a shell where the stack runs.
    for user in ("bt-rapid", "bt-geo", "bt-large"):
        redis_client.zadd(keys.user_window(user), {"live-txn|1000000": 1})
        redis_client.set(keys.user_last_seen(user), '{"live": true}')
    redis_client.set(keys.decision("bt-l1"), '{"status": "approve"}')
    monkeypatch.setenv("REDIS_URL", redis_url)
    before = _digest(redis_url)
    result = run_json(capsys)
    assert result["rules"]["large-amount"]["hits"] == 3  # bt-l1 judged afresh, not "approve"
    assert _digest(redis_url) == before


def test_workers_split_by_user_judge_exactly_as_one_process(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("--compare-rules", str(PROPOSED), "--labels", str(LABELS), "--batch-size", "3")
    assert run_json(capsys, *args, "--workers", "3") == run_json(capsys, *args)


def test_one_process_and_two_workers_with_both_passes_in_each_agree(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # each worker replays its users through both rule sets, each pass on its own Redis
    args = ("--compare-rules", str(PROPOSED), "--labels", str(LABELS), "--batch-size", "2")
    one = run_json(capsys, *args, "--workers", "1")
    assert one["compare"]["new"] == [{"transactionId": "bt-c6", "ruleId": "card-testing"}]
    assert run_json(capsys, *args, "--workers", "2") == one


def test_the_collector_settings_are_restored_after_a_run() -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    with few_collections():
        assert gc.get_threshold()[0] > threshold[0]
        assert gc.get_freeze_count() > frozen
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)


def test_what_the_input_loses_is_reported_alike_by_one_process_and_by_workers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the fixed file, then a line that is not JSON, one that is not an object, one that
    # fails validation, one repeating a transactionId and one outside --until
    extra = [
        "{not json",
        "[1, 2]",
        json.dumps({"userId": "bt-rapid", "amount": "-5", "currency": "USD",
                    "location": "New York", "timestamp": "2026-11-20T12:00:09Z"}),
        INPUT.read_text("utf-8").splitlines()[0],
        json.dumps({"transactionId": "bt-late", "userId": "bt-rapid", "amount": "1",
                    "currency": "USD", "location": "New York",
                    "timestamp": "2027-01-01T00:00:00Z"}),
    ]  # fmt: skip
    noisy = tmp_path / "noisy.jsonl"
    noisy.write_text(INPUT.read_text("utf-8") + "\n".join(extra) + "\n", "utf-8")

    def run(workers: str) -> tuple[dict[str, Any], list[str]]:
        args = ["--rules", str(SHIPPED), "--input", str(noisy), "--json", "--batch-size", "2"]
        status = backtest.main([*args, "--until", "2026-12-01T00:00:00Z", "--workers", workers])
        captured = capsys.readouterr()
        assert status == 0
        skipped = [line for line in captured.err.splitlines() if "skipped" in line]
        return json.loads(captured.out), skipped

    fixed = INPUT.read_text("utf-8").splitlines()
    timestampless = next(n for n, line in enumerate(fixed, 1) if line and "timestamp" not in line)
    one, one_skipped = run("1")
    assert (one["transactions"], one["skipped"], one["duplicates"]) == (24, 4, 1)
    # in input order: the fixed file's line without a timestamp, then the three new ones
    assert [line.split(f"{noisy}:")[1].split(":")[0] for line in one_skipped] == [
        str(n) for n in (timestampless, len(fixed) + 1, len(fixed) + 2, len(fixed) + 3)
    ]
    assert run("3") == (one, one_skipped)
