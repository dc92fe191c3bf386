"""gunicorn settings of the archive-service: one worker (one group consumer; more
archivers are more processes or replicas, each a member of fraud-archive-group), a few
threads for /health and /metrics."""

import os

from fraud_common.gunicorn_hooks import (  # noqa: F401 - hooks
    child_exit,
    on_starting,
    post_worker_init,
    worker_exit,
)

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
threads = 4
graceful_timeout = 8
timeout = 30
keepalive = 5
# No control socket: its default path ($HOME/.gunicorn/gunicorn.ctl) would be shared by
# every gunicorn of the machine and may not be writable in Docker.
control_socket_disable = True
