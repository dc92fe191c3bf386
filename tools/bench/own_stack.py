"""The local stack the bench starts when no URLs are given: `tools.stack.DevStack`, as
``make dev`` runs it, but on free ports (a ``make dev`` may be running) and with an open
API (whatever the shell's API_KEYS)."""

from __future__ import annotations

from pathlib import Path

from tools.bench.processes import Roots
from tools.stack import DevStack


def start_stack(state_dir: Path, *, detectors: int = 1, log_level: str = "INFO") -> DevStack:
    # Open to others: a PostgreSQL the stack may start runs as its own user.
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o755)
    stack = DevStack.on_free_ports(
        state_dir=state_dir,
        detectors=detectors,
        log_level=log_level,
        extra_env={"API_KEYS": None},
    )
    stack.start()
    try:
        stack.warm_up()
    except BaseException:
        stack.stop()
        raise
    return stack


def stack_groups(stack: DevStack) -> dict[str, Roots]:
    """Each service's gunicorn master (its workers are its children; every service the
    stack runs), the broker, Redis."""

    def service(name: str) -> Roots:
        process = stack.services[name]
        return lambda: [pid] if (pid := process.master_pid) is not None else []

    def dependency(which: str) -> Roots:
        def roots() -> list[int]:
            found = stack.broker if which == "broker" else stack.redis
            pid = None if found is None else found.pid
            return [] if pid is None else [pid]

        return roots

    groups = {name: service(name) for name in stack.services}
    groups["broker"] = dependency("broker")
    groups["redis"] = dependency("redis")
    return groups
