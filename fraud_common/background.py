"""Background work (a consumer loop) run in a thread of a gunicorn worker.

The app factory registers it with `register`; the gunicorn hooks in
`fraud_common.gunicorn_hooks` start it once the worker has loaded the app and stop it
on the worker's exit. If the loop dies of a bug, the worker is asked to exit so that
gunicorn replaces it (the health endpoint reports it dead meanwhile).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Protocol

from flask import Flask

log = logging.getLogger(__name__)

EXTENSION = "fraud_common.background"


class Stoppable(Protocol):
    def run(self) -> None: ...
    def stop(self) -> None: ...


class BackgroundThread:
    """Runs ``target.run()`` in a thread; `stop` asks it to end and waits (bounded)."""

    def __init__(
        self,
        name: str,
        target: Stoppable,
        *,
        on_stop: Callable[[], None] | None = None,
        exit_process_on_death: bool = True,
    ) -> None:
        self.name = name
        self.target = target
        self._on_stop = on_stop
        self._exit_on_death = exit_process_on_death
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stop_requested = False

    def _run(self) -> None:
        try:
            self.target.run()
        except BaseException:
            log.critical("background loop died", exc_info=True, extra={"loop": self.name})
            if self._exit_on_death and not self._stop_requested:
                os.kill(os.getpid(), signal.SIGTERM)  # let gunicorn replace this worker
            raise

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 8.0) -> None:
        self._stop_requested = True
        self.target.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("background loop did not stop in time", extra={"loop": self.name})
        if self._on_stop is not None:
            self._on_stop()


def register(app: Flask, worker: BackgroundThread) -> None:
    app.extensions.setdefault(EXTENSION, []).append(worker)


def registered(app: Flask) -> list[BackgroundThread]:
    return list(app.extensions.get(EXTENSION, []))
