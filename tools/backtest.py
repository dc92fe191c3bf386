"""Replay recorded transactions through a rule set and say what it would have done.

    python tools/backtest.py --rules fraud-detection-service/rules.yaml --input recorded.jsonl
    python tools/backtest.py --rules proposed.yaml --input recorded.jsonl --labels labels.jsonl
    python tools/backtest.py --rules rules.yaml --compare-rules proposed.yaml --input ... --json
    python tools/backtest.py --rules rules.yaml --from-topic transactions --bootstrap HOST:PORT

Input: one JSON transaction per line, as on the ``transactions`` topic or as POSTed
(`tools.backtest_input`), or the topic itself (read to its watermarks, as
`tools.export_topic` does); ``--since``/``--until`` keep an event-time range. The
transactions are replayed in event-time order through the detector's own code on a
private redis-server (`tools.backtest_replay`), never the live keys. Printed: per rule
its hits (with ``--labels`` precision and recall), the decisions by status, and with
``--compare-rules`` the alerts the second rule set would raise that the first does not
(new) and the reverse (gone), each set replayed on its own fresh state. ``--json``
prints one JSON object; the readable table is the default. Progress and the measured
rate go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: the repository and the detector importable
    _REPO = Path(__file__).resolve().parent.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _REPO / "tools"]
    sys.path[:0] = [str(_REPO), str(_REPO / "fraud-detection-service")]

from confluent_kafka import KafkaException

from fraud_detection.geo import load_gazetteer
from fraud_detection.rules.config import RulesInvalid, load_rules
from fraud_detection.settings import DetectorSettings
from tools.backtest_input import Scanned, event_time, file_lines, scan
from tools.backtest_replay import DEFAULT_BATCH
from tools.backtest_report import compare, read_labels, summarize, table
from tools.backtest_workers import Usage, default_workers, run
from tools.export_topic import read_topic


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", required=True, type=Path, help="rules.yaml to replay")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="JSONL of transactions (- for stdin)")
    source.add_argument("--from-topic", metavar="TOPIC", help="replay this topic instead")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (with --from-topic)")
    parser.add_argument("--labels", help="JSONL of {transactionId|userId, label}")
    parser.add_argument("--compare-rules", type=Path, metavar="FILE", help="second rules.yaml")
    parser.add_argument("--since", type=event_time, help="event time from (inclusive)")
    parser.add_argument("--until", type=event_time, help="event time until (exclusive)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=argparse.SUPPRESS)
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes, users split between them (default: one per core)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.from_topic and not args.bootstrap:
        parser.error("--from-topic needs --bootstrap")
    if args.batch_size < 1 or args.workers < 1:
        parser.error("--batch-size and --workers must be at least 1")
    return args


def _scanned(args: argparse.Namespace) -> Scanned:
    if args.input is not None:
        lines: Any = file_lines(args.input)
    else:
        lines = read_topic(args.bootstrap, args.from_topic, progress=not args.quiet)
    return scan(lines)


def _gazetteer(*, quiet: bool) -> None:
    """The detector's gazetteer, loaded before the replay is timed (the first run on a
    machine builds its cache file, a few seconds once)."""
    started = time.monotonic()
    load_gazetteer(DetectorSettings.model_fields["gazetteer_min_population"].default)
    if not quiet:
        print(f"backtest: gazetteer ready in {time.monotonic() - started:.2f} s", file=sys.stderr)


def _report(evaluations: int, elapsed: float, in_all: float, usage: Usage) -> None:
    """The rate (of validating and replaying, and of the whole run from the first line
    read), and the CPU per evaluation of each process (main, workers, Redis)."""

    def each(seconds: list[float]) -> str:
        return "+".join(f"{s * 1e6 / max(evaluations, 1):,.0f}" for s in seconds) or "0"

    print(
        f"backtest: validated and replayed {evaluations:,} evaluations in {elapsed:.2f} s "
        f"({evaluations / max(elapsed, 1e-9):,.0f}/s; with reading {in_all:.2f} s, "
        f"{evaluations / max(in_all, 1e-9):,.0f}/s); CPU {usage.total():.2f} s, "
        f"{usage.total() * 1e6 / max(evaluations, 1):,.0f} us per evaluation: "
        f"main {each([usage.main])}, workers {each(usage.workers)}, "
        f"redis-server {each(usage.redis)}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The detector logs every alert it raises; a backtest reports them instead.
    logging.getLogger("fraud_detection.alerts").setLevel(logging.ERROR)
    try:
        rules = load_rules(args.rules)
        other = None if args.compare_rules is None else load_rules(args.compare_rules)
        labels = None if args.labels is None else read_labels(file_lines(args.labels))
        read_started = time.monotonic()
        scanned = _scanned(args)
        read_seconds = time.monotonic() - read_started
    except RulesInvalid as exc:
        print(f"backtest: rules refused: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KafkaException, TimeoutError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(
            f"backtest: read {len(scanned.objects):,} lines in {read_seconds:.2f} s",
            file=sys.stderr,
        )
    _gazetteer(quiet=args.quiet)
    started, usage = time.monotonic(), Usage()
    passes = [("rules", rules)] + ([] if other is None else [("compare", other)])
    replayed = run(
        passes,
        scanned,
        workers=args.workers,
        since=args.since,
        until=args.until,
        batch_size=args.batch_size,
        progress=not args.quiet,
        usage=usage,
    )
    loaded = replayed.skipped
    for problem in loaded.problems:
        print(f"backtest: skipped {problem.text}", file=sys.stderr)
    judged, *judged_other = replayed.passes
    summary = summarize(rules, judged, labels)
    summary["skipped"] = loaded.skipped
    if loaded.duplicates:
        summary["duplicates"] = loaded.duplicates
    if other is not None:
        summary["compare"] = compare(
            judged, judged_other[0], other, str(args.compare_rules), labels
        )
    if not args.quiet:
        done = time.monotonic()
        _report(len(passes) * len(judged), done - started, done - read_started, usage)
    if args.json:
        print(json.dumps(summary, sort_keys=False))
    else:
        print(table(summary, str(args.rules)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
