"""gunicorn settings of the fraud-detection-service.

Each worker is one consumer of the ``fraud-detection-group`` (WEB_CONCURRENCY=N runs N),
started after the worker loaded the app and stopped on its exit by the shared hooks.
"""

import os

from fraud_common.gunicorn_hooks import *  # noqa: F403

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
threads = 4
graceful_timeout = 8
timeout = 30
# No control socket: its default path ($HOME/.gunicorn/gunicorn.ctl) would be shared by
# every gunicorn of the same user on the machine.
control_socket_disable = True
