"""Send realistic labelled traffic to the platform and score what the rules caught.

    python tools/simulate.py --transactions 2000 --users 200 --rate 200 --seed 7
    python tools/simulate.py --duration 60 --rate 50 --seed 7 --out sim-7
    python tools/simulate.py --transactions 500 --seed 7 --start 2026-12-01T12:00:00Z --dry-run
    python test-client.py --simulate --transactions 2000 --seed 7     # the same

Generates the traffic of `tools.simulation.traffic` (ordinary users, travellers and
injected fraud patterns; deterministic for ``--seed`` and ``--start``), posts it in
event-time order at ``--rate`` transactions a second (batches when the rate is high),
writes ``transactions.jsonl`` (each POST body with its ``transactionId``) and
``labels.jsonl`` (``{"transactionId", "userId", "label", "pattern"}``) into ``--out``,
waits until every transaction is decided and the alert-service holds their alerts,
then prints the scorecard (also written as ``scorecard.json``): per pattern the
episodes injected, caught and missed, and the false alerts on legit transactions.

``--dry-run`` sends nothing and writes the two files with the simulator's own ids:
the same seed and start give the same bytes. The files replay with
``tools/backtest.py --input <out>/transactions.jsonl --labels <out>/labels.jsonl``.
Event times span ``--span-hours`` (default 24) ending at ``--start`` (default now), so
they fit within the service's event-age bound (7 days). Needs only ``requests``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: import `tools.*` from the repository root
    _REPO = Path(__file__).resolve().parent.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _REPO / "tools"]
    sys.path.insert(0, str(_REPO))

from tools.simulation.scorecard import score, table
from tools.simulation.sending import Api, send, wait_for_alerts, wait_for_decisions
from tools.simulation.traffic import Plan, SimTransaction, generate

MAX_SPAN_HOURS = 6 * 24


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's options (also `test-client.py --simulate`'s)."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--transactions", type=int, help="how many to send (default 1000)")
    size.add_argument("--duration", type=float, help="seconds of sending at --rate")
    parser.add_argument("--rate", type=float, default=100.0, help="transactions per second")
    parser.add_argument("--users", type=int, default=100, help="distinct users (at least 5)")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same traffic")
    parser.add_argument("--start", help="latest event time, ISO 8601 (default now)")
    parser.add_argument("--span-hours", type=float, default=24.0, help="event times span")
    parser.add_argument("--fraud-share", type=float, default=0.05, help="users with an episode")
    parser.add_argument("--user-prefix", help="user ids <prefix>-<n> (default sim<seed>)")
    parser.add_argument("--out", type=Path, help="directory for the files (default sim-<seed>)")
    parser.add_argument("--dry-run", action="store_true", help="write the files, send nothing")
    parser.add_argument("--json", action="store_true", help="print the scorecard as JSON")


def plan_of(args: argparse.Namespace) -> Plan:
    start = datetime.now(UTC) if args.start is None else _moment(args.start)
    if args.duration is not None:
        count = round(args.duration * args.rate)
    else:
        count = 1000 if args.transactions is None else args.transactions
    if not 0 < args.span_hours <= MAX_SPAN_HOURS:
        raise ValueError(f"--span-hours must be within (0, {MAX_SPAN_HOURS}]")
    if args.rate <= 0:
        raise ValueError("--rate must be above 0")
    return Plan(
        seed=args.seed,
        users=args.users,
        transactions=count,
        start=start,
        span=timedelta(hours=args.span_hours),
        fraud_share=args.fraud_share,
        user_prefix=args.user_prefix,
    )


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("--start needs a UTC offset, e.g. 2026-12-01T12:00:00Z")
    return moment.astimezone(UTC)


def write_files(out: Path, transactions: Sequence[SimTransaction], ids: Sequence[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "transactions.jsonl").open("w", encoding="utf-8") as sent:
        for sim, transaction_id in zip(transactions, ids, strict=True):
            sent.write(json.dumps({"transactionId": transaction_id, **sim.body}) + "\n")
    with (out / "labels.jsonl").open("w", encoding="utf-8") as labels:
        for sim, transaction_id in zip(transactions, ids, strict=True):
            row = {
                "transactionId": transaction_id,
                "userId": sim.user_id,
                "label": sim.label,
                "pattern": sim.pattern,
            }
            labels.write(json.dumps(row) + "\n")


def run(args: argparse.Namespace, api: Api | None = None) -> int:
    """The simulation of ``args`` (parsed with `add_arguments`'s options)."""
    try:
        plan = plan_of(args)
        transactions = generate(plan)
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path(f"sim-{plan.seed}")
    if args.dry_run:
        write_files(out, transactions, [t.ref for t in transactions])
        print(f"simulate: wrote {len(transactions):,} transactions and labels to {out}")
        return 0
    api = api or Api(args.url, args.alerts_url, args.api_key, timeout=10.0)
    key_prefix = f"sim:{plan.prefix}:{plan.seed}:{plan.start.isoformat()}"
    ids, seconds = send(api, transactions, rate=args.rate, key_prefix=key_prefix)
    write_files(out, transactions, ids)
    print(
        f"simulate: sent {len(ids):,} transactions in {seconds:.1f} s "
        f"({len(ids) / max(seconds, 1e-9):,.0f}/s); files in {out}",
        file=sys.stderr,
    )
    decided = wait_for_decisions(api, ids, timeout=args.timeout)
    users = sorted({t.user_id for t in transactions})
    alerts = wait_for_alerts(api, decided, users, timeout=args.timeout)
    pairs = [(a["transaction"]["transactionId"], a.get("ruleId") or a["alertType"]) for a in alerts]
    card: dict[str, Any] = score(transactions, ids, pairs)
    card["undecided"] = len(ids) - len(decided)
    (out / "scorecard.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(card))
    else:
        print(table(card))
        if card["undecided"]:
            print(f"\n{card['undecided']:,} transactions were still undecided after the wait")
    return 0 if card["undecided"] == 0 else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--url", default="http://localhost:3001", help="transaction-service")
    parser.add_argument("--alerts-url", default="http://localhost:5002", help="alert-service")
    parser.add_argument("--api-key", default=os.environ.get("API_KEY"), help="X-API-Key")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for results")
    parser.add_argument("--detector-url", help=argparse.SUPPRESS)  # test-client's, unused here
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
