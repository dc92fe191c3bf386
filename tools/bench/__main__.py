"""``python -m tools.bench`` (``make bench BENCH_ARGS=...``): see `tools.bench`.

    python -m tools.bench --quick --only single          # a smoke run, ~1 minute
    python -m tools.bench                                 # every part, own stack
    python -m tools.bench --transactions-url http://127.0.0.1:3001 \\
        --alerts-url http://127.0.0.1:5002                # a running stack
    python -m tools.bench --compare http://127.0.0.1:3000 --compare-bootstrap 127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tools.bench import machine, report
from tools.bench.context import FULL, QUICK, Bench, Sizes, Target
from tools.bench.load import loopback_address
from tools.bench.processes import Monitor, Roots, listener_of, this_process
from tools.bench.settle import settler
from tools.bench.single import batches, single

# Latency before the volume parts: Tansu's in-memory topics make each acknowledged produce
# dearer as they grow (~0.2 ms at 1k stored messages, ~0.8 ms at 300k: tools/tansu_aging.py),
# which Apache Kafka's append does not; after the single and batch parts (~500k messages)
# the broker alone saturated at 200 POSTs/s and the latency parts measured that instead.
PARTS = ("idle", "latency", "single", "batch", "drain")
"""In the order they run: idle first (the stack has just warmed up), drain last (it
leaves the biggest state behind)."""
COMPARED_PARTS = ("single", "latency")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--only", default=",".join(PARTS), help=f"parts, of {','.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~1 minute smoke")
    parser.add_argument(
        "--transactions-url", help="a running transaction-service (else: own stack)"
    )
    parser.add_argument("--alerts-url", help="its alert-service")
    parser.add_argument("--detector-url", help="its detector (for CPU and RSS)")
    parser.add_argument("--redis-url", help="its Redis (decisions read there; CPU, RSS)")
    parser.add_argument("--kafka-bootstrap", help="its broker (CPU, RSS)")
    parser.add_argument("--api-key", default=os.environ.get("API_KEY"), help="X-API-Key")
    parser.add_argument("--compare", metavar="URL", help="also a service with the original API")
    parser.add_argument("--compare-bootstrap", help="the broker with its fraud-alerts topic")
    parser.add_argument("--compare-alerts-topic", default="fraud-alerts")
    parser.add_argument("--detectors", type=int, default=1, help="own stack: detector processes")
    parser.add_argument("--log-level", default="INFO", help="own stack: LOG_LEVEL")
    parser.add_argument("--state-dir", type=Path, help="own stack: state and logs (default: temp)")
    parser.add_argument("--output-dir", type=Path, default=machine.REPO / "bench" / "results")
    parser.add_argument("--no-save", action="store_true", help="print only, write no JSON")
    sizes = parser.add_argument_group("sizes (override --quick or the full run)")
    sizes.add_argument("--seconds", type=float, help="each closed-loop and batch run")
    sizes.add_argument("--concurrency", help="closed-loop levels, e.g. 8,32,128")
    sizes.add_argument("--open-rate", type=float, help="open-loop offered POSTs/s")
    sizes.add_argument("--latency-rate", type=float, help="offered/s of the latency parts")
    sizes.add_argument("--samples", type=int, help="latency samples of each kind")
    sizes.add_argument("--drain-transactions", type=int, help="backlog preloaded")
    sizes.add_argument("--drain-processes", help="detector processes to drain with, e.g. 1,2")
    sizes.add_argument("--idle-seconds", type=float, help="idle broker measurement")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {','.join(PARTS)}")
    try:
        for url in (args.transactions_url, args.alerts_url, args.detector_url, args.compare):
            if url:
                loopback_address(url)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    if args.alerts_url and not args.transactions_url:
        parser.error("--alerts-url needs --transactions-url")
    if args.compare and not args.compare_bootstrap and "latency" in args.parts:
        parser.error("--compare with the latency part needs --compare-bootstrap")
    args.sizes = _sizes(args, parser)
    return args


def _sizes(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Sizes:
    base = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.seconds is not None:
        changes.update(
            closed_seconds=args.seconds, batch_seconds=args.seconds, open_seconds=args.seconds
        )
    if args.concurrency:
        changes["concurrency"] = tuple(int(c) for c in args.concurrency.split(","))
    for name in ("open_rate", "latency_rate", "idle_seconds", "drain_transactions"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.samples is not None:
        changes["latency_samples"] = args.samples
    if args.drain_processes:
        changes["drain_processes"] = tuple(int(p) for p in args.drain_processes.split(","))
    sizes = dataclasses.replace(base, **changes)
    if not 0 < sizes.closed_seconds <= 600 or not 0 < sizes.idle_seconds <= 600:
        parser.error("durations must be in (0, 600] s")
    if not 1 <= sizes.drain_transactions <= 2_000_000 or not 1 <= sizes.latency_samples <= 100_000:
        parser.error("--drain-transactions 1..2,000,000, --samples 1..100,000")
    if not all(1 <= c <= 256 for c in sizes.concurrency) or not all(
        1 <= p <= 16 for p in sizes.drain_processes
    ):
        parser.error("concurrency 1..256, drain processes 1..16")
    if not 0 < sizes.open_rate <= 20_000 or not 0 < sizes.latency_rate <= 5_000:
        parser.error("--open-rate (0, 20000], --latency-rate (0, 5000]")
    return sizes


def _port(address: str) -> int:
    if "://" in address:
        return urlsplit(address).port or 80
    return int(address.rsplit(":", 1)[1].split(",")[0].split("/")[0])


def _listener(address: str) -> Roots:
    port = _port(address)
    cache: list[int] = []

    def roots() -> list[int]:
        if not cache:  # found once: a lookup walks every socket of the machine
            cache.extend(listener_of(port))
        return cache

    return roots


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    meta = machine.describe()
    meta["args"] = sys.argv[1:] if argv is None else list(argv)
    meta["sizes"] = dataclasses.asdict(args.sizes)
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    run = uuid.uuid4().hex[:6]
    stack = None
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.transactions_url:
            target = Target("ours", args.transactions_url, args.alerts_url, headers=headers)
            groups: dict[str, Roots] = {"transaction-service": _listener(args.transactions_url)}
            if args.detector_url:
                groups["fraud-detection-service"] = _listener(args.detector_url)
            if args.alerts_url:
                groups["alert-service"] = _listener(args.alerts_url)
            if args.kafka_bootstrap:
                groups["broker"] = _listener(args.kafka_bootstrap)
            if args.redis_url:
                groups["redis"] = _listener(args.redis_url)
            redis_url = args.redis_url
        else:
            from tools.bench.own_stack import stack_groups, start_stack

            say("bench: starting the local stack (tools/stack.py, as make dev does) ...")
            stack = start_stack(
                args.state_dir or Path(tempfile.mkdtemp(prefix="bench-")),
                detectors=args.detectors,
                log_level=args.log_level,
            )
            say(f"bench: {stack.ready_line()}")
            target = Target(
                "ours",
                stack.service("transaction").url,
                stack.service("alert").url,
                headers=headers,
            )
            groups = stack_groups(stack)
            redis_url = stack.redis_url
        groups["load-generator"] = this_process
        compare = None
        if args.compare:
            compare = Target(
                "compared",
                args.compare,
                alerts_bootstrap=args.compare_bootstrap,
                alerts_topic=args.compare_alerts_topic,
                headers=headers,
                original_api=True,
            )
            groups["compared-service"] = _listener(args.compare)
        monitor = Monitor(groups, flat=["load-generator"]).start()
        bench = Bench(target, args.sizes, run, monitor, stack=stack, redis_url=redis_url, say=say)
        result: dict[str, Any] = {"meta": meta, "parts": {}}
        failures = run_parts(bench, args.parts, result["parts"], target)
        if compare is not None:
            compared: dict[str, Any] = {}
            failures += run_parts(
                bench, [p for p in args.parts if p in COMPARED_PARTS], compared, compare
            )
            result["compare"] = {"name": "compared", "url": args.compare, "parts": compared}
        monitor.stop()
        result["processes"] = monitor.totals()
        meta["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        meta["seconds"] = round(time.monotonic() - bench.started, 1)
        meta["failures"] = failures
    finally:
        if stack is not None:
            say("bench: stopping the local stack")
            stack.stop()
    print(report.table(result))
    if not args.no_save:
        path = report.write(result, args.output_dir)
        print(f"bench: results in {path}")
    for failure in failures:
        print(f"bench: FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


def run_parts(bench: Bench, parts: list[str], out: dict[str, Any], target: Target) -> list[str]:
    """Run each selected part against ``target`` into ``out``; returns what failed."""
    settle = settler(bench, target)
    failures: list[str] = []
    for part in PARTS:
        if part not in parts:
            continue
        if target.original_api and part not in COMPARED_PARTS:
            continue
        if part == "single":
            out[part] = single(bench, target, settle)
        elif part == "batch":
            out[part] = batches(bench, target, settle)
        elif part == "latency":
            from tools.bench.latency import latency

            out[part] = latency(bench, target)
        elif part == "drain":
            from tools.bench.drain import drains

            out[part] = drains(bench)
        elif part == "idle":
            from tools.bench.idle import idle

            out[part] = idle(bench)
        failures += [f"{target.name} {part}: {problem}" for problem in problems(out[part])]
    return failures


def problems(node: Any) -> list[str]:
    """Errors and non-2xx statuses anywhere in a part's result."""
    found: list[str] = []
    if isinstance(node, list):
        for item in node:
            found += problems(item)
    elif isinstance(node, dict):
        name = node.get("name", "")
        if node.get("errors"):
            found.append(f"{name} errors {node['errors']}")
        bad = {k: v for k, v in (node.get("statuses") or {}).items() if not str(k).startswith("2")}
        if bad:
            found.append(f"{name} statuses {bad}")
        for key, value in node.items():
            if key not in ("errors", "statuses") and isinstance(value, dict | list):
                found += problems(value)
    return found


if __name__ == "__main__":
    sys.exit(main())
