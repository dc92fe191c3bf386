#!/usr/bin/env python3
"""Exercise the fraud detection platform end to end and check what comes out.

Each scenario sends transactions for fresh user ids to the transaction-service, waits
until the detector has decided every one of them, then waits for their alerts at the
alert-service (``GET /api/v1/alerts?userId=``) and prints them. The exit status is 0
only when every expected alert arrived and no unexpected one did.

    python test-client.py --test all            # large, rapid, location, random
    python test-client.py --test rapid --follow # also print alerts live (SSE)
    python test-client.py --follow              # only watch the live stream
    python test-client.py --test large --wait 2 # each decision inline (Prefer: wait=2)
    python test-client.py --health
    python test-client.py --simulate --transactions 2000 --seed 7  # tools/simulate.py

Needs only the standard library and ``requests``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

LARGE = "large_transaction_detected"
RAPID = "multiple_rapid_transactions_detected"
LOCATION = "unusual_location_change_detected"
SHORT_NAMES = {LARGE: "large", RAPID: "rapid", LOCATION: "location"}
CITIES = ["New York", "London", "Tokyo", "Paris", "Sydney", "Toronto", "Berlin", "Singapore"]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fresh_user(scenario: str) -> str:
    return f"tc-{scenario}-{uuid.uuid4().hex[:10]}"


@dataclass
class Sent:
    transaction_id: str
    user_id: str
    body: dict[str, Any]


@dataclass
class Scenario:
    """Transactions to send and the alerts they must produce, per user.

    ``expected`` is None for the random scenario: there the check is that the
    alert-service holds exactly the alerts the detector decided on.
    """

    name: str
    title: str
    transactions: list[dict[str, Any]]
    expected: dict[str, Counter[str]] | None
    delay: float = 0.0


@dataclass
class Outcome:
    name: str
    passed: bool
    summary: str
    alerts: list[dict[str, Any]] = field(default_factory=list)


class Api:
    """The two HTTP APIs the client talks to."""

    def __init__(
        self,
        url: str,
        alerts_url: str,
        api_key: str | None,
        timeout: float,
        wait: int | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.alerts_url = alerts_url.rstrip("/")
        self.session = requests.Session()
        if api_key:
            self.session.headers["X-API-Key"] = api_key
        self.timeout = timeout
        self.wait = wait

    def post_transaction(self, body: dict[str, Any]) -> requests.Response:
        """POST one transaction; with `wait`, as ``Prefer: wait=N`` (the decision inline)."""
        if self.wait is None:
            return self.session.post(f"{self.url}/api/v1/transactions", json=body, timeout=10)
        return self.session.post(
            f"{self.url}/api/v1/transactions",
            json=body,
            headers={"Prefer": f"wait={self.wait}"},
            timeout=10 + self.wait,
        )

    def transaction(self, transaction_id: str) -> dict[str, Any] | None:
        response = self.session.get(f"{self.url}/api/v1/transactions/{transaction_id}", timeout=10)
        return response.json() if response.status_code == 200 else None

    def alerts(self, user_id: str) -> list[dict[str, Any]]:
        response = self.session.get(
            f"{self.alerts_url}/api/v1/alerts",
            params={"userId": user_id, "limit": "1000"},
            timeout=10,
        )
        response.raise_for_status()
        return list(response.json()["alerts"])


# -- scenarios ----------------------------------------------------------------------


def scenario_large() -> Scenario:
    big, normal = fresh_user("large"), fresh_user("large-ctl")
    return Scenario(
        "large",
        "15,000 USD alerts; 9,999 and exactly 10,000 USD do not",
        [
            {"userId": big, "amount": "15000.00", "currency": "USD", "location": "New York"},
            {"userId": normal, "amount": "9999.00", "currency": "USD", "location": "Chicago"},
            {"userId": normal, "amount": "10000.00", "currency": "USD", "location": "Chicago"},
        ],
        {big: Counter({LARGE: 1}), normal: Counter()},
    )


def scenario_rapid() -> Scenario:
    user = fresh_user("rapid")
    start = datetime.now(UTC) - timedelta(seconds=30)
    return Scenario(
        "rapid",
        "7 transactions within 6 s (event time): the 6th and the 7th alert",
        [
            {
                "userId": user,
                "amount": f"{20 + i}.00",
                "currency": "USD",
                "location": "London",
                "timestamp": iso(start + timedelta(seconds=i)),
            }
            for i in range(7)
        ],
        {user: Counter({RAPID: 2})},
    )


def scenario_location() -> Scenario:
    traveller, nearby, slow = fresh_user("loc"), fresh_user("loc-ctl"), fresh_user("loc-slow")
    now = datetime.now(UTC) - timedelta(seconds=20)

    def txn(user: str, place: str, when: datetime) -> dict[str, Any]:
        return {
            "userId": user,
            "amount": "42.00",
            "currency": "USD",
            "location": place,
            "timestamp": iso(when),
        }

    return Scenario(
        "location",
        "New York -> Tokyo in 2 s alerts; New York -> Newark in 2 s and "
        "New York -> London in 10 h do not",
        [
            txn(traveller, "New York", now),
            txn(traveller, "Tokyo", now + timedelta(seconds=2)),
            txn(nearby, "New York", now),
            txn(nearby, "Newark", now + timedelta(seconds=2)),
            txn(slow, "New York", now - timedelta(hours=10)),
            txn(slow, "London", now),
        ],
        {traveller: Counter({LOCATION: 1}), nearby: Counter(), slow: Counter()},
    )


def scenario_random(count: int, delay: float, seed: int | None = None) -> Scenario:
    rng = random.Random(seed)
    users = [fresh_user("random") for _ in range(3)]
    transactions = []
    for _ in range(count):
        large = rng.random() < 0.1
        amount = rng.uniform(10_001, 20_000) if large else rng.uniform(1, 500)
        transactions.append(
            {
                "userId": rng.choice(users),
                "amount": f"{amount:.2f}",
                "currency": rng.choice(["USD", "USD", "USD", "EUR", "GBP"]),
                "location": rng.choice(CITIES),
            }
        )
    return Scenario(
        "random",
        f"{count} random transactions over {len(users)} users, {delay:g} s apart: "
        "every decided alert must arrive",
        transactions,
        None,
        delay=delay,
    )


# -- output ---------------------------------------------------------------------------


def describe_alert(alert: dict[str, Any]) -> str:
    txn = alert.get("transaction", {})
    details = " ".join(
        f"{key}={value}" for key, value in alert.get("details", {}).items() if value is not None
    )
    return (
        f"ALERT {alert.get('alertType', '?'):<38} [{alert.get('severity', '?')}] "
        f"user {txn.get('userId', '?')}  {txn.get('amount', '?')} {txn.get('currency', '')} "
        f"in {txn.get('location', '?')}  {details}"
    )


def describe_decision(response: requests.Response) -> str:
    """The inline decision of a 201 to ``Prefer: wait=N``, e.g. ``decision: review (risk
    60) large-amount``."""
    decision = response.json().get("decision")
    if not isinstance(decision, dict):
        return "decision: none inline (the service did not apply Prefer: wait)"
    status = decision.get("status", "?")
    if status == "pending":
        applied = response.headers.get("Preference-Applied", "the wait")
        return f"decision: pending (not made within {applied})"
    if status == "error":
        return f"decision: error ({decision.get('error', '?')})"
    rules = ", ".join(str(r.get("ruleId", "?")) for r in decision.get("reasons", []))
    return f"decision: {status} (risk {decision.get('riskScore')}) {rules}".rstrip()


def describe_types(counts: Counter[str]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{SHORT_NAMES.get(t, t)} x{n}" for t, n in sorted(counts.items()))


# -- live stream ------------------------------------------------------------------


def sse_events(response: requests.Response) -> Iterator[tuple[str, str, str]]:
    """(event, id, data) of each event of a server-sent events response."""
    event, event_id = "message", ""
    data: list[str] = []
    for raw in response.iter_lines(chunk_size=None, decode_unicode=True):
        line = raw if isinstance(raw, str) else raw.decode("utf-8")
        if not line:
            if data:
                yield event, event_id, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "id":
            event_id = value
        elif name == "data":
            data.append(value)


class Follower:
    """Reads ``/api/v1/alerts/stream`` in a thread, prints each alert as it arrives and
    remembers which alertIds were seen; reconnects with Last-Event-ID."""

    def __init__(self, api: Api, *, show: Callable[[str], None]) -> None:
        self.api = api
        self.show = show
        self.seen: dict[str, float] = {}
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._last_id = ""
        self._thread = threading.Thread(target=self._run, name="sse-follower", daemon=True)

    def start(self, wait: float = 10.0) -> bool:
        self._thread.start()
        return self.connected.wait(wait)

    def stop(self) -> None:
        """Stop reconnecting. The reading thread is a daemon blocked in a socket read
        (closing the response from here would wait for the next heartbeat), so it is
        left to end with the process."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            headers = {"Accept": "text/event-stream"}
            if self._last_id:
                headers["Last-Event-ID"] = self._last_id
            try:
                with self.api.session.get(
                    f"{self.api.alerts_url}/api/v1/alerts/stream",
                    headers=headers,
                    stream=True,
                    timeout=(5, 60),
                ) as response:
                    response.raise_for_status()
                    self.connected.set()
                    for event, event_id, data in sse_events(response):
                        if event != "alert":
                            continue
                        self._last_id = event_id or self._last_id
                        alert = json.loads(data)
                        self.seen[str(alert.get("alertId", event_id))] = time.monotonic()
                        self.show(
                            f"[live {datetime.now().strftime('%H:%M:%S')}] " + describe_alert(alert)
                        )
            except (requests.RequestException, ValueError, AttributeError) as exc:
                if self._stop.is_set():
                    return
                self.show(f"[live] stream interrupted ({type(exc).__name__}); reconnecting")
                self._stop.wait(1.0)


