"""What a backtest found: per-rule hits, decisions, precision and recall, new/gone alerts.

Labels are lines of ``{"transactionId" or "userId", "label": "fraud" | "legit"}``; a
transaction's own label wins over its user's. For a rule, ``precision`` is the share of
its labelled hits that are fraud (null when none of its hits is labelled) and
``recall`` the share of fraud-labelled transactions it hit (null when none is labelled
fraud). A shadow rule's hits count like an active one's: trying a rule in shadow is how
it is measured before it alerts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fraud_detection.rules import RuleSet
from tools.backtest_replay import Judged

LABELS = ("fraud", "legit")
STATUSES = ("approve", "review", "decline")


@dataclass(frozen=True)
class Labels:
    by_transaction: dict[str, str]
    by_user: dict[str, str]

    def of(self, judged: Judged) -> str | None:
        return self.by_transaction.get(judged.transaction_id) or self.by_user.get(judged.user_id)


def read_labels(lines: Iterable[tuple[str, str]]) -> Labels:
    """Labels from ``(where, text)`` JSONL lines; raises ValueError naming a bad line."""
    by_transaction: dict[str, str] = {}
    by_user: dict[str, str] = {}
    for where, text in lines:
        if not text.strip():
            continue
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{where}: not JSON: {exc}") from exc
        label = raw.get("label") if isinstance(raw, dict) else None
        if label not in LABELS:
            raise ValueError(f"{where}: label must be one of {', '.join(LABELS)}")
        if isinstance(raw.get("transactionId"), str):
            by_transaction[raw["transactionId"]] = label
        elif isinstance(raw.get("userId"), str):
            by_user[raw["userId"]] = label
        else:
            raise ValueError(f"{where}: needs a transactionId or a userId")
    return Labels(by_transaction, by_user)


def hits_of(judged: Judged) -> tuple[str, ...]:
    """Every rule that fired on the transaction: alerting, shadow and allow rules."""
    allowed = () if judged.allowed_by is None else (judged.allowed_by,)
    return (*judged.alerts, *judged.shadow, *allowed)


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else round(numerator / denominator, 4)


def summarize(
    rules: RuleSet, judged: Sequence[Judged], labels: Labels | None = None
) -> dict[str, Any]:
    """The contract's ``--json`` object (without ``compare``)."""
    hits: Counter[str] = Counter()
    fraud_hits: Counter[str] = Counter()
    labelled_hits: Counter[str] = Counter()
    decisions: Counter[str] = Counter()
    fraud_total = labelled_total = 0
    for one in judged:
        decisions[one.status] += 1
        label = None if labels is None else labels.of(one)
        fraud_total += label == "fraud"
        labelled_total += label is not None
        for rule_id in set(hits_of(one)):
            hits[rule_id] += 1
            if label is not None:
                labelled_hits[rule_id] += 1
                fraud_hits[rule_id] += label == "fraud"
    per_rule: dict[str, dict[str, Any]] = {}
    for spec in rules.specs:
        entry: dict[str, Any] = {"hits": hits[spec.rule_id], "mode": spec.mode}
        if labels is not None:
            entry.update(
                labelled=labelled_hits[spec.rule_id],
                fraudHits=fraud_hits[spec.rule_id],
                precision=_ratio(fraud_hits[spec.rule_id], labelled_hits[spec.rule_id]),
                recall=_ratio(fraud_hits[spec.rule_id], fraud_total),
            )
        per_rule[spec.rule_id] = entry
    summary: dict[str, Any] = {
        "transactions": len(judged),
        "rulesVersion": rules.version,
        "rules": per_rule,
        "decisions": {status: decisions[status] for status in STATUSES},
    }
    if decisions["error"]:
        summary["decisions"]["error"] = decisions["error"]
    if labels is not None:
        summary["labels"] = {"labelled": labelled_total, "fraud": fraud_total}
    return summary


def alert_pairs(judged: Iterable[Judged]) -> set[tuple[str, str]]:
    """(transactionId, ruleId) of every alert."""
    return {(one.transaction_id, rule_id) for one in judged for rule_id in one.alerts}


def compare(
    base: Sequence[Judged],
    other: Sequence[Judged],
    other_rules: RuleSet,
    file: str,
    labels: Labels | None = None,
) -> dict[str, Any]:
    """The second rule set's own summary, and the alerts it raises that the first does
    not (new) and the reverse (gone), as (transactionId, ruleId)."""
    before, after = alert_pairs(base), alert_pairs(other)

    def listed(pairs: set[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"transactionId": t, "ruleId": r} for t, r in sorted(pairs)]

    theirs = summarize(other_rules, other, labels)
    return {
        "rulesFile": file,
        "rulesVersion": theirs["rulesVersion"],
        "rules": theirs["rules"],
        "decisions": theirs["decisions"],
        "new": listed(after - before),
        "gone": listed(before - after),
        "changedDecisions": sum(a.status != b.status for a, b in zip(base, other, strict=True)),
    }


def table(summary: dict[str, Any], rules_file: str, *, show: int = 20) -> str:
    """The readable form of a summary (and its comparison, if any)."""
    labelled = "labels" in summary
    lines = [
        f"backtest of {summary['transactions']:,} transactions with {rules_file} "
        f"(version {summary['rulesVersion']})",
        "",
    ]
    lines += _rule_rows(summary["rules"], labelled)
    lines += ["", "decisions: " + ", ".join(f"{k} {v:,}" for k, v in summary["decisions"].items())]
    if labelled:
        lines.append(
            f"labels: {summary['labels']['labelled']:,} transactions labelled, "
            f"{summary['labels']['fraud']:,} fraud"
        )
    compared = summary.get("compare")
    if compared is not None:
        lines += [
            "",
            f"compared with {compared['rulesFile']} (version {compared['rulesVersion']}): "
            f"{len(compared['new']):,} new alerts, {len(compared['gone']):,} gone, "
            f"{compared['changedDecisions']:,} decisions changed",
            "",
            *_rule_rows(compared["rules"], labelled),
            "",
            "decisions there: " + ", ".join(f"{k} {v:,}" for k, v in compared["decisions"].items()),
        ]
        for kind in ("new", "gone"):
            for pair in compared[kind][:show]:
                lines.append(f"  {kind:<4} {pair['transactionId']}  {pair['ruleId']}")
            if len(compared[kind]) > show:
                lines.append(f"  ... {len(compared[kind]) - show:,} more {kind} (see --json)")
    return "\n".join(lines)


def _rule_rows(rules: dict[str, dict[str, Any]], labelled: bool) -> list[str]:
    head = f"{'rule':<28} {'mode':<7} {'hits':>8}"
    if labelled:
        head += f" {'labelled':>9} {'fraud':>7} {'precision':>10} {'recall':>7}"
    rows = [head, "-" * len(head)]
    for rule_id, entry in rules.items():
        row = f"{rule_id:<28} {entry['mode']:<7} {entry['hits']:>8,}"
        if labelled:
            row += (
                f" {entry['labelled']:>9,} {entry['fraudHits']:>7,}"
                f" {_share(entry['precision']):>10} {_share(entry['recall']):>7}"
            )
        rows.append(row)
    return rows


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
