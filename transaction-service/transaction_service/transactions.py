"""``/api/v1/transactions``: submit one, submit a batch, read one with its decision."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from flask import Blueprint, Response, current_app, g, request
from flask.blueprints import BlueprintSetupState

from fraud_common import keys, metrics, tracing
from fraud_common.api_keys import HEADER as API_KEY_HEADER
from fraud_common.http_errors import ApiError, json_response, unavailable, validation_error
from fraud_common.jsonutil import dumps
from fraud_common.request_body import read_json_body
from fraud_common.schemas import Decision, FieldProblem, Transaction
from transaction_service import archive_reader, idempotency, inline_decision
from transaction_service.context import EXTENSION, ServiceContext, current
from transaction_service.publishing import PublishFailed, StorageUnavailable
from transaction_service.validation import parse_batch, parse_transaction, transaction_id_for

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 64

bp = Blueprint("transactions", __name__, url_prefix="/api/v1/transactions")

WAITER = "transaction_service.decision_waiter"
CLOSERS = "fraud_common.closers"


@bp.record_once
def _install_waiter(state: BlueprintSetupState) -> None:
    """Build the `inline_decision.DecisionWaiter` of the app as the blueprint is
    registered in `create_app` (after the service context is installed), and close it
    with the app's other clients."""
    context: ServiceContext = state.app.extensions[EXTENSION]
    settings = context.settings
    waiter = inline_decision.DecisionWaiter.connect(
        settings.redis_url.get_secret_value(),
        context.redis,
        socket_timeout=settings.redis_socket_timeout,
    )
    state.app.extensions[WAITER] = waiter
    state.app.extensions.setdefault(CLOSERS, []).append(waiter.close)


@bp.before_request
def _start_trace() -> None:
    """Continue the request's W3C ``traceparent`` (or start a trace): every log line of
    the request carries its trace id, and the published transactions carry the header.
    A batch is one trace: every item is published with the request's ``traceparent``."""
    g.traceparent = tracing.continue_or_start(request.headers.get(tracing.HEADER))
    g.trace_token = tracing.bind(g.traceparent.trace_id)


@bp.after_request
def _answer_trace(response: Response) -> Response:
    response.headers[tracing.HEADER] = g.traceparent.header()
    return response


@bp.teardown_request
def _end_trace(_exc: BaseException | None) -> None:
    token = g.pop("trace_token", None)
    if token is not None:
        tracing.unbind(token)


@bp.before_request
def _authenticate() -> None:
    if not current().api_keys.allows(request.headers.get(API_KEY_HEADER)):
        raise ApiError(
            401,
            "unauthorized",
            f"a valid {API_KEY_HEADER} header is required",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )


@bp.post("")
def create() -> Response:
    context = current()
    key = idempotency.validate_key(request.headers.get(idempotency.HEADER))
    body = read_json_body(context.settings.max_body_bytes)
    try:
        transaction = parse_transaction(
            body,
            received_at=datetime.now(UTC),
            transaction_id=transaction_id_for(key),
            fx_rates_path=context.settings.fx_rates_path,
            max_event_age=context.settings.max_event_age,
        )
    except FieldProblem as problem:
        raise validation_error(problem.details) from None
    wait = inline_decision.requested_wait(request.headers.getlist(inline_decision.HEADER))
    acknowledged_at: float | None = None
    payload = transaction.to_json()

    def accept(stored: bool) -> Response:
        nonlocal acknowledged_at
        _accept(context, [transaction], [payload], stored=stored)
        acknowledged_at = time.monotonic()
        location = f"{bp.url_prefix}/{transaction.transactionId}"
        answer = (  # the stored JSON is embedded as is rather than parsed and re-encoded
            f'{{"status":"success","transactionId":"{transaction.transactionId}",'
            f'"transaction":{payload}}}'
        )
        return json_response(answer, 201, {"Location": location})

    response = _once(context, key, body, accept, [transaction], [payload])
    return _with_decisions(response, wait, acknowledged_at, batch=False)


@bp.post("/batch")
def create_batch() -> Response:
    context = current()
    settings = context.settings
    key = idempotency.validate_key(request.headers.get(idempotency.HEADER))
    body = read_json_body(settings.max_batch_bytes)
    try:
        transactions = parse_batch(
            body,
            max_items=settings.max_batch_items,
            received_at=datetime.now(UTC),
            idempotency_key=key,
            fx_rates_path=settings.fx_rates_path,
            max_event_age=settings.max_event_age,
        )
    except FieldProblem as problem:
        raise validation_error(problem.details) from None
    wait = inline_decision.requested_wait(request.headers.getlist(inline_decision.HEADER))
    acknowledged_at: float | None = None
    payloads = [t.to_json() for t in transactions]

    def accept(stored: bool) -> Response:
        nonlocal acknowledged_at
        _accept(context, transactions, payloads, stored=stored)
        acknowledged_at = time.monotonic()
        ids = [t.transactionId for t in transactions]
        return json_response({"status": "success", "transactionIds": ids, "count": len(ids)}, 201)

    response = _once(context, key, body, accept, transactions, payloads)
    return _with_decisions(response, wait, acknowledged_at, batch=True)


