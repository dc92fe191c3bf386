"""Rules for tests: the repository's own ``rules.yaml``, and variants of it written to a
file (as an operator would edit it), so tests judge by exactly what ships."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fraud_detection.rules import RuleSet
from fraud_detection.rules.config import load_rules
from fraud_detection.settings import DEFAULT_RULES_FILE


def shipped_rules() -> RuleSet:
    """The rules the repository ships (``fraud-detection-service/rules.yaml``)."""
    return load_rules(DEFAULT_RULES_FILE)


def shipped_document() -> dict[str, Any]:
    document = yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def rules_document(
    *,
    params: dict[str, dict[str, Any]] | None = None,
    rules: dict[str, dict[str, Any]] | None = None,
    extra: list[dict[str, Any]] | None = None,
    decision: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The shipped document with ``params`` (by rule id) merged into rules' params,
    ``rules`` (by rule id) merged into rules, ``extra`` rules appended."""
    document = shipped_document()
    for rule in document["rules"]:
        rule.setdefault("params", {}).update((params or {}).get(rule["id"], {}))
        rule.update((rules or {}).get(rule["id"], {}))
    document["rules"].extend(extra or [])
    if decision:
        document["decision"] = {**document.get("decision", {}), **decision}
    return document


def write_rules(path: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as YAML to ``path`` (atomically, as editors that save to a
    temporary file and rename do); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    temporary.replace(path)
    return path