# -- running a scenario ---------------------------------------------------------------


class Runner:
    def __init__(
        self,
        api: Api,
        *,
        timeout: float,
        follower: Follower | None,
        show: Callable[[str], None],
    ) -> None:
        self.api = api
        self.timeout = timeout
        self.follower = follower
        # Every line goes through `show`, which the follower's thread shares: two threads
        # printing at once could otherwise splice a live alert into the middle of a line.
        self.show = show

    def run(self, scenario: Scenario) -> Outcome:
        self.show(f"\n== {scenario.name}: {scenario.title}")
        sent: list[Sent] = []
        rejected = 0
        for index, body in enumerate(scenario.transactions):
            if index and scenario.delay:
                time.sleep(scenario.delay)
            response = self.api.post_transaction(body)
            line = (
                f"   POST {body['userId']:<28} {body['amount']:>10} {body['currency']} "
                f"{body['location']:<10} {body.get('timestamp', '(now)'):<24} -> "
                f"{response.status_code}"
            )
            if response.status_code == 201:
                transaction_id = response.json()["transactionId"]
                sent.append(Sent(transaction_id, body["userId"], body))
                self.show(f"{line} {transaction_id}")
                if self.api.wait is not None:
                    self.show(f"      {describe_decision(response)}")
            else:
                rejected += 1
                self.show(f"{line} {response.text[:200]}")
        if rejected:
            return Outcome(scenario.name, False, f"{rejected} transaction(s) not accepted")

        started = time.monotonic()
        decisions = self._wait_for_decisions(sent)
        undecided = [s.transaction_id for s in sent if s.transaction_id not in decisions]
        self.show(f"   decided {len(decisions)}/{len(sent)} in {time.monotonic() - started:.1f} s")
        if undecided:
            return Outcome(
                scenario.name, False, f"{len(undecided)} transaction(s) never decided: {undecided}"
            )

        decided_ids = {
            str(a["alertId"]) for decision in decisions.values() for a in decision.get("alerts", [])
        }
        users = sorted({s.user_id for s in sent})
        found = self._wait_for_alerts(users, decided_ids)
        for alert in sorted(found, key=lambda a: str(a.get("timestamp", ""))):
            self.show("   " + describe_alert(alert))
        return self._verdict(scenario, users, decided_ids, found)

    def _wait_for_decisions(self, sent: list[Sent]) -> dict[str, dict[str, Any]]:
        decisions: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for item in sent:
                if item.transaction_id in decisions:
                    continue
                record = self.api.transaction(item.transaction_id)
                if record is not None and record.get("status") not in (None, "pending"):
                    decisions[item.transaction_id] = record
            if len(decisions) == len(sent):
                break
            time.sleep(0.2)
        return decisions

    def _wait_for_alerts(self, users: list[str], decided_ids: set[str]) -> list[dict[str, Any]]:
        """Poll the alert-service until it holds every decided alert (or the deadline)."""
        deadline = time.monotonic() + self.timeout
        while True:
            found = [alert for user in users for alert in self.api.alerts(user)]
            ids = {str(a["alertId"]) for a in found}
            if decided_ids <= ids or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def _verdict(
        self,
        scenario: Scenario,
        users: list[str],
        decided_ids: set[str],
        found: list[dict[str, Any]],
    ) -> Outcome:
        problems = []
        found_ids = [str(a["alertId"]) for a in found]
        duplicates = [i for i, n in Counter(found_ids).items() if n > 1]
        if duplicates:
            problems.append(f"duplicate alerts {duplicates}")
        missing = decided_ids - set(found_ids)
        if missing:
            problems.append(f"{len(missing)} decided alert(s) never reached the alert-service")
        stray = set(found_ids) - decided_ids
        if stray:
            problems.append(f"{len(stray)} alert(s) the detector did not decide on")
        got_total: Counter[str] = Counter(str(a["alertType"]) for a in found)
        if scenario.expected is not None:
            for user in users:
                want = scenario.expected.get(user, Counter())
                got = Counter(
                    str(a["alertType"])
                    for a in found
                    if a.get("transaction", {}).get("userId") == user
                )
                if got != want:
                    problems.append(
                        f"user {user}: expected {describe_types(want)}, got {describe_types(got)}"
                    )
        if self.follower is not None and found:
            deadline = time.monotonic() + min(self.timeout, 10.0)
            while time.monotonic() < deadline and not set(found_ids) <= set(self.follower.seen):
                time.sleep(0.1)
            not_live = set(found_ids) - set(self.follower.seen)
            if not_live:
                problems.append(f"{len(not_live)} alert(s) not seen on the live stream")
        expected_total = (
            sum(scenario.expected.values(), Counter()) if scenario.expected is not None else None
        )
        wanted = (
            describe_types(expected_total)
            if expected_total is not None
            else f"{len(decided_ids)} decided"
        )
        live = f"; {len(found_ids)} seen live" if self.follower is not None and found else ""
        summary = f"expected {wanted}; arrived {len(found_ids)} ({describe_types(got_total)}){live}"
        if problems:
            summary += "; " + "; ".join(problems)
        return Outcome(scenario.name, not problems, summary, found)


