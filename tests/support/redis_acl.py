"""The production Redis ACL users (deploy/redis), rendered and served for tests.

`render_acl` runs ``deploy/redis/start.sh`` as the container does, with the image's
entrypoint replaced by a script that records the arguments Redis would start with; the
rendered file is then loaded by `AclRedisServer`, a Valkey 8 (WAITAOF, like the image's
Redis 7.4) with the ACL file and the default user off.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.support.durable_redis import DurableRedisServer, require_valkey
from tools.local_services import port_open

REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {
    "REDIS_ADMIN_PASSWORD": "admin-pw-1",
    "REDIS_TRANSACTION_PASSWORD": "txn-pw-2",
    "REDIS_DETECTOR_PASSWORD": "detector-pw-3",
    "REDIS_ALERT_PASSWORD": "alert-pw-4",
}
USERS = {
    "transaction-service": "REDIS_TRANSACTION_PASSWORD",
    "fraud-detection-service": "REDIS_DETECTOR_PASSWORD",
    "alert-service": "REDIS_ALERT_PASSWORD",
}
"""Each service's Redis user (named like the service) and its password variable."""

_ENTRYPOINT = """#!/bin/sh
printf '%s\\n' "$@" > "$ARGS"
"""


def render_acl(tmp_path: Path, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """deploy/redis/start.sh with ``passwords`` in its environment: the rendered file is
    ``tmp_path/acl/users.acl``, the arguments Redis would get are in ``tmp_path/args``."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    entrypoint = tmp_path / "bin" / "docker-entrypoint.sh"
    entrypoint.write_text(_ENTRYPOINT)
    entrypoint.chmod(0o755)
    env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "ARGS": str(tmp_path / "args"),
        "ACL_TEMPLATE": str(REPO / "deploy/redis/users.acl.template"),
        "ACL_FILE": str(tmp_path / "acl" / "users.acl"),
        **passwords,
    }
    return subprocess.run(
        ["sh", str(REPO / "deploy/redis/start.sh"), "--appendonly", "yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


class AclRedisServer(DurableRedisServer):
    """Ready once it answers at all: with the default user off, PING says NOAUTH."""

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        with socket.create_connection(("127.0.0.1", self.port), 1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))


def start_acl_server(tmp_path: Path, *, appendfsync: str = "everysec") -> AclRedisServer:
    """A started server on the rendered production ACL file (skips without Valkey)."""
    binary = require_valkey()
    result = render_acl(tmp_path, PASSWORDS)
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "args").read_text().splitlines()
    assert args[0] == "redis-server" and args[-2] == "--aclfile", args
    server = AclRedisServer(binary=binary, appendfsync=appendfsync, extra=("--aclfile", args[-1]))
    return server.start()
