"""The detector's background work: make sure the topics exist, load the gazetteer,
then run the consumer loop until stopped.

A broker that is not up yet is waited for (with backoff, logged), never a crash: the
health endpoint reports the worker unhealthy meanwhile because the loop does not poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from fraud_common.kafka.consumer_loop import ConsumerLoop
from fraud_common.kafka.topics import SETUP_ERRORS
from fraud_common.schemas import Transaction

log = logging.getLogger(__name__)


class DetectorWorker:
    def __init__(
        self,
        loop: ConsumerLoop[Transaction],
        *,
        ensure_topics: Callable[[], object],
        warm_up: Callable[[], object],
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        self.loop = loop
        self._ensure_topics = ensure_topics
        self._warm_up = warm_up
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._stopping = threading.Event()

    def run(self) -> None:
        if not self._topics_ready():
            return
        self._warm_up()
        if not self._stopping.is_set():
            self.loop.run()

    def stop(self) -> None:
        self._stopping.set()
        self.loop.stop()

    def _topics_ready(self) -> bool:
        delay = self._backoff_initial
        while not self._stopping.is_set():
            try:
                self._ensure_topics()
                self.loop.status.last_error = None
                return True
            except SETUP_ERRORS as exc:
                self.loop.status.last_error = f"kafka: cannot create topics: {exc!r}"
                log.warning("cannot create topics yet; will retry", exc_info=True)
            self._stopping.wait(delay)
            delay = min(delay * 2, self._backoff_max)
        return False
