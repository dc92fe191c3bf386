"""rules.yaml: the shipped file, its generated JSON Schema, and what a bad file is told."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

from fraud_detection.rules.config import RulesInvalid, json_schema, parse_rules, schema_text
from fraud_detection.settings import DEFAULT_RULES_FILE

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "fraud-detection-service" / "rules.schema.json"


def _problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(RulesInvalid) as refused:
        parse_rules(text.encode(), "rules.yaml")
    assert all(p.file == "rules.yaml" for p in refused.value.problems)
    return [(p.line, p.field, p.message) for p in refused.value.problems]


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "run python tools/rules_schema.py"
    )
    checked = subprocess.run(
        [sys.executable, str(REPO / "tools" / "rules_schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_shipped_file_is_valid_by_its_schema() -> None:
    document = yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    validator = jsonschema_rs.Draft202012Validator(json_schema())
    assert [str(e) for e in validator.iter_errors(document)] == []
    broken = {**document, "rules": [{**document["rules"][0], "score": 101}]}
    assert list(validator.iter_errors(broken)), "the schema checks scores too"


def test_the_version_is_the_content_hash() -> None:
    content = DEFAULT_RULES_FILE.read_bytes()
    assert parse_rules(content, "a").version == parse_rules(content, "b").version
    assert (
        parse_rules(content + b"\n# a comment\n", "a").version != parse_rules(content, "a").version
    )


def test_a_bad_parameter_is_named_with_its_line() -> None:
    text = """\
decision: {review_at: 40, decline_at: 80}
rules:
  - id: large-amount
    type: large_amount
    params:
      threshold_usd: -5
"""
    assert _problems(text) == [
        (6, "rules[0].params.threshold_usd", "Input should be greater than 0")
    ]


def test_every_problem_is_named_at_once() -> None:
    text = """\
rules:
  - id: Not_An_Id
    type: large_amount
    colour: red
  - id: ok
    type: teleport
  - id: fine
    type: rapid_transactions
    params: {max_count: 0, window: 30}
decision: {review_at: 90, decline_at: 10}
"""
    problems = _problems(text)
    fields = [(line, field) for line, field, _ in problems]
    assert (2, "rules[0].id") in fields
    assert (4, "rules[0].colour") in fields
    assert (5, "rules[1]") in fields  # unknown type: the rule itself
    assert (9, "rules[2].params.max_count") in fields
    assert (9, "rules[2].params.window") in fields
    assert any("review_at must not be above decline_at" in m for _, _, m in problems)
    unknown = next(m for _, f, m in problems if f == "rules[1]")
    assert "teleport" in unknown and "large_amount" in unknown


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rules: [\n  {id: a, type: large_amount\n", "not valid YAML"),
        ("- just a list\n", "must be a mapping"),
        (
            "rules:\n  - {id: a, type: large_amount}\n  - {id: a, type: rapid_transactions}\n",
            "rule ids must be unique: a",
        ),
        (
            "rules:\n  - {id: a, type: large_amount, alert_type: x}\n"
            "  - {id: b, type: rapid_transactions, alert_type: x}\n",
            "two active rules raise the same alert type: x",
        ),
        ("rules:\n  - {id: a, type: large_amount, mode: sometimes}\n", "active"),
        ("rules:\n  - {id: a, type: large_amount, mode: on}\n", "'active', 'shadow' or 'off'"),
    ],
)
def test_a_broken_file_is_refused_with_a_reason(text: str, says: str) -> None:
    assert any(says in message for _, _, message in _problems(text)), _problems(text)


def test_a_shadow_rule_may_share_the_alert_type_of_an_active_one() -> None:
    text = (
        "rules:\n  - {id: a, type: large_amount, alert_type: x}\n"
        "  - {id: b, type: large_amount, alert_type: x, mode: shadow,"
        " params: {threshold_usd: 2000}}\n"
        "  - {id: c, type: large_amount, alert_type: x, mode: off}\n"
    )
    rules = parse_rules(text.encode(), "rules.yaml")
    assert [(s.rule_id, s.alert_type, s.mode) for s in rules.specs] == [
        ("a", "x", "active"),
        ("b", "x", "shadow"),
        ("c", "x", "off"),
    ]


def test_not_utf8_is_refused() -> None:
    with pytest.raises(RulesInvalid, match="not UTF-8"):
        parse_rules(b"\xff\xfe", "rules.yaml")


def test_an_empty_file_means_no_rules() -> None:
    rules = parse_rules(b"", "rules.yaml")
    assert rules.specs == ()
    assert (rules.review_at, rules.decline_at) == (40, 80)


def test_defaults_fill_what_a_rule_leaves_out() -> None:
    rules = parse_rules(b"rules:\n  - {id: big, type: large_amount}\n", "rules.yaml")
    (spec,) = rules.specs
    assert (spec.alert_type, spec.mode, spec.score, spec.severity) == (
        "large_transaction_detected",
        "active",
        50,
        "medium",
    )
    assert json.loads(spec.params.model_dump_json()) == {"threshold_usd": "10000"}
