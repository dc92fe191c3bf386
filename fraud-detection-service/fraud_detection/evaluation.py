"""From a transaction and the state snapshot it was evaluated against to a decision, and
from a decision to its alerts. Pure: the same transaction and snapshot always give the
same decision, and the same decision always the same alerts (ids, timestamps and all).
The handler stores the first decision once and derives alerts only from the stored one,
so a redelivery sends the same alerts even after the rules changed."""

from __future__ import annotations

from datetime import datetime

from fraud_common.money import FxRates
from fraud_common.schemas import Alert, Decision, Reason, RuleError, Transaction, alert_id
from fraud_detection.geo import Coordinates, Gazetteer
from fraud_detection.rules import (
    EvaluationContext,
    Place,
    PreviousTransaction,
    RuleHit,
    RuleSet,
)
from fraud_detection.rules.base import WindowEntry
from fraud_detection.state import Snapshot, from_epoch_ms


def place_of(transaction: Transaction, gazetteer: Gazetteer) -> Place:
    """Explicit coordinates win (and are the only candidate); otherwise every reading of
    the name offline, default first (none when unresolved). The state picks among them
    (the nearest to the user's previous place), see `context_for`."""
    if transaction.latitude is not None and transaction.longitude is not None:
        candidates: tuple[Coordinates, ...] = (
            Coordinates(transaction.latitude, transaction.longitude),
        )
    else:
        candidates = gazetteer.candidates(transaction.location)
    return Place(transaction.location, candidates[0] if candidates else None, candidates)


def context_for(
    transaction: Transaction,
    place: Place,
    snapshot: Snapshot,
    fx_rates: FxRates,
    listed: frozenset[tuple[str, str]] = frozenset(),
) -> EvaluationContext:
    previous = snapshot.previous
    if previous is not None and previous.transaction_id == transaction.transactionId:
        previous = None  # its own earlier run, once the snapshot had expired
    if snapshot.coordinates is not None:  # the candidate the state chose, kept for replays
        place = Place(place.name, snapshot.coordinates, place.candidates)
    # Each event time becomes a datetime once, for the event times and the entries alike.
    recent = tuple(map(from_epoch_ms, snapshot.recent_event_ms))
    later = tuple(map(from_epoch_ms, snapshot.later_event_ms))
    # Positional, in the fields' order: one is built per transaction, and a named tuple
    # built from keywords costs three times as much (mypy checks each field's type).
    return EvaluationContext(
        transaction,
        transaction.usd_value(fx_rates),
        place,
        recent,
        None
        if previous is None
        else PreviousTransaction(
            previous.transaction_id,
            Place(previous.location, previous.coordinates),
            from_epoch_ms(previous.event_ms),
        ),
        from_epoch_ms(snapshot.evaluated_at_ms),
        later,
        listed,
        (
            *map(WindowEntry, reversed(recent), reversed(snapshot.recent_amounts)),
            *map(WindowEntry, later, snapshot.later_amounts),
        ),
        snapshot.place_history(),
    )


def evaluate(
    rules: RuleSet,
    transaction: Transaction,
    place: Place,
    snapshot: Snapshot,
    fx_rates: FxRates,
    listed: frozenset[tuple[str, str]] = frozenset(),
) -> Decision:
    """``listed``: the (list, field) pairs whose value is on the list now (list_match)."""
    context = context_for(transaction, place, snapshot, fx_rates, listed)
    outcome = rules.evaluate(context)
    verdict = rules.verdict(outcome.hits)
    return Decision(
        transactionId=transaction.transactionId,
        status=verdict.status,
        riskScore=verdict.risk_score,
        reasons=[_reason(hit) for hit in outcome.hits],
        rulesVersion=rules.version,
        ruleErrors=[RuleError(ruleId=f.rule_id, error=f.error) for f in outcome.failures],
        shadowHits=[_reason(hit) for hit in outcome.shadow_hits],
        allowedBy=outcome.allowed_by,
        evaluatedAt=context.evaluated_at,
    )


def _reason(hit: RuleHit) -> Reason:
    return Reason(
        ruleId=hit.rule_id,
        alertType=hit.alert_type,
        severity=hit.severity,
        score=hit.score,
        message=hit.message,
        details=hit.details,
    )


def error_decision(transaction_id: str, reason: str, at: datetime) -> Decision:
    """The decision of a transaction that could not be evaluated at all."""
    return Decision(transactionId=transaction_id, status="error", error=reason, evaluatedAt=at)


def alerts_for(transaction: Transaction, decision: Decision) -> list[Alert]:
    """One alert per reason of the decision."""
    if not decision.reasons:  # nearly every decision: nothing to build
        return []
    return [
        Alert(
            alertId=alert_id(transaction.transactionId, reason.alertType),
            alertType=reason.alertType,
            severity=reason.severity,
            transaction=transaction,
            timestamp=decision.evaluatedAt,
            details=reason.details,
            message=reason.message,
            ruleId=reason.ruleId,
            rulesVersion=decision.rulesVersion,
            riskScore=decision.riskScore,
            decision=decision.status,
            traceId=decision.traceId,
        )
        for reason in decision.reasons
    ]
