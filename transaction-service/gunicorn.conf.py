"""gunicorn settings of the transaction-service (threads: requests mostly wait on I/O)."""

import os

from fraud_common.gunicorn_hooks import *  # noqa: F403 - post_worker_init, worker_exit

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '3000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 16
graceful_timeout = 8
timeout = 30
keepalive = 5
# No control socket: its default path ($HOME/.gunicorn/gunicorn.ctl) is shared by every
# gunicorn of the user, and the local stack runs several side by side.
control_socket_disable = True
