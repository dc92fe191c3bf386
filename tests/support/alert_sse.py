"""A server-sent-events subscriber over real HTTP, read in its own thread.

Parses the stream as a browser's EventSource does (``event``/``id``/``data`` fields, a
blank line ends an event, lines starting with ``:`` are comments) and records the
arrival time of each event so tests can measure latency.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from tools.local_services import wait_for


@dataclass(frozen=True)
class SseEvent:
    event: str
    id: str
    data: str
    received_at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseSubscriber:
    """``with SseSubscriber(url) as sub:`` connects, reads until closed."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    response_headers: dict[str, str] = field(default_factory=dict)
    status: int = 0
    ended: bool = False
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._read, name="sse-subscriber", daemon=True)

    def __enter__(self) -> SseSubscriber:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Drop the connection (shutting the socket down wakes the reader thread)."""
        self._closing = True
        if self._response is not None:
            with contextlib.suppress(ValueError, RuntimeError, OSError):  # already released
                self._response.raw.shutdown()
            self._response.close()
        self._thread.join(5)

    def wait_connected(self, timeout: float = 30.0) -> None:
        """Until the first message (``retry:`` and the start comments) has arrived."""
        self.wait_until(lambda: bool(self.comments), timeout=timeout, what="the stream to start")

    def wait_events(self, count: int, timeout: float = 30.0) -> list[SseEvent]:
        self.wait_until(lambda: len(self.events) >= count, timeout=timeout, what=f"{count} events")
        with self._lock:
            return list(self.events)

    def wait_until(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        def check() -> bool:
            if self.error is not None and not self._closing:
                raise AssertionError(f"subscriber failed: {self.error!r}")
            return condition()

        wait_for(check, timeout=timeout, interval=0.01, what=what)

    def _read(self) -> None:
        try:
            response = requests.get(self.url, headers=self.headers, stream=True, timeout=(5, 30))
            self._response = response
            self.status = response.status_code
            self.response_headers = dict(response.headers)
            if response.status_code != 200:
                self.comments.append(f"HTTP {response.status_code}: {response.text[:500]}")
                return
            self._parse(response)
        except (requests.RequestException, OSError, AttributeError, ValueError) as exc:
            if not self._closing:
                self.error = exc
        finally:
            self.ended = True

    def _parse(self, response: requests.Response) -> None:
        buffer = ""
        fields: dict[str, str] = {}
        data: list[str] = []
        for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
            buffer += chunk
            while "\n" in buffer:
                line, buffer = buffer.split("\n", 1)
                line = line.rstrip("\r")
                if line == "":
                    if data or fields:
                        event = SseEvent(
                            event=fields.get("event", "message"),
                            id=fields.get("id", ""),
                            data="\n".join(data),
                            received_at=time.monotonic(),
                        )
                        with self._lock:
                            self.events.append(event)
                    fields, data = {}, []
                elif line.startswith(":"):
                    with self._lock:
                        self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        data.append(value)
                    elif name in ("event", "id"):
                        fields[name] = value
