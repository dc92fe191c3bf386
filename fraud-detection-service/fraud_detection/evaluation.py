"""From a transaction and the state snapshot it was evaluated against to hits, alerts
and a decision. Pure: the same transaction and snapshot always give the same output
(alert ids, timestamps and all), which is what makes redelivery harmless."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fraud_common.money import FxRates
from fraud_common.schemas import Alert, Decision, DecisionAlert, Transaction, alert_id
from fraud_detection.geo import Coordinates, Gazetteer
from fraud_detection.rules import (
    EvaluationContext,
    Place,
    PreviousTransaction,
    RuleHit,
    RuleSet,
    Verdict,
)
from fraud_detection.state import Snapshot, from_epoch_ms


def place_of(transaction: Transaction, gazetteer: Gazetteer) -> Place:
    """Explicit coordinates win; otherwise the name resolved offline (or none)."""
    if transaction.latitude is not None and transaction.longitude is not None:
        coordinates: Coordinates | None = Coordinates(transaction.latitude, transaction.longitude)
    else:
        coordinates = gazetteer.resolve(transaction.location)
    return Place(transaction.location, coordinates)


def context_for(
    transaction: Transaction, place: Place, snapshot: Snapshot, fx_rates: FxRates
) -> EvaluationContext:
    previous = snapshot.previous
    if previous is not None and previous.transaction_id == transaction.transactionId:
        previous = None  # its own earlier run, once the snapshot had expired
    return EvaluationContext(
        transaction=transaction,
        amount_usd=fx_rates.to_usd(transaction.amount, transaction.currency),
        place=place,
        recent_event_times=tuple(from_epoch_ms(t) for t in snapshot.recent_event_ms),
        previous=None
        if previous is None
        else PreviousTransaction(
            transaction_id=previous.transaction_id,
            place=Place(previous.location, previous.coordinates),
            event_time=from_epoch_ms(previous.event_ms),
        ),
        evaluated_at=from_epoch_ms(snapshot.evaluated_at_ms),
    )


@dataclass(frozen=True)
class Evaluation:
    transaction: Transaction
    hits: tuple[RuleHit, ...]
    verdict: Verdict
    evaluated_at: datetime
    replayed: bool

    def alerts(self) -> list[Alert]:
        return [
            Alert(
                alertId=alert_id(self.transaction.transactionId, hit.alert_type),
                alertType=hit.alert_type,
                severity=hit.severity,
                transaction=self.transaction,
                timestamp=self.evaluated_at,
                details=hit.details,
                message=hit.message,
            )
            for hit in self.hits
        ]

    def decision(self) -> Decision:
        return Decision(
            transactionId=self.transaction.transactionId,
            status=self.verdict.status,
            riskScore=self.verdict.risk_score,
            alerts=[
                DecisionAlert(
                    alertId=alert_id(self.transaction.transactionId, hit.alert_type),
                    alertType=hit.alert_type,
                    severity=hit.severity,
                    message=hit.message,
                )
                for hit in self.hits
            ],
            evaluatedAt=self.evaluated_at,
        )


def evaluate(
    rules: RuleSet,
    transaction: Transaction,
    place: Place,
    snapshot: Snapshot,
    fx_rates: FxRates,
) -> Evaluation:
    context = context_for(transaction, place, snapshot, fx_rates)
    hits = tuple(rules.evaluate(context))
    return Evaluation(
        transaction=transaction,
        hits=hits,
        verdict=rules.verdict(hits),
        evaluated_at=context.evaluated_at,
        replayed=snapshot.replayed,
    )
