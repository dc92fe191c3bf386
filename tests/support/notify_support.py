"""Real receivers for the notification tests: an HTTP webhook receiver, an SMTP sink, and
helpers that publish alerts to the stream exactly as the alert store does."""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import redis
from aiosmtpd.controller import Controller

from alert_service.notify import ChannelWorker, Tuning, build_channel_workers
from alert_service.settings import AlertServiceSettings
from fraud_common import keys
from fraud_common.background import BackgroundThread
from fraud_common.kafka.producer import AckingProducer
from fraud_common.schemas import Alert
from tools.local_services import free_port, wait_for

SECRET = "test-webhook-secret"
FAST_TUNING = Tuning(block_seconds=0.2, claim_idle_seconds=1.0, sweep_interval_seconds=0.2)


def publish(client: redis.Redis, *alerts: Alert) -> list[str]:
    """XADD the alerts in one transaction (as the store does for a batch)."""
    pipe = client.pipeline(transaction=True)
    for alert in alerts:
        pipe.xadd(
            keys.ALERTS_STREAM,
            {
                "alertId": alert.alertId,
                "userId": alert.transaction.userId,
                "alert": alert.to_json(),
            },
        )
    return [str(entry_id) for entry_id in pipe.execute()]


def notify_settings(redis_url: str, bootstrap: str, **overrides: Any) -> AlertServiceSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "redis_url": redis_url,
        "webhook_secret": SECRET,
        "webhook_timeout_seconds": 2.0,
        "webhook_max_attempts": 3,
        "webhook_backoff_initial_seconds": 0.05,
        "webhook_backoff_max_seconds": 0.2,
        "alert_cooldown_seconds": 0,
        "app_env": "development",  # short test secrets
        **overrides,
    }
    return AlertServiceSettings(**values)


def pending(client: redis.Redis, worker: ChannelWorker) -> int:
    return int(client.xpending(keys.ALERTS_STREAM, worker.queue.group)["pending"])


class RunningChannels:
    """Channel workers running in background threads; stopped (bounded) on exit."""

    def __init__(self, workers: list[ChannelWorker]) -> None:
        self.workers = workers
        self.threads = [
            BackgroundThread(f"test-{w.channel}", w, exit_process_on_death=False) for w in workers
        ]

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        for worker in self.workers:
            assert worker.ready.wait(30), f"{worker.channel} never became ready"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for thread in self.threads:
            thread.stop(timeout=10)
        assert not any(t.alive for t in self.threads), "a channel worker did not stop"

    def by_target(self, target: str) -> list[ChannelWorker]:
        return [w for w in self.workers if w.deliverer.target == target]


def start_channels(
    settings: AlertServiceSettings,
    client: redis.Redis,
    producer: AckingProducer,
    tuning: Tuning = FAST_TUNING,
) -> RunningChannels:
    return RunningChannels(build_channel_workers(settings, client, producer, tuning=tuning))


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


@dataclass
class Plan:
    """What the receiver answers: ``respond(alert_id, n)`` -> status for the n-th request
    (from 1) carrying that alert; ``delay`` seconds before answering."""

    respond: Callable[[str, int], int] = lambda alert_id, n: 200
    delay: float = 0.0
    seen: dict[str, int] = field(default_factory=dict)


class WebhookReceiver:
    """A real HTTP server on a free loopback port, in a thread, recording every request."""

    def __init__(self, plan: Plan | None = None) -> None:
        self.plan = plan or Plan()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                alert = self.headers.get("X-Alert-Id", "")
                with receiver._lock:
                    n = receiver.plan.seen[alert] = receiver.plan.seen.get(alert, 0) + 1
                status = receiver.plan.respond(alert, n)
                with receiver._lock:
                    receiver.requests.append(
                        Request(self.path, dict(self.headers.items()), body, status, arrived)
                    )
                if receiver.plan.delay:
                    time.sleep(receiver.plan.delay)
                with contextlib.suppress(OSError):  # the sender may have timed out
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/alerts?token=abc"

    def successes(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def all(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class Mail:
    envelope_from: str
    recipients: list[str]
    message: EmailMessage
    at: float
    login: str | None


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.sink.attempts += 1
        if self.sink.attempts <= self.sink.fail_first:
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        auth = session.auth_data
        login = auth.login.decode() if auth is not None else None
        self.sink.mails.append(
            Mail(envelope.mail_from, list(envelope.rcpt_tos), message, time.monotonic(), login)
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free loopback port; answers 451 to the first
    ``fail_first`` messages; with ``credentials`` it requires AUTH (over plain text: test)."""

    def __init__(self, *, fail_first: int = 0, credentials: tuple[str, str] | None = None):
        self.fail_first = fail_first
        self.attempts = 0
        self.mails: list[Mail] = []
        kwargs: dict[str, Any] = {}
        if credentials:

            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
                from aiosmtpd.smtp import AuthResult, LoginPassword

                ok = (
                    isinstance(data, LoginPassword)
                    and (
                        data.login.decode(),
                        data.password.decode(),
                    )
                    == credentials
                )
                return AuthResult(success=ok, handled=False, auth_data=data)

            kwargs = {"authenticator": authenticator, "auth_require_tls": False}
            kwargs["auth_required"] = True
        self.port = free_port()
        self._controller = Controller(
            _SinkHandler(self), hostname="127.0.0.1", port=self.port, **kwargs
        )

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    wait_for(condition, timeout=timeout, interval=0.02, what=what)


@contextlib.contextmanager
def dlq_producer(bootstrap: str) -> Iterator[AckingProducer]:
    from fraud_common.kafka.config import producer_config

    producer = AckingProducer(producer_config(bootstrap, client_id="notify-test"))
    try:
        yield producer
    finally:
        producer.close()
