"""Cases in Redis: one open case per user collecting its alerts; assign; close with a verdict.

Storing a batch of alerts into cases, in single-slot steps safe to repeat (the alert
store's pattern; nothing spans two Redis Cluster slots):

1. per user, read the open-case pointer (one pipeline for the batch);
2. per alert, ``add_alert.lua`` in the user's slot: the members hash (alertId -> caseId)
   makes a redelivered alert a no-op, also after its case was closed; the pointer is
   checked against the one read in step 1, and a script that finds another case open
   (a second worker opened it meanwhile) answers it, and the alert is retried with it;
3. the case id -> user lookup (``SET``) and the listing indexes (``ZADD GT``), repeated
   for every alert of the batch, new or not, so a crash between 2 and 3 is repaired by the
   redelivery;
4. the rules' alert counters (`RuleQuality.count_alerts`, once per alert by marker).

Closing is ``change_case.lua`` (status check and change in the user's slot, ``409`` on a
closed case), then the labels and the counters (`RuleQuality.label`), then the indexes;
a second close repeats those idempotent steps before answering ``409``, so a crash after
the script is repaired by a retry. Nothing here expires: cases outlive their alerts
(each case keeps copies of its first `CaseBounds.alerts_kept` alerts).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import redis

from alert_service.cases.paging import Page, read_page
from alert_service.cases.quality import RuleQuality, rule_of
from fraud_common import keys, metrics
from fraud_common.jsonutil import isoformat_utc
from fraud_common.schemas import Alert

VERDICTS = ("confirmed_fraud", "false_positive", "legitimate")
STATUSES = ("open", "closed")
_ADD = resources.files("alert_service.cases").joinpath("add_alert.lua").read_text("utf-8")
_CHANGE = resources.files("alert_service.cases").joinpath("change_case.lua").read_text("utf-8")
_MAX_ROUNDS = 10  # rounds of step 2 before a contended batch fails (and is retried)


@dataclass(frozen=True)
class CaseBounds:
    alerts_kept: int = 1000
    """Alert copies (and their history lines) kept per case; ``alertCount`` counts all."""


@dataclass(frozen=True)
class Joined:
    """Where one alert went: ``outcome`` is ``opened``, ``joined`` or ``already``."""

    alert_id: str
    case_id: str
    outcome: str


class CaseNotFound(LookupError):
    pass


class CaseClosed(Exception):
    """The case is closed: it cannot be closed or assigned again (409)."""


class CaseStore:
    def __init__(
        self,
        client: redis.Redis,
        quality: RuleQuality,
        bounds: CaseBounds | None = None,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._redis = client
        self._quality = quality
        self._bounds = bounds or CaseBounds()
        self._clock = clock
        self._new_id = new_id
        self._add = client.register_script(_ADD)
        self._change = client.register_script(_CHANGE)

    # -- alerts into cases -------------------------------------------------------------

    def add_alerts(self, alerts: Sequence[Alert]) -> list[Joined]:
        """Put every alert into its user's open case (see the module's steps). Raises
        `redis.RedisError` when Redis is away: the caller retries the whole batch."""
        if not alerts:
            return []
        users = list(dict.fromkeys(a.transaction.userId for a in alerts))
        pipe = self._redis.pipeline(transaction=False)
        for user in users:
            pipe.get(keys.case_open(user))
        candidate = {
            u: open_id or self._new_id() for u, open_id in zip(users, pipe.execute(), strict=True)
        }
        placed: dict[int, Joined] = {}
        pending = list(range(len(alerts)))
        for _ in range(_MAX_ROUNDS):
            if not pending:
                break
            pending = self._place(alerts, pending, candidate, placed)
        if pending:
            raise redis.ConnectionError("cases: the open case kept changing under this batch")
        joined = [placed[i] for i in range(len(alerts))]
        self._index(alerts, joined)
        self._quality.count_alerts(alerts)
        for item in joined:
            if item.outcome == "opened":
                metrics.CASES_OPENED.inc()
        return joined

    def _place(
        self,
        alerts: Sequence[Alert],
        pending: list[int],
        candidate: dict[str, str],
        placed: dict[int, Joined],
    ) -> list[int]:
        """One round of step 2 for the ``pending`` alerts; returns those to retry."""
        now = self._clock()
        at, ms = isoformat_utc(datetime.fromtimestamp(now, UTC)), int(now * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for i in pending:
            alert = alerts[i]
            user = alert.transaction.userId
            case_id = candidate[user]
            self._add(
                keys=[
                    keys.case_open(user),
                    keys.case_members(user),
                    keys.case(user, case_id),
                    keys.case_alerts(user, case_id),
                    keys.case_history(user, case_id),
                ],
                args=[
                    alert.alertId,
                    case_id,
                    alert.to_json(),
                    -1 if alert.riskScore is None else alert.riskScore,
                    at,
                    ms,
                    user,
                    self._bounds.alerts_kept,
                    rule_of(alert),
                ],
                client=pipe,
            )
        retry = []
        for i, (code, value) in zip(pending, pipe.execute(), strict=True):
            user = alerts[i].transaction.userId
            code = int(code)
            if code >= 0:
                outcome = ("already", "joined", "opened")[code]
                placed[i] = Joined(alerts[i].alertId, str(value), outcome)
            else:
                # -1: another case is open now; -2: the one read was closed meanwhile.
                candidate[user] = str(value) if code == -1 else self._new_id()
                retry.append(i)
        return retry

    def _index(self, alerts: Sequence[Alert], joined: Sequence[Joined]) -> None:
        """Step 3: the lookup and the indexes of every case the batch touched."""
        cases = {j.case_id: a.transaction.userId for a, j in zip(alerts, joined, strict=True)}
        pipe = self._redis.pipeline(transaction=False)
        for case_id, user in cases.items():
            pipe.set(keys.case_owner(case_id), user)
            pipe.hmget(keys.case(user, case_id), ["status", "updatedAtMs"])
        states = pipe.execute()[1::2]
        pipe = self._redis.pipeline(transaction=False)
        for case_id, (status, updated) in zip(cases, states, strict=True):
            if updated is None:
                continue
            if status == "open":
                pipe.zadd(keys.cases_index("open"), {case_id: int(updated)}, gt=True)
            pipe.zadd(keys.cases_index("all"), {case_id: int(updated)}, gt=True)
        pipe.execute()

    # -- reading -----------------------------------------------------------------------

    def get(self, case_id: str) -> dict[str, Any]:
        """The case with its alert copies and history; `CaseNotFound` if unknown."""
        user = self._owner(case_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(keys.case(user, case_id))
        pipe.lrange(keys.case_alerts(user, case_id), 0, -1)
        pipe.lrange(keys.case_history(user, case_id), 0, -1)
        fields, alerts, history = pipe.execute()
        if not fields:
            raise CaseNotFound(case_id)
        case = summary(fields)
        label = label_of(case["verdict"])
        case.update(
            comment=fields.get("comment"),
            closedAt=fields.get("closedAt"),
            closedBy=fields.get("closedBy"),
            alerts=[{**json.loads(a), "label": label} for a in alerts],
            history=[_history_entry(h) for h in history],
        )
        return case

    def list_cases(self, *, status: str | None, limit: int, cursor: str | None) -> Page:
        """A page of case summaries, newest activity first (`alert_service.cases.paging`);
        index entries whose case has moved on (closed since) are skipped and repaired."""
        index = keys.cases_index(status or "all")
        page = read_page(self._redis, index, limit=limit, cursor=cursor)
        if not page.ids:
            return page
        pipe = self._redis.pipeline(transaction=False)
        for case_id in page.ids:
            pipe.get(keys.case_owner(case_id))
        owners = pipe.execute()
        pipe = self._redis.pipeline(transaction=False)
        for case_id, user in zip(page.ids, owners, strict=True):
            pipe.hgetall(keys.case(user or "", case_id))
        cases = []
        for fields in pipe.execute():
            if not fields:
                continue
            item = summary(fields)
            if status is not None and item["status"] != status:
                self._reindex(item["caseId"], item["status"], int(fields["updatedAtMs"]))
                continue
            cases.append(item)
        return Page(ids=[c["caseId"] for c in cases], next_cursor=page.next_cursor, items=cases)

    def _owner(self, case_id: str) -> str:
        user = self._redis.get(keys.case_owner(case_id))
        if user is None:
            raise CaseNotFound(case_id)
        return str(user)

    # -- analysts' changes -------------------------------------------------------------

    def assign(self, case_id: str, assignee: str, *, actor: str) -> dict[str, Any]:
        user = self._owner(case_id)
        self._run_change(user, case_id, actor, "assign", assignee)
        return self.get(case_id)

    def close(self, case_id: str, verdict: str, comment: str, *, actor: str) -> dict[str, Any]:
        """Close with ``verdict``: labels the case's alerts and their transactions and
        counts them per rule. `CaseClosed` (after repairing the labels, the counters and
        the indexes) when it was closed already."""
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        user = self._owner(case_id)
        try:
            self._run_change(user, case_id, actor, "close", verdict, comment)
        except CaseClosed:
            self._after_close(case_id)
            raise
        case = self._after_close(case_id)
        metrics.CASES_CLOSED.labels(verdict).inc()
        return case

    def _after_close(self, case_id: str) -> dict[str, Any]:
        case = self.get(case_id)
        alerts = [Alert.model_validate(a) for a in case["alerts"]]
        verdict, at = str(case["verdict"]), str(case["closedAt"])
        self._quality.label(alerts, case_id=case_id, verdict=verdict, at=at)
        self._reindex(case_id, "closed", _ms(case["updatedAt"]))
        return case

    def _run_change(self, user: str, case_id: str, actor: str, action: str, *args: str) -> int:
        now = self._clock()
        reply = self._change(
            keys=[
                keys.case(user, case_id),
                keys.case_history(user, case_id),
                keys.case_open(user),
            ],
            args=[
                action,
                case_id,
                actor,
                isoformat_utc(datetime.fromtimestamp(now, UTC)),
                int(now * 1000),
                *args,
            ],
        )
        code = int(reply[0])
        if code == 0:
            raise CaseNotFound(case_id)
        if code == 409:
            raise CaseClosed(case_id)
        updated = int(reply[1])
        if action == "assign":
            pipe = self._redis.pipeline(transaction=False)
            pipe.zadd(keys.cases_index("open"), {case_id: updated}, gt=True)
            pipe.zadd(keys.cases_index("all"), {case_id: updated}, gt=True)
            pipe.execute()
        return updated

    def _reindex(self, case_id: str, status: str, updated_ms: int) -> None:
        """A closed case: out of the open index, into the closed one (idempotent)."""
        if status != "closed":
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(keys.cases_index("open"), case_id)
        pipe.zadd(keys.cases_index("closed"), {case_id: updated_ms})
        pipe.zadd(keys.cases_index("all"), {case_id: updated_ms}, gt=True)
        pipe.execute()


def summary(fields: dict[str, str]) -> dict[str, Any]:
    """A case hash as the contract's list item."""
    risk = int(fields.get("maxRiskScore", -1))
    return {
        "caseId": fields["caseId"],
        "userId": fields["userId"],
        "status": fields["status"],
        "openedAt": fields["openedAt"],
        "updatedAt": fields["updatedAt"],
        "alertCount": int(fields.get("alertCount", 0)),
        "maxRiskScore": None if risk < 0 else risk,
        "assignee": fields.get("assignee"),
        "verdict": fields.get("verdict"),
    }


def label_of(verdict: str | None) -> str | None:
    """confirmed_fraud -> fraud; false_positive and legitimate -> legit; open -> None."""
    if verdict is None:
        return None
    return "fraud" if verdict == "confirmed_fraud" else "legit"


def _history_entry(raw: str) -> dict[str, Any]:
    entry = dict(json.loads(raw))
    details = entry.get("details")
    entry["details"] = details if isinstance(details, dict) else {}  # cjson: {} may be []
    return entry


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
