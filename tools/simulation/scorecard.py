"""The simulator's scorecard: per injected pattern, episodes injected, caught (at least
one alert on one of its fraud transactions) and missed; and the alerts on legit
transactions (false alerts), by rule."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from tools.simulation.traffic import PATTERNS, TARGETS, SimTransaction


def score(
    transactions: Sequence[SimTransaction],
    ids: Sequence[str],
    alerts: Iterable[tuple[str, str]],
) -> dict[str, Any]:
    """``ids``: each transaction's id as sent (index for index); ``alerts``:
    (transactionId, ruleId) of every alert raised."""
    rules_by_transaction: dict[str, set[str]] = defaultdict(set)
    for transaction_id, rule_id in alerts:
        rules_by_transaction[transaction_id].add(rule_id)
    episodes: dict[str, dict[str, Any]] = {}
    false_alerts: Counter[str] = Counter()
    false_transactions = 0
    legit = 0
    for sim, transaction_id in zip(transactions, ids, strict=True):
        fired = rules_by_transaction.get(transaction_id, set())
        if sim.label == "legit":
            legit += 1
            false_alerts.update(fired)
            false_transactions += bool(fired)
            continue
        assert sim.episode is not None
        episode = episodes.setdefault(
            sim.episode, {"pattern": sim.pattern, "transactions": 0, "alerted": 0, "rules": set()}
        )
        episode["transactions"] += 1
        episode["alerted"] += bool(fired)
        episode["rules"] |= fired
    patterns: dict[str, dict[str, Any]] = {}
    for pattern in PATTERNS:
        mine = [e for e in episodes.values() if e["pattern"] == pattern]
        caught = sum(e["alerted"] > 0 for e in mine)
        by_rule: Counter[str] = Counter(r for e in mine for r in e["rules"])
        patterns[pattern] = {
            "target": TARGETS[pattern],
            "injected": len(mine),
            "caught": caught,
            "missed": len(mine) - caught,
            "transactions": sum(e["transactions"] for e in mine),
            "alertedTransactions": sum(e["alerted"] for e in mine),
            "caughtBy": dict(sorted(by_rule.items())),
        }
    return {
        "transactions": len(transactions),
        "patterns": patterns,
        "legit": {
            "transactions": legit,
            "falseAlerts": sum(false_alerts.values()),
            "alertedTransactions": false_transactions,
            "byRule": dict(sorted(false_alerts.items())),
        },
    }


def table(card: dict[str, Any]) -> str:
    head = f"{'pattern':<18} {'injected':>8} {'caught':>7} {'missed':>7} {'txns':>6} {'alerted':>8}  by rule"  # noqa: E501
    lines = [head, "-" * len(head)]
    for pattern, row in card["patterns"].items():
        rules = ", ".join(f"{r} {n}" for r, n in row["caughtBy"].items()) or "-"
        lines.append(
            f"{pattern:<18} {row['injected']:>8} {row['caught']:>7} {row['missed']:>7} "
            f"{row['transactions']:>6} {row['alertedTransactions']:>8}  {rules}"
        )
    legit = card["legit"]
    by_rule = ", ".join(f"{r} {n}" for r, n in legit["byRule"].items()) or "none"
    lines += [
        "",
        f"legit transactions: {legit['transactions']:,}; false alerts {legit['falseAlerts']:,} "
        f"on {legit['alertedTransactions']:,} of them ({by_rule})",
    ]
    return "\n".join(lines)
