"""``/api/v1/rules``: the rules in force with their counters, and a reload on demand.

    GET  /api/v1/rules          {"version", "loadedAt", "file", "decision", "rules": [...]}
    POST /api/v1/rules/reload   200 {"version", "changed", "loadedAt"} | 400 the problems

Counters (``stats``: evaluated, hits) live in Redis (`RuleStats`), shared by every worker
and process; they count first decisions only, never a redelivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Literal

import redis
from flask import Blueprint, Flask, Response
from pydantic import BaseModel, ConfigDict, Field

from fraud_common import keys
from fraud_common.http_errors import ApiError, json_response, unavailable
from fraud_common.jsonutil import isoformat_utc
from fraud_detection.rules import RuleSet
from fraud_detection.rules.config import RulesInvalid
from fraud_detection.rules_source import RulesSource

log = logging.getLogger(__name__)

EXTENSION = "fraud_detection.rules_api"


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleCounters(_View):
    evaluated: int = Field(ge=0, description="first decisions this rule took part in")
    hits: int = Field(ge=0, description="of those, how many it fired on")


class RuleView(_View):
    id: str
    type: str
    alertType: str
    mode: Literal["active", "shadow", "off"]
    effect: Literal["allow"] | None
    severity: str
    score: int = Field(ge=0, le=100)
    params: dict[str, Any]
    stats: RuleCounters


class Thresholds(_View):
    review_at: int = Field(ge=0, le=100)
    decline_at: int = Field(ge=0, le=100)


class RulesView(_View):
    """``GET /api/v1/rules``."""

    version: str
    loadedAt: str
    file: str
    decision: Thresholds
    rules: list[RuleView]


class Reloaded(_View):
    """``POST /api/v1/rules/reload`` when the file was taken."""

    version: str
    changed: bool
    loadedAt: str


class RulesProblem(_View):
    file: str
    line: int | None
    field: str
    message: str


class RulesInvalidError(_View):
    code: Literal["rules_invalid"]
    message: str
    details: list[RulesProblem]


class RulesInvalidBody(_View):
    """``POST /api/v1/rules/reload`` when the file was refused (400)."""

    error: RulesInvalidError


class RuleStats:
    """Per-rule counters in one Redis hash (``<ruleId>:evaluated``, ``<ruleId>:hits``)."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    @staticmethod
    def count(
        pipe: redis.client.Pipeline, rules: RuleSet, judged: int, hit_rule_ids: Iterable[str]
    ) -> None:
        """Add ``judged`` first evaluations and the ids of the rules that fired on them
        (active and shadow, once per hit) to a pipeline the caller executes."""
        if judged == 0:
            return
        for field in RuleStats.evaluated_fields(rules):
            pipe.hincrby(keys.RULE_STATS, field, judged)
        counted: dict[str, int] = {}
        for rule_id in hit_rule_ids:
            counted[rule_id] = counted.get(rule_id, 0) + 1
        for rule_id, count in counted.items():
            pipe.hincrby(keys.RULE_STATS, RuleStats.hits_field(rule_id), count)

    @staticmethod
    def evaluated_fields(rules: RuleSet) -> list[str]:
        """The fields one first evaluation adds 1 to: one per rule evaluated (for a
        writer that counts otherwise than `count`, e.g. ``scripts/decide_batch.lua``)."""
        return [f"{spec.rule_id}:evaluated" for spec in rules.evaluated]

    @staticmethod
    def hits_field(rule_id: str) -> str:
        """The field a hit of ``rule_id`` adds 1 to."""
        return f"{rule_id}:hits"

    def read(self) -> dict[str, dict[str, int]]:
        raw = self._redis.hgetall(keys.RULE_STATS)
        stats: dict[str, dict[str, int]] = {}
        for field, value in raw.items():
            name = field.decode() if isinstance(field, bytes) else str(field)
            rule_id, _, counter = name.rpartition(":")
            stats.setdefault(rule_id, {"evaluated": 0, "hits": 0})[counter] = int(value)
        return stats


def install_rules_api(
    app: Flask, source: RulesSource, stats: RuleStats, *, authorize: Callable[[], None]
) -> None:
    """Serve the rules API on ``app``; ``authorize`` guards the mutating call (raises
    `ApiError` 401 when ``ADMIN_API_KEYS`` is set and no valid key is presented)."""
    blueprint = Blueprint("rules", __name__, url_prefix="/api/v1/rules")

    @blueprint.get("")
    def show() -> Response:
        rules = source.current()
        try:
            counters = stats.read()
        except redis.RedisError:
            log.warning("could not read the rule counters", exc_info=True)
            raise unavailable("Redis is unavailable; retry shortly") from None
        view = RulesView(
            version=rules.version,
            loadedAt=isoformat_utc(source.loaded_at),
            file=str(source.path),
            decision=Thresholds(review_at=rules.review_at, decline_at=rules.decline_at),
            rules=[
                RuleView(
                    id=spec.rule_id,
                    type=spec.rule_type,
                    alertType=spec.alert_type,
                    mode=spec.mode,
                    effect=spec.effect,
                    severity=spec.severity,
                    score=spec.score,
                    params=spec.params.model_dump(mode="json"),
                    stats=RuleCounters(**counters.get(spec.rule_id, {"evaluated": 0, "hits": 0})),
                )
                for spec in rules.specs
            ],
        )
        return json_response(view.model_dump(mode="json"))

    @blueprint.post("/reload")
    def reload() -> Response:
        authorize()
        try:
            result = source.reload()
        except RulesInvalid as invalid:
            raise ApiError(
                400,
                "rules_invalid",
                "the rules file was refused; the previous rules stay in force",
                details=[p.as_dict() for p in invalid.problems],
            ) from None
        return json_response(
            Reloaded(
                version=result.version,
                changed=result.changed,
                loadedAt=isoformat_utc(result.loaded_at),
            ).model_dump(mode="json")
        )

    app.extensions[EXTENSION] = source
    app.register_blueprint(blueprint)
