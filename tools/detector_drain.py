"""Detector drain: how fast one detector process works off a preloaded backlog.

    python tools/detector_drain.py --transactions 200000 [--users 20000] [--py-spy FILE]

Starts its own Tansu broker and redis-server on free ports, preloads ``--transactions``
realistic transactions (many users, each in a home city, minutes apart, ~1% large, so
~1% alert) onto a fresh ``transactions`` topic, then starts the detector exactly as the
local stack does (gunicorn, one worker) and times it from its first decision to its
last (read from its ``/health`` ``processed`` count). Prints the rate and the CPU
seconds per transaction of the detector worker and of redis-server over that span
(psutil), so the figure holds even while other work shares the machine. ``--py-spy``
records the worker during the drain (py-spy ``--format raw``, for flame graphs or
``tools/detector_drain.py --top FILE``).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psutil
import redis
from confluent_kafka import Producer

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "fraud-detection-service")]

from fraud_common.kafka.topics import contract_topics, ensure_topics  # noqa: E402
from fraud_common.money import load_fx_rates  # noqa: E402
from fraud_common.schemas import Transaction, usd_stamp  # noqa: E402
from tools.local_services import RedisServer, TansuBroker, wait_for  # noqa: E402
from tools.service_process import ServiceProcess  # noqa: E402

CITIES = ["New York", "London", "Paris", "Tokyo", "Berlin", "Madrid", "Toronto", "Sydney"]


def backlog(count: int, users: int, seed: int = 7) -> list[Transaction]:
    """``count`` transactions over ``users`` users: each user in one city, 5 minutes
    apart (no rapid or location alerts), 1% above the large-amount threshold."""
    rng = random.Random(seed)  # noqa: S311 - load, not security
    rates = load_fx_rates()
    start = datetime.now(UTC) - timedelta(hours=1)
    names = [f"drain-{i}-{uuid.uuid4().hex[:6]}" for i in range(users)]
    seen: collections.Counter[str] = collections.Counter()
    out = []
    for _ in range(count):
        user = rng.choice(names)
        at = start + timedelta(minutes=5 * seen[user], milliseconds=rng.randrange(1000))
        seen[user] += 1
        amount = Decimal(rng.choice(("15000.00", "20000")) if rng.random() < 0.01 else "0")
        if not amount:
            amount = Decimal(rng.randrange(100, 50000)) / 100
        out.append(
            Transaction(
                transactionId=str(uuid.uuid4()),
                userId=user,
                amount=amount,
                currency="USD",
                location=CITIES[hash(user) % len(CITIES)],
                timestamp=min(at, datetime.now(UTC)),
                receivedAt=datetime.now(UTC),
                **usd_stamp(amount, "USD", rates),
            )
        )
    return out


def preload(bootstrap: str, topic: str, items: list[Transaction]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 50, "compression.type": "lz4"}
    )
    for item in items:
        while True:
            try:
                producer.produce(topic, value=item.to_json().encode(), key=item.userId.encode())
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError("preload did not finish")


def processed(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our URL
        body = json.loads(response.read())
    return int(body.get("consumer", {}).get("processed", 0))


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def top(path: Path, count: int = 25, within: str = "ConsumerLoop.run") -> str:
    """The hottest functions of a py-spy raw profile (stacks under ``within``): samples
    in the function and below it (inclusive) and in it alone (self), in per cent."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if within not in stack:
            continue
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0] + ")"
                  for f in stack.split(";")]  # fmt: skip
        n = int(samples)
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    lines = [f"{total} samples under {within}", "  incl%  self%  function"]
    for name, n in inclusive.most_common(count):
        lines.append(f"  {100 * n / total:5.1f}  {100 * own[name] / total:5.1f}  {name}")
    lines.append("  -- by self time --")
    for name, n in own.most_common(count):
        lines.append(f"  {100 * inclusive[name] / total:5.1f}  {100 * n / total:5.1f}  {name}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=None, help="CONSUMER_BATCH_SIZE")
    parser.add_argument("--py-spy", type=Path, default=None, help="record the worker here")
    parser.add_argument("--json", action="store_true", help="one JSON line at the end")
    parser.add_argument("--top", type=Path, default=None, help="summarise a py-spy raw file")
    args = parser.parse_args()
    if args.top:
        print(top(args.top))
        return 0

    work = Path(tempfile.mkdtemp(prefix="detector-drain-"))
    suffix = uuid.uuid4().hex[:8]
    topics = {"TRANSACTIONS_TOPIC": f"tx-{suffix}", "ALERTS_TOPIC": f"alerts-{suffix}"}
    with TansuBroker(work / "tansu") as broker, RedisServer(work / "redis") as redis_server:
        bootstrap = broker.bootstrap_servers
        ensure_topics(
            bootstrap,
            contract_topics(
                topics["TRANSACTIONS_TOPIC"], topics["ALERTS_TOPIC"], decisions=f"dec-{suffix}"
            ),
        )
        t = time.monotonic()
        items = backlog(args.transactions, args.users)
        preload(bootstrap, topics["TRANSACTIONS_TOPIC"], items)
        print(f"preloaded {len(items)} in {time.monotonic() - t:.1f} s", file=sys.stderr)

        settings = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REDIS_URL": redis_server.url,
            "DECISIONS_TOPIC": f"dec-{suffix}",
            "CONSUMER_GROUP": f"drain-{suffix}",
            "LOG_LEVEL": "WARNING",
            "WEB_CONCURRENCY": "1",
            **topics,
        }
        if args.batch_size:
            settings["CONSUMER_BATCH_SIZE"] = str(args.batch_size)
        detector = ServiceProcess.on_free_port("detector", settings, log_dir=work)
        detector.start()
        spy = None
        try:
            url = detector.health_url
            wait_for(
                lambda: _safe(processed, url) > 0, timeout=120, interval=0.05, what="a decision"
            )
            master = psutil.Process(detector.master_pid)
            (worker,) = master.children()
            redis_proc = _redis_process(redis_server.url)
            if args.py_spy:
                spy = subprocess.Popen(
                    [_py_spy(), "record", "--format", "raw", "--rate", "200", "--pid",
                     str(worker.pid), "--output", str(args.py_spy), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            first = processed(url)
            start, worker_cpu, redis_cpu = time.monotonic(), cpu(worker), cpu(redis_proc)
            wait_for(
                lambda: processed(url) >= len(items), timeout=3600, interval=0.05, what="drain"
            )
            elapsed = time.monotonic() - start
            done = processed(url) - first
            worker_used, redis_used = cpu(worker) - worker_cpu, cpu(redis_proc) - redis_cpu
            rss = worker.memory_info().rss
            commands = _command_cost(redis_server.url, done)
        finally:
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
            detector.stop()
            shutil.copy(detector.log_path, work / "detector-copy.log")
    result = {
        "transactions": done,
        "seconds": round(elapsed, 2),
        "per_second": round(done / elapsed),
        "detector_cpu_us_per_txn": round(worker_used / done * 1e6, 1),
        "redis_cpu_us_per_txn": round(redis_used / done * 1e6, 1),
        "detector_cpu_share": round(worker_used / elapsed, 2),
        "redis_cpu_share": round(redis_used / elapsed, 2),
        "detector_rss_mb": round(rss / 2**20),
        "redis_us_per_txn_by_command": commands,
        "loadavg": [round(x, 2) for x in psutil.getloadavg()],
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    print(f"work dir {work}", file=sys.stderr)
    return 0


def _safe(fn: Callable[..., int], *args: object) -> int:
    """``fn(*args)``, 0 while the process it asks is not up yet."""
    try:
        return fn(*args)
    except OSError:
        return 0


def _command_cost(url: str, transactions: int) -> dict[str, float]:
    """Redis's own time per transaction by command (``INFO commandstats``; scripts are
    ``evalsha``, the commands they run inside are counted apart too), biggest first."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    cost = {
        name.removeprefix("cmdstat_"): round(float(row["usec"]) / transactions, 1)
        for name, row in stats.items()
    }
    return dict(sorted(cost.items(), key=lambda item: -item[1])[:8])


def _redis_process(url: str) -> psutil.Process:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "redis-server":
            try:
                if any(c.laddr.port == port for c in proc.net_connections("tcp")):
                    return proc
            except psutil.Error:
                continue
    raise RuntimeError(f"no redis-server on port {port}")


def _py_spy() -> str:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else "py-spy"


if __name__ == "__main__":
    sys.exit(main())
