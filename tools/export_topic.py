"""Write the ``transactions`` topic (or part of it) to JSONL, then stop.

    python tools/export_topic.py --bootstrap 127.0.0.1:9092 --output recorded.jsonl
    python tools/export_topic.py --bootstrap ... --since 2026-12-01T00:00:00Z --until ...

Every partition is read from its first offset to the end of its log (what was on the
topic when the export caught up with it), without joining any consumer group and
without committing anything, so it never disturbs the detector. ``--since``/``--until``
keep transactions whose event time (``timestamp``) is in ``[since, until)``;
``--from-offset``/``--to-offset`` bound the offsets read in every partition. Each line
is a message's value as published; progress goes to stderr. The output replays with
``tools/backtest.py --input``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

if __name__ == "__main__":  # run as a script: import `tools.*` and the shared library
    _REPO = Path(__file__).resolve().parent.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _REPO / "tools"]
    sys.path.insert(0, str(_REPO))

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from fraud_common.schemas import parse_timestamp
from tools.backtest_input import event_time

DEFAULT_TOPIC = "transactions"


def read_topic(
    bootstrap: str,
    topic: str = DEFAULT_TOPIC,
    *,
    from_offset: int | None = None,
    to_offset: int | None = None,
    timeout: float = 30.0,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
) -> Iterator[tuple[str, bytes]]:
    """``(topic/partition@offset, value)`` of every message of the non-empty partitions
    up to the end of each log (and before ``to_offset``); raises `KafkaException` when
    the topic cannot be read, TimeoutError when no message arrives for ``timeout`` s
    while some are still due."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"export-{uuid.uuid4().hex[:12]}",  # never joined: partitions assigned
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
            "enable.partition.eof": True,
            **(extra or {}),
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise KafkaException(described.error if described else f"no topic {topic}")
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for partition in sorted(described.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            first = max(low, from_offset or 0)
            if high > low and (to_offset is None or first < to_offset):
                ends[partition] = sys.maxsize if to_offset is None else to_offset
                starts.append(TopicPartition(topic, partition, first))
        total = sum(consumer.get_watermark_offsets(p, timeout=10)[1] - p.offset for p in starts)
        if not starts:
            return
        consumer.assign(starts)
        yield from _drain(consumer, topic, ends, total, timeout, progress)
    finally:
        consumer.close()


def _drain(
    consumer: Consumer,
    topic: str,
    ends: dict[int, int],
    total: int,
    timeout: float,
    progress: bool,
) -> Iterator[tuple[str, bytes]]:
    """Messages until every partition reached its end: the offset bound, or the end of
    the log (librdkafka's partition EOF; Tansu's high watermark counts record batches,
    not records, so the watermark alone would stop early there)."""
    done = 0
    last_seen = last_report = time.monotonic()
    while ends:
        batch = consumer.consume(500, 0.5)
        now = time.monotonic()
        if not batch and now - last_seen > timeout:
            raise TimeoutError(f"no message for {timeout:.0f} s; {sorted(ends)} unfinished")
        for message in batch:
            partition, offset = message.partition(), message.offset()
            if partition is None or partition not in ends:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    _finish(consumer, topic, ends, partition)
                continue  # transient errors: librdkafka goes on
            if offset is None or offset >= ends[partition]:
                _finish(consumer, topic, ends, partition)
                continue
            last_seen = now
            done += 1
            yield f"{topic}/{partition}@{offset}", message.value() or b""
        if progress and now - last_report >= 2.0:
            last_report = now
            print(f"export: {done:,} messages, about {total:,} due", file=sys.stderr, flush=True)


def _finish(consumer: Consumer, topic: str, ends: dict[int, int], partition: int) -> None:
    del ends[partition]
    consumer.incremental_unassign([TopicPartition(topic, partition)])


def in_range(value: bytes, since: datetime | None, until: datetime | None) -> bool:
    """Whether the message's event time is in ``[since, until)`` (always, without bounds;
    never, for a message without a readable ``timestamp``)."""
    if since is None and until is None:
        return True
    try:
        moment = parse_timestamp(json.loads(value)["timestamp"])
    except (ValueError, KeyError, TypeError):
        return False
    return (since is None or moment >= since) and (until is None or moment < until)


def export(
    out: IO[bytes],
    bootstrap: str,
    topic: str = DEFAULT_TOPIC,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    from_offset: int | None = None,
    to_offset: int | None = None,
    progress: bool = True,
) -> int:
    """Write the messages as lines; returns how many were written."""
    written = 0
    for _where, value in read_topic(
        bootstrap, topic, from_offset=from_offset, to_offset=to_offset, progress=progress
    ):
        if in_range(value, since, until):
            out.write(value.rstrip(b"\n") + b"\n")
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--topic", default=DEFAULT_TOPIC)
    parser.add_argument("--output", "-o", default="-", help="JSONL file (default stdout)")
    parser.add_argument("--since", help="event time from (ISO 8601 or epoch s), inclusive")
    parser.add_argument("--until", help="event time until, exclusive")
    parser.add_argument("--from-offset", type=int, help="first offset in every partition")
    parser.add_argument("--to-offset", type=int, help="offset to stop before, every partition")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    try:
        since = None if args.since is None else event_time(args.since)
        until = None if args.until is None else event_time(args.until)
    except ValueError as exc:
        parser.error(f"--since/--until: {exc}")
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
    try:
        written = export(
            out,
            args.bootstrap,
            args.topic,
            since=since,
            until=until,
            from_offset=args.from_offset,
            to_offset=args.to_offset,
            progress=not args.quiet,
        )
    except (KafkaException, TimeoutError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    print(f"export: wrote {written:,} transactions from {args.topic}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
