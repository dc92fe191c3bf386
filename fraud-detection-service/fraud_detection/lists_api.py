"""``/api/v1/lists``: put, remove and read list entries (effective from the next
transaction the detector evaluates).

    PUT    /api/v1/lists/<list>/entries/<value>   {"reason"?, "ttlSeconds"?}
                                                  201 new | 200 replaced: {"list", "entry"}
    DELETE /api/v1/lists/<list>/entries/<value>   204 | 404 not on the list
    GET    /api/v1/lists/<list>                   200 {"list", "entries", "count"}

``<value>`` is the rest of the path, percent-decoded and taken as it is (``a%2Fb`` and
``a/b`` are both ``a/b``, ``%2Fa`` is ``/a``; slashes are not merged). When
``ADMIN_API_KEYS`` is set, PUT and DELETE need ``X-API-Key`` with one of them; reading
stays open, as the contract asks keys of mutating calls only.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from werkzeug.routing import PathConverter

from fraud_common.api_keys import HEADER, ApiKeys
from fraud_common.http_errors import ApiError, field_error, json_response, validation_error
from fraud_common.request_body import has_body, read_json_body
from fraud_common.schemas import validation_details
from fraud_detection.lists import (
    LIST_NAME_PATTERN,
    MAX_REASON_LENGTH,
    MAX_TTL_SECONDS,
    MAX_VALUE_LENGTH,
    ListEntry,
    ListStore,
    valid_name,
    valid_value,
)

EXTENSION = "fraud_detection.lists_api"
MAX_BODY_BYTES = 16 * 1024
MUTATING = frozenset({"PUT", "DELETE"})

blueprint = Blueprint("lists", __name__, url_prefix="/api/v1/lists")


class EntryRequest(BaseModel):
    """The optional body of a PUT. Unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str | None = Field(
        default=None, max_length=MAX_REASON_LENGTH, description="why the value is listed"
    )
    ttlSeconds: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_TTL_SECONDS,
        description="seconds until the entry stops counting (at most 10 years); "
        "absent or null: never",
    )


class EntryWritten(BaseModel):
    list: str
    entry: ListEntry


Entries = list[ListEntry]  # an alias: inside ListView, ``list`` is the field


class ListView(BaseModel):
    list: str
    entries: Entries = Field(description="the live entries, by value")
    count: int = Field(ge=0)


@dataclass(frozen=True)
class ListsContext:
    store: ListStore
    admin_keys: ApiKeys


class ValueConverter(PathConverter):
    """The rest of the path, whatever it holds: werkzeug's ``path`` refuses a leading
    slash and a newline, and a list value may have either."""

    regex = "(?s:.+)"
    part_isolating = False


def install(app: Flask, store: ListStore, admin_keys: ApiKeys) -> None:
    """Serve the lists API on ``app`` from ``store``; ``admin_keys`` guard PUT and DELETE."""
    app.extensions[EXTENSION] = ListsContext(store, admin_keys)
    app.url_map.converters["list_value"] = ValueConverter
    app.register_blueprint(blueprint)


def _context() -> ListsContext:
    context: ListsContext = current_app.extensions[EXTENSION]
    return context


@blueprint.before_request
def _authenticate() -> None:
    if request.method in MUTATING:
        _context().admin_keys.require(request.headers.get(HEADER))


@blueprint.put("/<name>/entries/<list_value:value>", merge_slashes=False)
def put_entry(name: str, value: str) -> Response:
    _check_name(name)
    _check_value(value)
    body = _entry_request()
    entry, created = _context().store.put(
        name, value, reason=body.reason, ttl_seconds=body.ttlSeconds
    )
    written = EntryWritten(list=name, entry=entry)
    return json_response(written.model_dump(), 201 if created else 200)


@blueprint.delete("/<name>/entries/<list_value:value>", merge_slashes=False)
def delete_entry(name: str, value: str) -> Response:
    _check_name(name)
    _check_value(value)
    if not _context().store.delete(name, value):
        raise ApiError(404, "not_found", f"{value[:MAX_VALUE_LENGTH]!r} is not on list {name!r}")
    return Response(status=204)


@blueprint.get("/<name>")
def get_list(name: str) -> Response:
    _check_name(name)
    entries = _context().store.entries(name)
    view = ListView(list=name, entries=entries, count=len(entries))
    return json_response(view.model_dump())


def _check_name(name: str) -> None:
    if not valid_name(name):
        raise field_error("list", f"must match {LIST_NAME_PATTERN}")


def _check_value(value: str) -> None:
    if not valid_value(value):
        raise field_error("value", f"must be 1-{MAX_VALUE_LENGTH} characters")


def _entry_request() -> EntryRequest:
    if not has_body():
        return EntryRequest()
    raw = read_json_body(MAX_BODY_BYTES)
    if not isinstance(raw, dict):
        raise field_error("body", "must be a JSON object")
    try:
        return EntryRequest.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(validation_details(exc)) from None
