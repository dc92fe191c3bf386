"""From a parsed JSON body to `Transaction` objects, or the list of every problem."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from fraud_common.schemas import FieldProblem, Transaction, TransactionRequest, validation_details

# transactionIds derived from an Idempotency-Key live in their own uuid5 namespace.
_ID_NAMESPACE = uuid.UUID("0b6f3c1e-7c52-4c55-9d2a-5e8f6a1d4b93")


def transaction_id_for(idempotency_key: str | None, index: int | None = None) -> str:
    """A fresh uuid4, or, with an Idempotency-Key, a uuid5 of it (and of the batch index):
    a client retrying after a 503 whose message may have reached the broker anyway then
    republishes the same id, which the detector evaluates once."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    name = f"single:{idempotency_key}" if index is None else f"batch:{idempotency_key}:{index}"
    return str(uuid.uuid5(_ID_NAMESPACE, name))


def parse_transaction(
    body: Any,
    *,
    received_at: datetime,
    transaction_id: str,
    fx_rates_path: str | None,
    max_event_age: timedelta,
    field_prefix: str = "",
) -> Transaction:
    """Validate one transaction object; raises `FieldProblem` naming each bad field
    (prefixed with ``field_prefix``, e.g. ``transactions[3].``)."""
    if not isinstance(body, dict):
        raise FieldProblem([{"field": field_prefix.rstrip(".") or "body", "message": _NOT_OBJECT}])
    try:
        request = TransactionRequest.model_validate(body)
        return Transaction.accept(
            request,
            received_at=received_at,
            transaction_id=transaction_id,
            fx_rates_path=fx_rates_path,
            max_event_age=max_event_age,
        )
    except ValidationError as exc:
        details = validation_details(exc)
    except FieldProblem as problem:
        details = problem.details
    raise FieldProblem([_prefixed(d, field_prefix) for d in details])


def parse_batch(
    body: Any,
    *,
    max_items: int,
    received_at: datetime,
    idempotency_key: str | None,
    fx_rates_path: str | None,
    max_event_age: timedelta,
) -> list[Transaction]:
    """Validate ``{"transactions": [...]}`` all-or-nothing; `FieldProblem` lists every bad
    item by index and field."""
    if not isinstance(body, dict):
        raise FieldProblem([{"field": "body", "message": _NOT_OBJECT}])
    unknown = [name for name in body if name != "transactions"]
    problems = [{"field": name, "message": "is not a known field"} for name in unknown]
    items = body.get("transactions")
    if not isinstance(items, list):
        message = "is required" if "transactions" not in body else "must be an array"
        raise FieldProblem([{"field": "transactions", "message": message}, *problems])
    if not 1 <= len(items) <= max_items:
        problems.append(
            {"field": "transactions", "message": f"must hold 1 to {max_items} transactions"}
        )
        raise FieldProblem(problems)
    accepted = []
    for index, item in enumerate(items):
        try:
            accepted.append(
                parse_transaction(
                    item,
                    received_at=received_at,
                    transaction_id=transaction_id_for(idempotency_key, index),
                    fx_rates_path=fx_rates_path,
                    max_event_age=max_event_age,
                    field_prefix=f"transactions[{index}].",
                )
            )
        except FieldProblem as problem:
            problems.extend(problem.details)
    if problems:
        raise FieldProblem(problems)
    return accepted


_NOT_OBJECT = "must be a JSON object"


def _prefixed(detail: dict[str, str], prefix: str) -> dict[str, str]:
    field = detail["field"]
    if field == "body":  # a problem of the whole object (e.g. latitude without longitude)
        return {"field": prefix.rstrip(".") or "body", "message": detail["message"]}
    return {"field": f"{prefix}{field}", "message": detail["message"]}
