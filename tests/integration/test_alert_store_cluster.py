"""The alert store on a real 3-master Redis Cluster and on one Redis: every command stays
in one slot, and each step of a store is safe to repeat after a crash between steps."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import redis
from redis.crc import key_slot

from alert_service.store import AlertStore, StoreBounds
from fraud_common import keys
from tests.support.factories import make_alert

pytestmark = pytest.mark.integration


@pytest.fixture(params=["cluster", "single"])
def any_client(request: pytest.FixtureRequest) -> redis.Redis:
    """The store's client on the cluster, then on one Redis."""
    name = "cluster_client" if request.param == "cluster" else "redis_client"
    client: redis.Redis = request.getfixturevalue(name)
    return client


def test_the_keys_of_one_store_span_several_slots_and_nodes(cluster_client: redis.Redis) -> None:
    """Otherwise the tests below would not show anything about cross-slot writes."""
    alert = make_alert("u-slots")
    written = [
        keys.alert(alert.alertId),
        keys.ALERTS_RECENT,
        keys.alerts_by_user("u-slots"),
        keys.ALERTS_STREAM,
        keys.stats_alerts(0),
    ]
    slots = {key_slot(key.encode()) for key in written}
    assert len(slots) == len(written)
    assert {
        key_slot(k.encode()) for k in (keys.ALERTS_APPENDED_INDEX, keys.ALERTS_APPENDED_ORDER)
    } == {key_slot(keys.ALERTS_STREAM.encode())}
    nodes = {cluster_client.get_node_from_key(key).name for key in written}  # type: ignore[attr-defined]
    assert len(nodes) > 1


def test_a_batch_of_many_users_is_stored_once_on_the_cluster(cluster_client: redis.Redis) -> None:
    store = AlertStore(cluster_client)
    alerts = [make_alert(f"u-{i}") for i in range(40)]
    first = store.store([*alerts, alerts[0]])  # the same alert twice in one batch
    again = store.store(alerts)  # a redelivery
    assert [s.new for s in first] == [True] * 40 + [False]
    assert not any(s.new for s in again)
    assert [s.stream_id for s in again] == [s.stream_id for s in first[:40]]
    assert cluster_client.xlen(keys.ALERTS_STREAM) == 40
    entries: list[tuple[str, dict[str, str]]] = cluster_client.xrange(keys.ALERTS_STREAM)  # type: ignore[assignment]
    assert [fields["alertId"] for _, fields in entries] == [a.alertId for a in alerts]
    newest = store.recent(limit=100)
    assert [a["alertId"] for a in newest] == [a.alertId for a in reversed(alerts)]
    assert [a["alertId"] for a in store.recent(user_id="u-7")] == [alerts[7].alertId]
    assert store.stream_id_of(alerts[3].alertId) == first[3].stream_id
    stats = [k for k in _all_keys(cluster_client) if k.startswith("fraud:stats:alerts:")]
    assert sum(int(cluster_client.get(k) or 0) for k in stats) == 40


def test_a_retry_after_a_crash_between_the_stream_and_the_record_adds_no_second_entry(
    any_client: redis.Redis,
) -> None:
    """The process died after appending to the stream, before writing the record: the
    retry finds the entry through the index, writes the record, and counts it as new."""
    store = AlertStore(any_client)
    alert = make_alert("u-crash")
    append = any_client.register_script(
        resources.files("alert_service").joinpath("store_alert.lua").read_text("utf-8")
    )
    created, stream_id = append(
        keys=[keys.ALERTS_STREAM, keys.ALERTS_APPENDED_INDEX, keys.ALERTS_APPENDED_ORDER],
        args=[alert.alertId, alert.to_json(), "u-crash", 1000, 1000],
    )
    assert created == 1
    assert store.get(alert.alertId) is None  # the crash: no record yet

    (stored,) = store.store([alert])
    assert stored.new and stored.stream_id == stream_id
    assert any_client.xlen(keys.ALERTS_STREAM) == 1
    assert store.get(alert.alertId) == json.loads(alert.to_json())
    assert [a["alertId"] for a in store.recent(user_id="u-crash")] == [alert.alertId]


def test_the_append_index_is_bounded_and_an_old_alert_with_a_record_is_not_appended_again(
    any_client: redis.Redis,
) -> None:
    store = AlertStore(any_client, StoreBounds(stream_max_len=5))
    alerts = [make_alert(f"u-bound-{i}") for i in range(12)]
    for alert in alerts:
        store.store([alert])
    assert any_client.hlen(keys.ALERTS_APPENDED_INDEX) == 5
    assert any_client.zcard(keys.ALERTS_APPENDED_ORDER) == 5
    assert set(any_client.hkeys(keys.ALERTS_APPENDED_INDEX)) == {a.alertId for a in alerts[-5:]}
    length = any_client.xlen(keys.ALERTS_STREAM)
    (again,) = store.store([alerts[0]])  # long out of the index, but recorded
    assert not again.new
    assert any_client.xlen(keys.ALERTS_STREAM) == length


def test_a_wrong_type_list_fails_the_batch_before_anything_is_written(
    any_client: redis.Redis,
) -> None:
    store = AlertStore(any_client)
    any_client.set(keys.alerts_by_user("u-broken"), "not a sorted set")
    fine, broken = make_alert("u-fine"), make_alert("u-broken")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        store.store([fine, broken])
    assert any_client.exists(keys.ALERTS_STREAM) == 0
    assert store.get(fine.alertId) is None
    (stored,) = store.store([fine])
    assert stored.new


def _all_keys(client: redis.Redis) -> list[str]:
    return [str(k) for k in client.scan_iter(match="*", count=1000)]
