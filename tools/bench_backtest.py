"""Benchmark the backtest: simulated traffic, replayed several times, median rates.

    python tools/bench_backtest.py                       # 100,000 transactions, 5 runs
    python tools/bench_backtest.py --runs 9 --form posted
    make bench-backtest BENCH_BACKTEST_ARGS="--runs 3"

The traffic is the simulator's (``tools/simulate.py --dry-run``: 10,000 users with
home cities, travellers and injected fraud, deterministic for ``--seed``). ``--form``
says which file is replayed: ``recorded`` (the default) is the traffic as the
``transactions`` topic holds it once accepted (what ``tools/export_topic.py`` writes:
validated, USD value stamped, received at its event time); ``posted`` is the POST
bodies themselves, which the backtest accepts the way the transaction-service does
(a second validation per line); ``both`` runs each. Every run is a fresh
``tools/backtest.py`` process with the shipped rules and the labels; each prints its
rate over validating and replaying ("replayed") and over reading too ("with
reading"), and its CPU per evaluation by process. This reports every run, then the
medians, checks that every run found exactly the same, and writes the figures to
``bench/results/<date>-<commit>-backtest.json`` (``--no-save``: print only).

The machine's speed varies from minute to minute (shared cores): compare medians of
runs made back to back, never one run against another made earlier. The CPU time of a
fixed pure-Python loop, measured first, says how fast the machine was at the time.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: import `tools.*` and the detector
    _REPO = Path(__file__).resolve().parent.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _REPO / "tools"]
    sys.path[:0] = [str(_REPO), str(_REPO / "fraud-detection-service")]

from tools.backtest_input import file_lines, scan, transaction_of
from tools.bench import machine
from tools.bench.report import result_path

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "fraud-detection-service" / "rules.yaml"
FORMS = ("recorded", "posted")
_MEASURED = re.compile(
    r"validated and replayed (?P<evaluations>[\d,]+) evaluations in (?P<seconds>[\d.]+) s "
    r"\((?P<rate>[\d,]+)/s; with reading (?P<in_all>[\d.]+) s, (?P<rate_in_all>[\d,]+)/s\); "
    r"CPU (?P<cpu>[\d.]+) s, (?P<cpu_us>[\d,]+) us per evaluation: (?P<split>.*)$"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5, help="backtest processes per form")
    parser.add_argument("--form", choices=(*FORMS, "both"), default="recorded")
    parser.add_argument("--workers", type=int, help="backtest --workers (default: its own)")
    parser.add_argument("--data-dir", type=Path, help="keep the generated files here")
    parser.add_argument("--output-dir", type=Path, default=machine.REPO / "bench" / "results")
    parser.add_argument("--no-save", action="store_true", help="print only, write no JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 50 or not 100 <= args.transactions <= 2_000_000:
        parser.error("--runs 1..50, --transactions 100..2,000,000")
    return args


def generate(directory: Path, transactions: int, users: int, seed: int) -> dict[str, Path]:
    """The simulator's files, and the same traffic as the topic would hold it."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable, str(REPO / "tools" / "simulate.py"),
            "--transactions", str(transactions), "--users", str(users), "--seed", str(seed),
            "--start", "2026-11-01T00:00:00Z", "--dry-run", "--out", str(directory),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    posted = directory / "transactions.jsonl"
    recorded = directory / "recorded.jsonl"
    with recorded.open("w", encoding="utf-8") as out:
        for _, where, raw in scan(file_lines(str(posted))).objects:
            out.write(transaction_of(raw, where).to_json() + "\n")
    return {"posted": posted, "recorded": recorded, "labels": directory / "labels.jsonl"}


def backtest_once(input_path: Path, labels: Path, workers: int | None) -> dict[str, Any]:
    """One backtest process: its measured line, parsed, and its result."""
    command = [
        sys.executable, str(REPO / "tools" / "backtest.py"), "--rules", str(RULES),
        "--input", str(input_path), "--labels", str(labels), "--json",
    ]  # fmt: skip
    if workers is not None:
        command += ["--workers", str(workers)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"backtest failed ({done.returncode}):\n{done.stderr[-2000:]}")
    for line in done.stderr.splitlines():
        found = _MEASURED.search(line)
        if found:
            figures: dict[str, Any] = {
                name: float(value.replace(",", ""))
                for name, value in found.groupdict().items()
                if name != "split"
            }
            figures["split"] = found["split"]
            figures["result"] = json.loads(done.stdout)
            return figures
    raise RuntimeError(f"backtest printed no measured rate:\n{done.stderr[-2000:]}")


def reference_seconds(rounds: int = 5) -> float:
    """CPU seconds of a fixed pure-Python loop (the best of ``rounds``): how fast this
    machine is right now, to set runs made at different times side by side."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        total = 0
        for number in range(2_000_000):
            total += number & 7
        best = min(best, time.process_time() - started)
    return best


def bench_form(form: str, files: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for number in range(1, args.runs + 1):
        one = backtest_once(files[form], files["labels"], args.workers)
        runs.append(one)
        print(
            f"bench-backtest {form} run {number}/{args.runs}: {one['rate']:,.0f}/s replayed, "
            f"{one['rate_in_all']:,.0f}/s with reading; {one['cpu_us']:,.0f} us CPU per "
            f"evaluation ({one['split']})",
            file=sys.stderr,
            flush=True,
        )
    results = [one.pop("result") for one in runs]
    return {
        "runs": runs,
        "same_result": all(r == results[0] for r in results),
        "transactions": results[0]["transactions"],
        "median_rate": statistics.median(r["rate"] for r in runs),
        "median_rate_in_all": statistics.median(r["rate_in_all"] for r in runs),
        "median_cpu_us": statistics.median(r["cpu_us"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    meta = machine.describe()
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as scratch:
        directory = args.data_dir or Path(scratch)
        print(f"bench-backtest: simulating {args.transactions:,} transactions ...", file=sys.stderr)
        files = generate(directory, args.transactions, args.users, args.seed)
        forms = FORMS if args.form == "both" else (args.form,)
        meta["reference_seconds"] = reference_seconds()
        print(
            f"bench-backtest: reference loop {meta['reference_seconds'] * 1000:.0f} ms of CPU "
            "(a fixed pure-Python loop: lower is a faster machine right now)",
            file=sys.stderr,
        )
        try:
            measured = {form: bench_form(form, files, args) for form in forms}
        except RuntimeError as exc:
            print(f"bench-backtest: {exc}", file=sys.stderr)
            return 1
    for form, figures in measured.items():
        print(
            f"backtest ({form}, {figures['transactions']:,} transactions, {args.runs} runs): "
            f"median {figures['median_rate']:,.0f}/s replayed, "
            f"{figures['median_rate_in_all']:,.0f}/s with reading, "
            f"{figures['median_cpu_us']:,.0f} us CPU per evaluation; "
            + ("every run found the same" if figures["same_result"] else "RUNS DISAGREE")
        )
    if not args.no_save:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        path = result_path(args.output_dir, meta["date"], meta["commit"], "backtest")
        meta["args"] = sys.argv[1:] if argv is None else list(argv)
        path.write_text(json.dumps({"meta": meta, "backtest": measured}, indent=2) + "\n")
        print(f"bench-backtest: wrote {path}", file=sys.stderr)
    return 0 if all(f["same_result"] for f in measured.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
