"""Request bodies of the case routes (unknown fields refused, as everywhere in the API)."""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fraud_common.http_errors import ApiError, validation_error
from fraud_common.schemas import validation_details

NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,64}$"
"""An analyst's name (``assignee``, ``X-Analyst``): 1-64 characters, no control ones."""
_NAME = re.compile(NAME_PATTERN)
MAX_COMMENT = 2000
_Body = TypeVar("_Body", bound=BaseModel)


def valid_name(value: str) -> bool:
    return bool(_NAME.match(value)) and value.strip() == value and bool(value)


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    assignee: str = Field(min_length=1, max_length=64)

    @field_validator("assignee")
    @classmethod
    def _name(cls, value: str) -> str:
        if not valid_name(value):
            raise ValueError("must be 1-64 characters without control characters or edge spaces")
        return value


class CloseBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    verdict: Literal["confirmed_fraud", "false_positive", "legitimate"]
    comment: str = Field(default="", max_length=MAX_COMMENT)


def parse_body(model: type[_Body], data: Any) -> _Body:
    """``data`` (parsed JSON) as ``model``, or the API's 400 naming each bad field."""
    if not isinstance(data, dict):
        raise ApiError(
            400,
            "validation_error",
            "the body must be a JSON object",
            [{"field": "body", "message": "must be a JSON object"}],
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(validation_details(exc)) from exc
