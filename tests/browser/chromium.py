"""Headless Chromium driven over the Chrome DevTools protocol on a pipe.

``--remote-debugging-pipe`` makes Chromium read protocol commands from fd 3 and write
answers and events to fd 4, one JSON message each, NUL-terminated. That needs neither
chromedriver nor a websocket client: only Debian's ``chromium`` package.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, Self

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--lang=en-US",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    """Path of an installed Chromium or Chrome (``CHROMIUM`` env var wins), else None."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).exists() else None)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class ProtocolError(RuntimeError):
    """Chromium answered a command with an error, or a page script threw."""


def _high_fd(fd: int) -> int:
    """The same pipe end moved above 9, so the child's dup2 onto 3 and 4 cannot clobber it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Chromium:
    """One headless browser with one page; a context manager that always cleans up.

    ``events`` collects the page's uncaught exceptions and console/log errors (CSP
    violations and failed loads among them) so a test can assert there were none.
    """

    def __init__(self, binary: str, *, width: int = 1440, height: int = 960) -> None:
        self.binary = binary
        self.width = width
        self.height = height
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.errors: list[str] = []
        self._session = ""
        self._next_id = 0
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._write_fd = -1
        self._read_fd = -1
        self._reader: threading.Thread | None = None
        self._load_event = threading.Event()
        self._log_path = self.profile / "chromium.log"

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0) -> Self:
        to_child_r, to_child_w = (_high_fd(fd) for fd in os.pipe())
        from_child_r, from_child_w = (_high_fd(fd) for fd in os.pipe())

        def child_fds() -> None:  # runs in the child between fork and exec
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        command = [
            self.binary,
            *FLAGS,
            f"--user-data-dir={self.profile / 'data'}",
            f"--window-size={self.width},{self.height}",
            "about:blank",
        ]
        with open(self._log_path, "ab") as log:
            self.process = subprocess.Popen(  # preexec_fn only moves fds: no locks taken
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(3, 4),
                preexec_fn=child_fds,
            )
        os.close(to_child_r)
        os.close(from_child_w)
        self._write_fd, self._read_fd = to_child_w, from_child_r
        self._reader = threading.Thread(target=self._read_forever, name="cdp-reader", daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
        attached = self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self._session = attached["sessionId"]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(domain)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
        )
        return self

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProtocolError, TimeoutError, OSError):
                self.call("Browser.close", session=False, timeout=5)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for fd in (self._write_fd, self._read_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._write_fd = self._read_fd = -1
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ protocol

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: bool = True,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            self._next_id += 1
            message: dict[str, Any] = {"id": self._next_id, "method": method}
            message["params"] = params or {}
            if session and self._session:
                message["sessionId"] = self._session
            self._pending[self._next_id] = future
            data = json.dumps(message).encode() + b"\0"
            while data:
                data = data[os.write(self._write_fd, data) :]
        try:
            answer = future.result(timeout)
        except TimeoutError:
            raise TimeoutError(f"no answer to {method} within {timeout}s") from None
        if "error" in answer:
            raise ProtocolError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def _read_forever(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._read_fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                self._dispatch(json.loads(raw))
        with self._lock:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ProtocolError("Chromium closed the pipe"))
            self._pending.clear()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            with self._lock:
                future = self._pending.pop(message["id"], None)
            if future is not None:
                future.set_result(message)
            return
        method = message.get("method")
        params = message.get("params", {})
        if method == "Page.loadEventFired":
            self._load_event.set()
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {description}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            texts = [str(arg.get("value", arg.get("description", ""))) for arg in params["args"]]
            self.errors.append("console.error: " + " ".join(texts))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())

    # ------------------------------------------------------------------ page helpers

    def navigate(self, url: str, timeout: float = 30.0) -> None:
        self._load_event.clear()
        answer = self.call("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise ProtocolError(f"navigation to {url} failed: {answer['errorText']}")
        if not self._load_event.wait(timeout):
            raise TimeoutError(f"{url} did not finish loading within {timeout}s")

    def evaluate(self, expression: str, *, timeout: float = 30.0) -> Any:
        """The JSON value of ``expression`` in the page (promises are awaited)."""
        answer = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise ProtocolError(f"page script failed: {text}")
        return answer.get("result", {}).get("value")

    def wait_until(self, expression: str, *, timeout: float = 30.0, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(
            f"timed out after {timeout:.0f}s waiting for {what or expression} (last: {value!r})"
        )

    def screenshot(self, path: Path) -> Path:
        answer = self.call("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(answer["data"]))
        return path
