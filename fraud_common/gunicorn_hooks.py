"""gunicorn hooks that start and stop the app's background loops in each worker.

A service's ``gunicorn.conf.py`` does ``from fraud_common.gunicorn_hooks import *``.
The app is loaded in each worker (no ``preload_app``), so every worker owns its own
Kafka and Redis clients, created after the fork.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from flask import Flask

from fraud_common import metrics
from fraud_common.background import registered

__all__ = ["child_exit", "on_starting", "post_worker_init", "worker_exit"]

HANGUP_EXTENSION = "fraud_common.on_hangup"


def on_hangup(app: Flask, callback: Callable[[], None]) -> None:
    """Run ``callback`` when the worker serving ``app`` gets SIGHUP (it must be safe in
    a signal handler: set an event, nothing more). See `forward_hangup_to_workers`."""
    app.extensions.setdefault(HANGUP_EXTENSION, []).append(callback)


def on_starting(server: Any) -> None:
    """In the master, before any worker: an empty ``PROMETHEUS_MULTIPROC_DIR``."""
    path = metrics.multiprocess_dir()
    if path is not None:
        metrics.prepare_multiprocess_dir(path)


def child_exit(server: Any, worker: Any) -> None:
    """In the master, when a worker is gone (also when it was killed): its live gauges
    (consumer lag) no longer count."""
    metrics.mark_process_dead(worker.pid)


def post_worker_init(worker: Any) -> None:
    callbacks = list(worker.wsgi.extensions.get(HANGUP_EXTENSION, []))
    if callbacks:
        # gunicorn reset SIGHUP to its default (terminate) in the worker.
        signal.signal(signal.SIGHUP, lambda signum, frame: [c() for c in callbacks])
    for loop in registered(worker.wsgi):
        loop.start()


def forward_hangup_to_workers(server: Any) -> None:
    """A ``when_ready`` hook: SIGHUP to the master is passed on to every worker instead of
    gunicorn's default (re-spawning all workers), so a service reloads what it reloads
    (the detector: its rules) in place, with no consumer leaving its group."""
    server.handle_hup = lambda: server.kill_workers(signal.SIGHUP)


def worker_exit(server: Any, worker: Any) -> None:
    # Also here, in the worker itself, for a config that imports only this hook.
    metrics.mark_process_dead(os.getpid())
    app = getattr(worker, "wsgi", None)
    if app is None:
        return
    loops = registered(app)
    for loop in loops:  # ask all first, so they wind down together within the grace time
        loop.target.stop()
    for loop in loops:
        loop.stop()
    for close in app.extensions.get("fraud_common.closers", []):
        close()
