"""``python tools/devstack.py up`` (what ``make dev`` runs): the local stack without Docker.

A thin command line over `tools.stack.DevStack`: it starts the broker, Redis and the
three services, prints one line containing ``ready`` with the URLs, follows the
services' JSON logs as readable lines (`tools.log_follow`), and keeps the stack up as
compose's ``restart: unless-stopped`` would: a service or Redis that dies is restarted
(`tools.supervision`, a ``devstack:`` line says so). It stops everything it started
only on Ctrl-C or SIGTERM, or when the broker dies (its topics were in memory: see
`tools.stack`), then with status 1.

The pieces live beside this file, one job each: `tools.local_services` (redis-server and
Tansu), `tools.dependencies` (them as the stack holds them), `tools.service_process` (one
service under gunicorn), `tools.supervision` (restarts with backoff), `tools.stack` (the
whole stack), `tools.log_follow`. Their public names stay importable from here, as tests
and tools have always imported them.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

_TOOLS = Path(__file__).resolve().parent
if __name__ == "__main__":  # run as a script: import `tools.*` from the repository root,
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _TOOLS]  # not tools/
    sys.path.insert(0, str(_TOOLS.parent))

from tools.dependencies import Dependency  # noqa: E402
from tools.local_services import (  # noqa: E402
    RedisServer,
    TansuBroker,
    free_port,
    port_open,
    wait_for,
)
from tools.log_follow import LogFollower, readable  # noqa: E402
from tools.service_process import (  # noqa: E402
    REPO,
    SERVICES,
    ServiceProcess,
    ServiceSpec,
    http_ok,
    http_status,
    service_command,
    service_env,
    spec,
)
from tools.stack import DevStack  # noqa: E402
from tools.supervision import Backoff, Supervisor, describe_exit  # noqa: E402

__all__ = [
    "REPO",
    "SERVICES",
    "Backoff",
    "Dependency",
    "DevStack",
    "LogFollower",
    "RedisServer",
    "ServiceProcess",
    "ServiceSpec",
    "Supervisor",
    "TansuBroker",
    "describe_exit",
    "free_port",
    "http_ok",
    "http_status",
    "main",
    "port_open",
    "readable",
    "service_command",
    "service_env",
    "spec",
    "wait_for",
]


class _Stop(Exception):
    """Raised in the main thread by the SIGTERM/SIGINT handler."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # One stop is enough: further signals are ignored while everything shuts down.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise _Stop(signal.Signals(signum).name)


def _say(line: str) -> None:
    """A devstack line on stdout, in one write (the log follower prints there too)."""
    sys.stdout.write(f"devstack: {line}\n")
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/devstack.py",
        description="Run the fraud detection platform locally without Docker.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up",
        help="start broker, Redis and the three services; Ctrl-C or SIGTERM stops them",
        description="Uses KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set; otherwise starts "
        "Tansu (memory storage) and redis-server (append-only) on free ports. A service "
        "or Redis that dies is restarted (backoff 0.5 s doubling to 10 s); if the broker "
        "dies, its in-memory topics are gone and the stack stops (status 1).",
    )
    up.add_argument("--transaction-port", type=int, default=3001)
    up.add_argument("--detector-port", type=int, default=5001)
    up.add_argument("--alert-port", type=int, default=5002)
    up.add_argument(
        "--detectors", type=int, default=1, help="detector processes in fraud-detection-group"
    )
    up.add_argument(
        "--state-dir", type=Path, default=REPO / ".devstack", help="Redis data, broker log"
    )
    up.add_argument("--log-dir", type=Path, help="service logs (default STATE_DIR/logs)")
    up.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    up.add_argument("--transactions-topic", default="transactions")
    up.add_argument("--alerts-topic", default="fraud-alerts")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to become ready")
    up.add_argument("--quiet", action="store_true", help="do not print the services' logs")
    return parser


def _up(args: argparse.Namespace) -> int:
    stack = DevStack(
        state_dir=args.state_dir,
        log_dir=args.log_dir,
        transaction_port=args.transaction_port,
        detector_port=args.detector_port,
        alert_port=args.alert_port,
        detectors=args.detectors,
        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        transactions_topic=args.transactions_topic,
        alerts_topic=args.alerts_topic,
        log_level=args.log_level,
        report=_say,
    )
    follower: LogFollower | None = None
    if not args.quiet:
        follower = LogFollower(
            {service.name: stack.log_dir / f"{service.name}.log" for service in SERVICES},
            sys.stdout,
            colour=sys.stdout.isatty(),
        )
        follower.start()
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    print("devstack: starting broker, redis and services ...", flush=True)
    status = 0
    try:
        stack.start(timeout=args.timeout)
        print(stack.ready_line(), flush=True)
        supervisor = stack.supervisor
        if supervisor is None:
            raise RuntimeError("the stack is not supervised")
        while not supervisor.fatal.wait(1.0):
            pass  # the supervisor restarts what dies; only a signal or a fatal death ends
        status = 1
        print("devstack: stopping (the broker died) ...", flush=True)
    except _Stop as stop:
        print(f"devstack: stopping ({stop}) ...", flush=True)
    except (RuntimeError, TimeoutError) as exc:
        print(f"devstack: failed to start: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        if follower is not None:
            follower.stop()
        print("devstack: stopped", flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    return 2  # pragma: no cover - argparse rejects other commands


if __name__ == "__main__":
    sys.exit(main())
