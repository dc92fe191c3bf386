"""gunicorn hooks that start and stop the app's background loops in each worker.

A service's ``gunicorn.conf.py`` does ``from fraud_common.gunicorn_hooks import *``.
The app is loaded in each worker (no ``preload_app``), so every worker owns its own
Kafka and Redis clients, created after the fork.
"""

from __future__ import annotations

from typing import Any

from fraud_common.background import registered

__all__ = ["post_worker_init", "worker_exit"]


def post_worker_init(worker: Any) -> None:
    for loop in registered(worker.wsgi):
        loop.start()


def worker_exit(server: Any, worker: Any) -> None:
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
