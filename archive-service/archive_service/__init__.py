"""The archive-service: consumes ``transactions`` and ``decisions`` and keeps every record
and decision in PostgreSQL, so Redis need hold them only while detection needs them.

Served by gunicorn as ``gunicorn --config gunicorn.conf.py 'archive_service:create_app()'``
(one worker is plenty: a batch of 500 is one database transaction); the consumer loop
runs in a background thread that the gunicorn hooks start. ``/health`` and ``/metrics``.
"""

from __future__ import annotations

from flask import Flask

from archive_service.consumer import ArchiveHandler, ArchiveItem, Database
from archive_service.settings import ArchiveServiceSettings
from fraud_common.background import BackgroundThread, register
from fraud_common.health import HealthCheck, install_health, loop_report
from fraud_common.http_errors import register_error_handlers
from fraud_common.kafka.config import consumer_config, producer_config
from fraud_common.kafka.consumer_loop import ConsumerLoop
from fraud_common.kafka.producer import AckingProducer
from fraud_common.kafka.topics import try_ensure_service_topics
from fraud_common.logging_setup import configure_logging
from fraud_common.metrics import install_metrics
from fraud_common.settings import dlq_topic

CLOSERS_EXTENSION = "fraud_common.closers"
TOPIC_SETUP_TIMEOUT_SECONDS = 10.0


def create_app(settings: ArchiveServiceSettings | None = None) -> Flask:
    settings = settings or ArchiveServiceSettings()  # from the environment
    configure_logging(settings.log_level, service="archive-service", fmt=settings.log_format)
    try_ensure_service_topics(settings, timeout=TOPIC_SETUP_TIMEOUT_SECONDS)

    app = Flask(__name__)
    install_metrics(app, service="archive-service")
    # The producer only sends dead letters (and answers the health's broker check).
    producer = AckingProducer(
        producer_config(
            settings.kafka_bootstrap_servers,
            client_id="archive-service",
            extra=settings.kafka_extra_config,
        )
    )
    database = Database(
        settings.database_url, connect_timeout=settings.archive_connect_timeout_seconds
    )
    loop: ConsumerLoop[ArchiveItem] = ConsumerLoop(
        consumer_config=consumer_config(
            settings.kafka_bootstrap_servers,
            group_id=settings.consumer_group,
            fetch_wait_max_ms=settings.kafka_fetch_wait_max_ms,
            client_id="archive-service",
            extra=settings.kafka_extra_config,
        ),
        topics=[settings.transactions_topic, settings.decisions_topic],
        handler=ArchiveHandler(
            database,
            transactions_topic=settings.transactions_topic,
            decisions_topic=settings.decisions_topic,
            max_event_age=settings.max_event_age,
        ),
        producer=producer,
        dlq_topic=dlq_topic,
        max_batch=settings.consumer_batch_size,
        poll_timeout=settings.consumer_poll_timeout_seconds,
    )
    consumer_thread = BackgroundThread("archive-consumer", loop, on_stop=database.close)
    register(app, consumer_thread)
    install_health(
        app,
        HealthCheck(
            database_up=database.ping,
            producer=producer,
            loops=loop_report(consumer_thread, loop.status, settings.consumer_stall_seconds),
        ),
    )
    app.extensions[CLOSERS_EXTENSION] = [producer.close]
    register_error_handlers(app, unavailable_message="the archive is unavailable, retry later")
    return app
