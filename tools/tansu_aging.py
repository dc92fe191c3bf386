"""How the local stack's broker (Tansu, topics in memory) ages as its topics grow.

    python tools/tansu_aging.py [--steps 4] [--step-messages 100000]

Starts its own Tansu on a free port with one idle consumer (``fetch.wait.max.ms`` 10, as
the services') and, after each step of ``--step-messages`` produced messages, prints the
broker's CPU per message of a bulk produce, per message of 300 produces each awaited on
its own (what a single POST does), and its idle CPU share with that consumer polling.
On Apache Kafka an append costs the same whatever the log's length; on Tansu's memory
engine the awaited produce gets dearer with every message stored, which is why the bench
measures latency before its volume parts (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
from confluent_kafka import Consumer, Producer

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from fraud_common.kafka.topics import contract_topics, ensure_topics  # noqa: E402
from tools.local_services import TansuBroker  # noqa: E402

TOPIC = "transactions"
BODY = b"x" * 400  # about a transaction's size
IDLE_SECONDS = 10.0


def broker_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def tansu_process(port: str) -> psutil.Process:
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "tansu" and port in " ".join(process.info["cmdline"] or []):
            return process
    raise RuntimeError(f"no tansu process listening on {port}")


def idle_consumer(bootstrap: str, stop: threading.Event) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"aging-{uuid.uuid4().hex[:8]}",
            "fetch.wait.max.ms": 10,
            "auto.offset.reset": "latest",
        }
    )
    consumer.subscribe([TOPIC])
    try:
        while not stop.is_set():
            consumer.poll(0.1)
    finally:
        consumer.close()


def step(producer: Producer, broker: psutil.Process, count: int) -> tuple[float, float]:
    """(us of broker CPU per message in bulk, per message awaited one by one)."""
    before = broker_cpu(broker)
    for i in range(count):
        producer.produce(TOPIC, BODY, key=str(i % 20000).encode())
        if i % 10000 == 0:
            producer.poll(0)
    producer.flush(120)
    bulk = (broker_cpu(broker) - before) / count * 1e6
    before = broker_cpu(broker)
    for _ in range(300):
        producer.produce(TOPIC, BODY, key=b"one")
        producer.flush(10)
    return bulk, (broker_cpu(broker) - before) / 300 * 1e6


def idle_share(broker: psutil.Process) -> float:
    before = broker_cpu(broker)
    time.sleep(IDLE_SECONDS)  # the measurement: nothing is produced for this long
    return (broker_cpu(broker) - before) / IDLE_SECONDS * 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--step-messages", type=int, default=100_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tansu-aging-"))
    with TansuBroker(work / "tansu") as tansu:
        bootstrap = tansu.bootstrap_servers
        ensure_topics(bootstrap, contract_topics(TOPIC, "fraud-alerts"))
        broker = tansu_process(bootstrap.rsplit(":", 1)[1])
        stop = threading.Event()
        consumer = threading.Thread(target=idle_consumer, args=(bootstrap, stop))
        consumer.start()
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
            }
        )
        try:
            print("stored     bulk us/msg  awaited us/msg  idle % core", flush=True)
            stored = 0
            for count in [1000] + [args.step_messages] * args.steps:
                bulk, awaited = step(producer, broker, count)
                stored += count + 300
                print(f"{stored:>9,}  {bulk:>11.1f}  {awaited:>14.0f}  {idle_share(broker):>11.1f}")
        finally:
            stop.set()
            consumer.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
