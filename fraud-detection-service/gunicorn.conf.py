"""gunicorn settings of the fraud-detection-service.

Each worker is one consumer of the ``fraud-detection-group`` (WEB_CONCURRENCY=N runs N),
started after the worker loaded the app and stopped on its exit by the shared hooks.
"""

import os

from fraud_common.gunicorn_hooks import *  # noqa: F403
from fraud_common.gunicorn_hooks import forward_hangup_to_workers

# SIGHUP (docker compose kill -s HUP, kill -HUP <master>) reloads the rules in every
# worker, in place.
when_ready = forward_hangup_to_workers

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
threads = 4
graceful_timeout = 8
timeout = 30
# No control socket: its default path ($HOME/.gunicorn/gunicorn.ctl) would be shared by
# every gunicorn of the same user on the machine.
control_socket_disable = True
