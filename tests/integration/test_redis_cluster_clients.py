"""The services' other multi-command Redis code on a real 3-master Redis Cluster through
`fraud_common.redis_client.connect(cluster=True)`: scripts in pipelines (loaded on every
primary when one lacks them), the notification queue's MULTI blocks, the lists."""

from __future__ import annotations

import pytest
import redis

from alert_service.notify.queue import ChannelQueue
from alert_service.store import AlertStore
from fraud_common import keys
from fraud_common.redis_client import ClusterClient
from fraud_detection.lists import ListStore
from tests.support.factories import make_alert
from tools.redis_cluster import RedisCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def client(cluster_client: redis.Redis) -> redis.Redis:
    assert isinstance(cluster_client, ClusterClient)
    return cluster_client


def test_a_script_in_a_pipeline_is_loaded_again_after_a_node_lost_it(
    client: redis.Redis, cluster: RedisCluster
) -> None:
    script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    names = [f"counter:{{{n}}}" for n in range(30)]  # spread over the three nodes

    def run() -> list[int]:
        pipe = client.pipeline(transaction=False)
        for name in names:
            script(keys=[name], args=[2], client=pipe)
        return [int(v) for v in pipe.execute()]

    assert run() == [2] * 30
    with redis.Redis(port=cluster.ports[1]) as node:
        node.script_flush()  # a restarted node has no scripts
    assert run() == [4] * 30


def test_the_notification_queue_schedules_retries_and_acks_on_the_cluster(
    client: redis.Redis,
) -> None:
    queue = ChannelQueue(client, keys.ALERTS_STREAM, "webhook-cluster", "worker-1")
    assert queue.ensure_group()
    (stored,) = AlertStore(client).store([make_alert("u-notify")])
    (entry,) = queue.read_new(10, None)
    assert entry.id == stored.stream_id
    queue.schedule(entry.id, 0, 1, "receiver said 500")
    due, gone = queue.pop_due(now_ms=10, limit=10)
    assert [(e.id, e.failed_attempts, e.last_error) for e in due] == [
        (entry.id, 1, "receiver said 500")
    ]
    assert gone == []
    queue.ack(entry.id)
    assert queue.pending_of_consumer() == 0
    assert queue.claim_orphans(0, 10) == []
    assert queue.next_due_ms() is None


def test_lists_are_written_and_looked_up_on_the_cluster(client: redis.Redis) -> None:
    lists = ListStore(client)
    names = [f"blocked-{n}" for n in range(6)]
    for name in names:
        entry, created = lists.put(name, "u-1", reason="test")
        assert created and entry.value == "u-1"
    assert lists.lookup([(n, "u-1") for n in names] + [(names[0], "u-2")]) == {
        (n, "u-1") for n in names
    }
    assert lists.delete(names[0], "u-1")
    assert [e.value for e in lists.entries(names[0])] == []
    assert [e.value for e in lists.entries(names[1])] == ["u-1"]
