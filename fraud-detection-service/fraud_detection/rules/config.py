"""``rules.yaml``: its models, its JSON Schema, and loading it with readable errors.

The file's shape is the contract's::

    decision: {review_at: 40, decline_at: 80}
    rules:
      - {id: large-amount, type: large_amount, alert_type: large_transaction_detected,
         severity: high, score: 60, mode: active, params: {threshold_usd: 10000}}

Each registered rule type (`fraud_detection.rules.registry`) contributes one model, so
``params`` are validated against that type's own `RuleParams` and the generated JSON
Schema (``rules.schema.json`` beside the file, made by ``tools/rules_schema.py``) lets an
editor check them too. A bad file is refused with every problem named by file, line and
field; the caller keeps the rules it had.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from fraud_detection.rules.registry import RULE_TYPES
from fraud_detection.rules.ruleset import (
    DEFAULT_DECLINE_AT,
    DEFAULT_REVIEW_AT,
    RuleSet,
    RuleSpec,
)

RULE_ID_PATTERN = r"^[a-z0-9-]{1,64}$"
ALERT_TYPE_PATTERN = r"^[a-z0-9_]{1,128}$"


class DecisionThresholds(BaseModel):
    """Risk score (0-100) -> decision."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    review_at: int = Field(default=DEFAULT_REVIEW_AT, ge=0, le=100)
    decline_at: int = Field(default=DEFAULT_DECLINE_AT, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> DecisionThresholds:
        if self.review_at > self.decline_at:
            raise ValueError("review_at must not be above decline_at")
        return self


class _RuleBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=RULE_ID_PATTERN, description="unique; shown on alerts and decisions")
    alert_type: str | None = Field(
        default=None, pattern=ALERT_TYPE_PATTERN, description="default: the type's own"
    )
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    score: int = Field(default=50, ge=0, le=100, description="contribution to the risk score")
    mode: Literal["active", "shadow", "off"] = Field(
        default="active", description="shadow: evaluated and counted, never alerts or scores"
    )
    effect: Literal["allow"] | None = Field(
        default=None, description="allow: a hit approves and suppresses every other alert"
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _off_unquoted(cls, value: object) -> object:
        """``mode: off`` as written: YAML 1.1 (PyYAML) reads a bare ``off`` as false."""
        return "off" if value is False else value


def _rule_model(name: str) -> type[_RuleBase]:
    rule_type = RULE_TYPES[name]
    tag: Any = Literal[name]
    model: type[_RuleBase] = create_model(
        f"{''.join(p.title() for p in name.split('_'))}Rule",
        __base__=_RuleBase,
        type=(tag, ...),
        params=(rule_type.params, Field(default_factory=rule_type.params)),
    )
    return model


_RULE_MODELS = tuple(_rule_model(name) for name in RULE_TYPES)
if TYPE_CHECKING:
    RuleConfig = _RuleBase
else:  # one model per registered rule type, told apart by ``type``
    RuleConfig = Annotated[Union[_RULE_MODELS], Field(discriminator="type")]  # noqa: UP007


class RulesFile(BaseModel):
    """The whole of ``rules.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="rules.yaml")

    decision: DecisionThresholds = Field(default_factory=DecisionThresholds)
    rules: list[RuleConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RulesFile:
        ids = [r.id for r in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rule ids must be unique: {', '.join(duplicates)}")
        # An alert's id is (transaction, alert type): two active rules of one type would
        # raise the same alert. Shadow and off rules raise none, so a proposed version of
        # a rule can run in shadow beside it under the alert type it will take over.
        types = [_alert_type(r) for r in self.rules if r.mode == "active"]
        shared = sorted({t for t in types if types.count(t) > 1})
        if shared:
            raise ValueError(
                f"two active rules raise the same alert type: {', '.join(shared)} "
                "(one of them may run as mode: shadow or off)"
            )
        return self


def _alert_type(rule: Any) -> str:
    return rule.alert_type or RULE_TYPES[rule.type].alert_type


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``rules.yaml`` (what ``rules.schema.json`` holds)."""
    schema = RulesFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a rules file."""

    file: str
    line: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}"


class RulesInvalid(ValueError):
    """The file cannot be used; ``problems`` say where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def version_of(content: bytes) -> str:
    """The rules version: a hash of the file's bytes."""
    return hashlib.sha256(content).hexdigest()[:16]


def load_rules(path: Path) -> RuleSet:
    """The rule set of the file at ``path``; raises `RulesInvalid`."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise RulesInvalid([Problem(str(path), None, "file", f"cannot read: {exc}")]) from exc
    return parse_rules(content, str(path))


def parse_rules(content: bytes, file: str) -> RuleSet:
    """The rule set of ``content`` (named ``file`` in problems); raises `RulesInvalid`."""
    try:
        text = content.decode("utf-8")
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise RulesInvalid([Problem(file, None, "file", "not UTF-8")]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = None if mark is None else mark.line + 1
        reason = getattr(exc, "problem", None) or str(exc)
        raise RulesInvalid([Problem(file, line, "file", f"not valid YAML: {reason}")]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesInvalid([Problem(file, 1, "file", "must be a mapping with 'rules'")])
    try:
        parsed = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise RulesInvalid(
            [
                Problem(file, _line_of(tree, e["loc"]), _field(e["loc"]), e["msg"])
                for e in exc.errors(include_url=False)
            ]
        ) from exc
    return RuleSet(
        [
            RuleSpec(
                rule_id=rule.id,
                rule_type=rule.type,
                alert_type=_alert_type(rule),
                params=rule.params,
                severity=rule.severity,
                score=rule.score,
                mode=rule.mode,
                effect=rule.effect,
            )
            for rule in cast(list[Any], parsed.rules)
        ],
        review_at=parsed.decision.review_at,
        decline_at=parsed.decision.decline_at,
        version=version_of(content),
    )


def _field(loc: tuple[Any, ...]) -> str:
    """``rules[2].params.threshold_usd``; the discriminator's tag left out."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif i > 0 and isinstance(loc[i - 1], int) and loc[:1] == ("rules",) and i == 2:
            continue  # the union member's name (the rule type)
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "file"


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest node of ``loc`` the file has."""
    line = None if node is None else node.start_mark.line + 1
    for i, part in enumerate(loc):
        if node is None:
            break
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            if child is None:
                # a union tag (rule type) is not in the file: look one step further
                if i > 0 and isinstance(loc[i - 1], int):
                    continue
                key = next((k for k, _ in node.value if k.value == str(part)), None)
                return line if key is None else key.start_mark.line + 1
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            break
        if node is not None:
            line = node.start_mark.line + 1
    return line


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