@bp.get("/<transaction_id>")
def read(transaction_id: str) -> Response:
    if len(transaction_id) > MAX_ID_LENGTH:
        raise ApiError(404, "not_found", "no such transaction")
    try:
        record, decision = current().redis.mget(
            keys.transaction(transaction_id), keys.decision(transaction_id)
        )
    except redis.RedisError:
        log.warning("could not read a transaction", exc_info=True)
        raise unavailable("storage is unavailable; retry shortly") from None
    if record is None:  # past its Redis retention: the archive (when there is one)
        record, decision = archive_reader.read_archived(transaction_id) or (None, None)
    if record is None:
        raise ApiError(404, "not_found", f"no transaction {transaction_id}")
    view = json.loads(record)
    if decision is None:
        view.update(status="pending", riskScore=None, alerts=[], evaluatedAt=None)
    else:
        verdict = Decision.model_validate_json(decision)
        stored = verdict.model_dump(mode="json", exclude_none=True)
        view.update(
            status=verdict.status,
            riskScore=verdict.riskScore,
            reasons=[{k: v for k, v in r.items() if k != "details"} for r in stored["reasons"]],
            rulesVersion=verdict.rulesVersion,
            alerts=[a.model_dump(mode="json") for a in verdict.alerts()],
            evaluatedAt=stored["evaluatedAt"],
        )
        if verdict.ruleErrors:
            view["ruleErrors"] = stored["ruleErrors"]
        if verdict.shadowHits:  # what a rule in shadow would have said: never scored
            view["shadowHits"] = [
                {k: v for k, v in r.items() if k != "details"} for r in stored["shadowHits"]
            ]
        if verdict.error is not None:
            view["error"] = verdict.error
    return json_response(dumps(view))


def _with_decisions(
    response: Response, wait: int | None, acknowledged_at: float | None, *, batch: bool
) -> Response:
    """``Prefer: wait``: the 201 with the decision (``decisions`` for a batch, in order),
    waited for at most ``wait`` seconds after the broker's acknowledgement.

    A replayed response (Idempotency-Key) is the stored one plus the decision as it is
    now, waited for from the replay on: the stored body is the acceptance, the decision
    is added to whichever request asks for it (it is written once, so it never differs).
    """
    if wait is None or response.status_code != 201:
        return response
    start = time.monotonic() if acknowledged_at is None else acknowledged_at
    body = response.get_data(as_text=True)
    created = json.loads(body)
    ids = created["transactionIds"] if batch else [created["transactionId"]]
    waiter: inline_decision.DecisionWaiter = current_app.extensions[WAITER]
    views = waiter.decisions(ids, start + wait)
    if batch:
        response.set_data(inline_decision.with_field(body, "decisions", views))
    else:
        response.set_data(inline_decision.with_field(body, "decision", views[0]))
    response.headers[inline_decision.APPLIED_HEADER] = inline_decision.applied(wait)
    return response


def _accept(
    context: ServiceContext,
    transactions: list[Transaction],
    payloads: list[str],
    *,
    stored: bool,
) -> None:
    try:
        context.publisher.accept(
            transactions, payloads, traceparent=g.traceparent.header(), stored=stored
        )
    except StorageUnavailable:
        raise unavailable("storage is unavailable; nothing was accepted") from None
    except PublishFailed as failure:
        if failure.total == 1:
            raise unavailable("the broker did not acknowledge; nothing was accepted") from None
        error = unavailable(
            f"{len(failure.failed)} of {failure.total} transactions were not acknowledged by "
            "the broker; resend the whole batch (with the same Idempotency-Key a retry is "
            "safe: the acknowledged ones keep their transactionIds and are evaluated once)"
        )
        error.details = [
            {"field": f"transactions[{i}]", "message": "not acknowledged"} for i in failure.failed
        ]
        raise error from None
    metrics.TRANSACTIONS_ACCEPTED.inc(len(transactions))
    ids = [t.transactionId for t in transactions]
    log.info(  # with the request's trace_id (`_start_trace`)
        "accepted %d transaction(s): %s",
        len(ids),
        ids[0] if len(ids) == 1 else f"{ids[0]} .. {ids[-1]}",
        extra={"transaction_ids": ids} if len(ids) > 1 else {"transaction_id": ids[0]},
    )


def _once(
    context: ServiceContext,
    key: str | None,
    body: object,
    accept: Callable[[bool], Response],
    transactions: list[Transaction],
    payloads: list[str],
) -> Response:
    """Run ``accept`` at most once per Idempotency-Key; replay its first response.

    Where the publisher allows it (`Publisher.records_foldable`) the claim also writes
    the records (one Redis round trip for both) and ``accept(True)`` only publishes."""
    if key is None:
        return accept(False)
    store = context.idempotency
    publisher = context.publisher
    folded = publisher.records_foldable
    records = publisher.records(transactions, payloads) if folded else None
    try:
        claim = store.claim(key, idempotency.fingerprint(request.path, body), records)
    except redis.RedisError:
        log.warning("could not claim an idempotency key", exc_info=True)
        raise unavailable("storage is unavailable; nothing was accepted") from None
    if isinstance(claim, idempotency.StoredResponse):
        headers = {idempotency.REPLAYED_HEADER: "true"}
        if claim.location:
            headers["Location"] = claim.location
        return json_response(claim.body, claim.status, headers)
    try:
        response = accept(folded)
    except BaseException:
        try:
            store.release(claim)
        except redis.RedisError:
            log.warning("could not release an idempotency key", exc_info=True)
        raise
    stored = idempotency.StoredResponse(
        response.status_code, response.get_data(as_text=True), response.headers.get("Location")
    )
    try:
        store.complete(claim, stored)
    except redis.RedisError:
        # Accepted all the same; the marker expires and a retry republishes the same id.
        log.warning("could not keep the response of an idempotency key", exc_info=True)
    return response
