"""gunicorn settings of the alert-service.

gthread with many threads: every server-sent-event subscriber holds one thread for as
long as it is connected. The stream caps its subscribers per worker at
``SSE_MAX_SUBSCRIBERS`` (default 50, alert_service.stream), and the pool has
``API_THREADS`` (50) more than that, so the API, /health and /metrics always find a
thread however many clients hold streams open (the surplus gets 503 + Retry-After).
On SIGTERM (and SIGINT/SIGQUIT) the worker also sets the app's
shutdown event, so open streams end within a second (their reads are bounded) and the
worker exits well inside graceful_timeout; the loops stop and clients close afterwards
(``fraud_common.gunicorn_hooks.worker_exit``).
"""

import os
import signal
from typing import Any

# The shared hooks, with post_worker_init extended below.
from fraud_common import gunicorn_hooks
from fraud_common.gunicorn_hooks import child_exit, on_starting, worker_exit  # noqa: F401 - hooks

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
# Read here as the settings read it (AlertServiceSettings.sse_max_subscribers, default 50).
_sse_max_subscribers = int(os.environ.get("SSE_MAX_SUBSCRIBERS", "50"))
threads = _sse_max_subscribers + int(os.environ.get("API_THREADS", "50"))
graceful_timeout = 8
timeout = 30
keepalive = 5
# No control socket: its default path ($HOME/.gunicorn/gunicorn.ctl) would be shared by
# every gunicorn of the machine (three services, tests) and may not be writable in Docker.
control_socket_disable = True

SHUTDOWN_EXTENSION = "alert_service.shutdown"  # alert_service.stream.SHUTDOWN_EXTENSION


def post_worker_init(worker: Any) -> None:
    gunicorn_hooks.post_worker_init(worker)
    shutdown = worker.wsgi.extensions.get(SHUTDOWN_EXTENSION)
    if shutdown is None:
        return
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        _chain(signum, shutdown.set)


def _chain(signum: int, first: Any) -> None:
    """Run ``first`` on the signal, then gunicorn's own handler."""
    previous = signal.getsignal(signum)

    def handler(sig: int, frame: Any) -> None:
        first()
        if callable(previous):
            previous(sig, frame)

    signal.signal(signum, handler)
