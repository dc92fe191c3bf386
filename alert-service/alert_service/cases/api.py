"""The analyst's routes: ``/api/v1/cases*``, ``/api/v1/rules/quality``, ``/api/v1/labels``.

Behind ``API_KEYS`` like the other data routes (`alert_service.api.require_api_key`).
The acting analyst, written into a case's history, is the ``X-Analyst`` header, else the
position of the API key presented (``key-1``, ``key-2``, ... never the key), else, with no
keys configured, ``anonymous``.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, request

from alert_service.api import API_KEYS_EXTENSION, limit_param, require_api_key
from alert_service.cases.bodies import AssignBody, CloseBody, parse_body, valid_name
from alert_service.cases.paging import BadCursor
from alert_service.cases.quality import RuleQuality
from alert_service.cases.store import STATUSES, CaseClosed, CaseNotFound, CaseStore
from fraud_common.api_keys import HEADER as API_KEY_HEADER
from fraud_common.api_keys import ApiKeys
from fraud_common.http_errors import ApiError, field_error, json_response
from fraud_common.request_body import read_json_body

CASES_EXTENSION = "alert_service.cases"
QUALITY_EXTENSION = "alert_service.rule_quality"
ANALYST_HEADER = "X-Analyst"
MAX_BODY = 16 * 1024
CASE_ID_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
_CASE_ID = re.compile(CASE_ID_PATTERN)

blueprint = Blueprint("cases", __name__, url_prefix="/api/v1")
blueprint.before_request(require_api_key)


def _cases() -> CaseStore:
    store: CaseStore = current_app.extensions[CASES_EXTENSION]
    return store


def _quality() -> RuleQuality:
    quality: RuleQuality = current_app.extensions[QUALITY_EXTENSION]
    return quality


def actor() -> str:
    """Who acts (see the module); a malformed ``X-Analyst`` is a 400."""
    named = request.headers.get(ANALYST_HEADER)
    if named is not None:
        if not valid_name(named):
            raise field_error(ANALYST_HEADER, "must be 1-64 characters without control characters")
        return named
    api_keys: ApiKeys = current_app.extensions[API_KEYS_EXTENSION]
    position = api_keys.position(request.headers.get(API_KEY_HEADER))
    return f"key-{position}" if position is not None else "anonymous"


def _not_found(case_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no case with id {case_id[:64]!r}")


def _case_id(case_id: str) -> str:
    if not _CASE_ID.match(case_id):
        raise _not_found(case_id)
    return case_id


@blueprint.get("/cases")
def list_cases() -> Response:
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise field_error("status", "must be open or closed")
    limit = limit_param()
    cursor = request.args.get("cursor") or None
    try:
        page = _cases().list_cases(status=status, limit=limit, cursor=cursor)
    except BadCursor as exc:
        raise field_error("cursor", str(exc)) from exc
    return json_response({"cases": page.items, "nextCursor": page.next_cursor})


@blueprint.get("/cases/<caseId>")
def get_case(caseId: str) -> Response:  # the path parameter is named as in the document
    try:
        return json_response(_cases().get(_case_id(caseId)))
    except CaseNotFound as exc:
        raise _not_found(caseId) from exc


@blueprint.post("/cases/<caseId>/assign")
def assign_case(caseId: str) -> Response:
    case_id = _case_id(caseId)
    who = actor()
    body = parse_body(AssignBody, read_json_body(MAX_BODY))
    try:
        return json_response(_cases().assign(case_id, body.assignee, actor=who))
    except CaseNotFound as exc:
        raise _not_found(caseId) from exc
    except CaseClosed as exc:
        raise ApiError(409, "conflict", "the case is closed: it cannot be assigned") from exc


@blueprint.post("/cases/<caseId>/close")
def close_case(caseId: str) -> Response:
    case_id = _case_id(caseId)
    who = actor()
    body = parse_body(CloseBody, read_json_body(MAX_BODY))
    try:
        return json_response(_cases().close(case_id, body.verdict, body.comment, actor=who))
    except CaseNotFound as exc:
        raise _not_found(caseId) from exc
    except CaseClosed as exc:
        raise ApiError(409, "conflict", "the case is closed already") from exc


@blueprint.get("/rules/quality")
def rule_quality() -> Response:
    return json_response({"rules": _quality().report()})


@blueprint.get("/labels")
def labels() -> Response:
    """The labels as JSON lines (the backtest's ``--labels`` file), read before answering
    so a Redis that goes away is a 503, not a cut-off body."""
    lines = [f"{line}\n" for line in _quality().labels()]
    return Response("".join(lines), mimetype="application/x-ndjson")
