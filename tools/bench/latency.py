"""End-to-end latency at a fixed offered rate (open loop, from each scheduled send):
POST -> decision stored, POST -> alert on the live stream (every transaction alerting),
and the inline decision (``Prefer: wait``) as the client sees it; then POST -> alert
again at a trickle (``quiet_rate``), the latency of an otherwise idle stack."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tools.bench.context import Bench, Target
from tools.bench.load import Connection, LoadResult, open_loop
from tools.bench.single import PATH, poster, transaction_id
from tools.bench.stats import latency_summary
from tools.bench.traffic import Traffic
from tools.bench.watchers import DecisionWatcher, StreamWatcher, TopicWatcher, Watcher

ARRIVAL_TIMEOUT_S = 15.0
INLINE_WAIT_S = 5


def latency(bench: Bench, target: Target) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not target.original_api:
        out["decision"] = post_to_decision(bench, target)
    if target.alerts_url or target.alerts_bootstrap:
        out["alert"] = post_to_alert(bench, target)
    if not target.original_api:
        out["inline"] = inline(bench, target)
    if target.alerts_url or target.alerts_bootstrap:
        sizes = bench.sizes
        out["alert_quiet"] = post_to_alert(
            bench, target, rate=sizes.quiet_rate, count=sizes.quiet_samples
        )
    return out


def _measured(
    bench: Bench,
    name: str,
    result: LoadResult,
    watcher: Watcher | None,
    before: dict[str, float],
    rate: float | None = None,
) -> dict[str, Any]:
    """Latency from the scheduled send to the watcher's sighting (or to the answer)."""
    ok = [o for o in result.ok() if o.value]
    summary: dict[str, Any] = {
        "name": name,
        "offered_per_s": rate or bench.sizes.latency_rate,
        "requests": len(result.outcomes),
        "statuses": {str(k): v for k, v in Counter(o.status for o in result.outcomes).items()},
        "errors": dict(result.errors),
    }
    if watcher is None:
        latencies = [o.latency for o in ok]
    else:
        missing = watcher.wait_all({o.value for o in ok}, ARRIVAL_TIMEOUT_S)
        watcher.stop()
        if missing:
            summary["errors"][f"not seen within {ARRIVAL_TIMEOUT_S:g} s"] = len(missing)
        latencies = [watcher.seen[o.value] - o.scheduled for o in ok if o.value in watcher.seen]
        if watcher.failure:
            summary["errors"][watcher.failure] = 1
    summary.update(latency_summary(latencies))
    summary.update(bench.cpu_of(before, len(ok)))
    bench.progress(
        f"{name}: {summary['samples']} samples, p50 {summary['p50_ms']} p95 {summary['p95_ms']}"
        f" p99 {summary['p99_ms']} max {summary['max_ms']} ms"
        + (f", errors {summary['errors']}" if summary["errors"] else "")
    )
    return summary


def post_to_decision(bench: Bench, target: Target) -> dict[str, Any]:
    sizes = bench.sizes
    bench.progress(
        f"{target.name}: POST -> decision, {sizes.latency_samples} at {sizes.latency_rate:g}/s"
        + ("" if bench.redis_url else " (decisions polled through the API: no --redis-url)")
    )
    watcher = DecisionWatcher(
        redis_url=bench.redis_url,
        transactions_url=target.transactions_url,
        headers=target.headers,
    ).start()
    send = poster(Traffic(f"{bench.run}{target.name[0]}d"))

    def send_and_watch(connection: Connection, index: int) -> tuple[int, Any]:
        status, value = send(connection, index)
        if value:
            watcher.expect(value)
        return status, value

    before = bench.monitor.mark()
    result = _open(bench, target, send_and_watch)
    return _measured(bench, "POST -> decision", result, watcher, before)


def post_to_alert(
    bench: Bench, target: Target, *, rate: float | None = None, count: int | None = None
) -> dict[str, Any]:
    sizes = bench.sizes
    rate, count = rate or sizes.latency_rate, count or sizes.latency_samples
    source = "the stream" if target.alerts_url else f"topic {target.alerts_topic}"
    bench.progress(
        f"{target.name}: POST -> alert on {source}, every transaction alerting, "
        f"{count} at {rate:g}/s"
    )
    watcher: Watcher
    if target.alerts_url:
        watcher = StreamWatcher(target.alerts_url, target.headers)
    else:
        assert target.alerts_bootstrap is not None
        watcher = TopicWatcher(target.alerts_bootstrap, target.alerts_topic)
    watcher.start()
    before = bench.monitor.mark()
    traffic = Traffic(f"{bench.run}{target.name[0]}a{rate:g}", alert_share=1.0)
    result = _open(bench, target, poster(traffic), rate=rate, count=count)
    return _measured(bench, f"POST -> alert at {rate:g}/s", result, watcher, before, rate)


def inline(bench: Bench, target: Target) -> dict[str, Any]:
    sizes = bench.sizes
    bench.progress(
        f"{target.name}: inline decision (Prefer: wait={INLINE_WAIT_S}), "
        f"{sizes.latency_samples} at {sizes.latency_rate:g}/s"
    )
    traffic = Traffic(f"{bench.run}{target.name[0]}i")
    decisions: Counter[str] = Counter()

    def send(connection: Connection, index: int) -> tuple[int, Any]:
        headers = {
            "Idempotency-Key": traffic.idempotency_key(index),
            "Prefer": f"wait={INLINE_WAIT_S}",
        }
        status, body = connection.request("POST", PATH, traffic.body(index), headers)
        if status == 201:
            decisions[str(json.loads(body).get("decision", {}).get("status"))] += 1
            return status, transaction_id(body)
        return status, None

    before = bench.monitor.mark()
    result = _open(bench, target, send)
    summary = _measured(bench, "inline decision", result, None, before)
    summary["decisions"] = dict(decisions)
    if decisions.get("pending"):
        summary["errors"]["answered pending"] = decisions["pending"]
    return summary


def _open(
    bench: Bench, target: Target, send: Any, *, rate: float | None = None, count: int | None = None
) -> LoadResult:
    sizes = bench.sizes
    return open_loop(
        "latency",
        target.transactions_url,
        send,
        rate=rate or sizes.latency_rate,
        count=count or sizes.latency_samples,
        senders=32,
        headers=target.headers,
    )