# -- health ---------------------------------------------------------------------------


def check_health(urls: dict[str, str]) -> int:
    failures = 0
    for name, url in urls.items():
        try:
            response = requests.get(url, timeout=5)
            body = response.text.strip()
            ok = response.status_code == 200
        except requests.RequestException as exc:
            body, ok = f"unreachable: {type(exc).__name__}", False
        failures += not ok
        print(f"{'OK  ' if ok else 'FAIL'} {name:<24} {url}  {body}", flush=True)
    return 0 if failures == 0 else 1


# -- command line ---------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Send test transactions to the fraud detection platform and check the "
        "alerts that come out (exit status 0 only if exactly the expected alerts arrived)."
    )
    parser.add_argument("--test", choices=["large", "rapid", "location", "random", "all"])
    parser.add_argument("--count", type=int, default=10, help="random: transactions to send")
    parser.add_argument("--delay", type=float, default=0.2, help="random: seconds between them")
    parser.add_argument("--health", action="store_true", help="check the three health endpoints")
    parser.add_argument("--url", default="http://localhost:3001", help="transaction-service")
    parser.add_argument("--alerts-url", default="http://localhost:5002", help="alert-service")
    parser.add_argument("--detector-url", default="http://localhost:5001", help="for --health")
    parser.add_argument(
        "--follow", action="store_true", help="print alerts live from the stream (SSE)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for decisions and alerts"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("API_KEY"),
        help="X-API-Key for the transaction API (default $API_KEY)",
    )
    parser.add_argument("--seed", type=int, help="random: seed for a repeatable run")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="labelled traffic and a scorecard per fraud pattern: tools/simulate.py with "
        "the options that follow (see python tools/simulate.py --help)",
    )
    parser.add_argument(
        "--wait",
        type=int,
        metavar="N",
        help="send Prefer: wait=N (seconds; the service caps it at 10) and print each "
        "transaction's decision as the 201 carries it",
    )
    args = parser.parse_args(argv)
    if not (args.test or args.health or args.follow):
        parser.error("give --test, --health or --follow")
    if args.wait is not None and args.wait < 0:
        parser.error("--wait must be 0 or more seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--simulate" in argv:  # a thin entry: the simulator lives in tools/ beside this file
        from tools import simulate

        return simulate.main([a for a in argv if a != "--simulate"])
    args = parse_args(argv)
    if args.health:
        status = check_health(
            {
                "transaction-service": f"{args.url.rstrip('/')}/api/v1/health",
                "fraud-detection-service": f"{args.detector_url.rstrip('/')}/health",
                "alert-service": f"{args.alerts_url.rstrip('/')}/health",
            }
        )
        if not args.test and not args.follow:
            return status
        if status:
            return status

    api = Api(args.url, args.alerts_url, args.api_key, args.timeout, args.wait)
    lock = threading.Lock()

    def show(text: str) -> None:
        with lock:
            print(text, flush=True)

    follower = None
    if args.follow:
        follower = Follower(api, show=show)
        show(f"following {args.alerts_url}/api/v1/alerts/stream ...")
        if not follower.start():
            print("the live stream did not answer within 10 s", file=sys.stderr)
            return 1
    try:
        if not args.test:
            while True:  # --follow alone: until Ctrl-C
                time.sleep(3600)
        builders: dict[str, Callable[[], Scenario]] = {
            "large": scenario_large,
            "rapid": scenario_rapid,
            "location": scenario_location,
            "random": lambda: scenario_random(args.count, args.delay, args.seed),
        }
        names = list(builders) if args.test == "all" else [args.test]
        runner = Runner(api, timeout=args.timeout, follower=follower, show=show)
        outcomes = []
        for name in names:
            try:
                outcomes.append(runner.run(builders[name]()))
            except requests.RequestException as exc:
                outcomes.append(Outcome(name, False, f"request failed: {exc}"))
        show("\n== summary")
        for outcome in outcomes:
            show(f"   {'PASS' if outcome.passed else 'FAIL'} {outcome.name}: {outcome.summary}")
        failed = sum(not o.passed for o in outcomes)
        verdict = f"{failed} of {len(outcomes)} scenarios FAILED" if failed else "all passed"
        show(f"   {verdict}")
        return 1 if failed else 0
    except KeyboardInterrupt:
        return 0
    finally:
        if follower is not None:
            follower.stop()


if __name__ == "__main__":
    sys.exit(main())
