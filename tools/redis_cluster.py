"""A real Redis Cluster of ``redis-server`` processes on free loopback ports.

`RedisCluster` starts three (or more) masters with ``--cluster-enabled yes``, joins them
with ``redis-cli --cluster create ... --cluster-replicas 0`` (the slots split evenly) and
waits until every node reports ``cluster_state:ok``. It is what the services run on with
``REDIS_CLUSTER=true`` and ``REDIS_URL`` = `RedisCluster.url` (any node will do; the
client discovers the others). A context manager; it stops only what it started.

    python tools/redis_cluster.py      # prints the URL, runs until Ctrl-C
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.local_services import RedisServer, wait_for

BUS_OFFSET = 10000
"""A node's cluster bus listens on its port + 10000 (so its port must be <= 55535)."""


def cluster_port() -> int:
    """A free port for a node whose bus port (+ `BUS_OFFSET`) is free too."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(20000, 65535 - BUS_OFFSET)
        if _bindable(port) and _bindable(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class ClusterNode(RedisServer):
    """One master of the cluster: no AOF (a test cluster), its own nodes.conf."""

    name = "redis-node"

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir, appendonly=False)

    def _command(self) -> list[str]:
        return [
            *super()._command(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "5000",
        ]  # fmt: skip

    def cluster_info(self) -> dict[str, str]:
        """``CLUSTER INFO`` as a dict ({} when the node does not answer)."""
        client = redis.Redis(port=self.port, socket_timeout=1, decode_responses=True)
        try:
            raw = client.execute_command("CLUSTER INFO")
        except redis.RedisError:
            return {}
        finally:
            client.close()
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        pairs = (line.partition(":") for line in str(raw).splitlines() if ":" in line)
        return {k: v.strip() for k, _, v in pairs}


class RedisCluster:
    """``masters`` cluster-enabled ``redis-server`` processes joined into one cluster."""

    def __init__(self, masters: int = 3, log_dir: Path | None = None) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self._own_dir = log_dir is None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-cluster-")) if log_dir is None else log_dir
        self.nodes = [ClusterNode(self.dir / f"node-{i}") for i in range(masters)]

    @property
    def url(self) -> str:
        """URL of the first node (the cluster client finds the others from it)."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self, timeout: float = 30.0) -> Self:
        try:
            for node in self.nodes:
                node.start(cluster_port())
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            create = ["redis-cli", "--cluster", "create", *addresses]
            create += ["--cluster-replicas", "0", "--cluster-yes"]
            subprocess.run(create, check=True, capture_output=True, timeout=timeout)
            wait_for(self.is_ok, timeout=timeout, what="cluster_state:ok on every node")
        except BaseException:
            self.cleanup()
            raise
        return self

    def is_ok(self) -> bool:
        """Every node says ``cluster_state:ok`` and knows all the others."""
        infos = [node.cluster_info() for node in self.nodes]
        return all(
            info.get("cluster_state") == "ok"
            and info.get("cluster_known_nodes") == str(len(self.nodes))
            for info in infos
        )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


def main() -> None:
    with RedisCluster() as cluster:
        print(f"REDIS_CLUSTER=true REDIS_URL={cluster.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
