"""The alert-service: consumes ``fraud-alerts``, stores each alert once, and delivers it
(JSON API, live server-sent events, webhooks and email, dashboard).

Served by gunicorn as ``gunicorn --config gunicorn.conf.py 'alert_service:create_app()'``;
the consumer loop and the notification channels run in background threads that the
gunicorn hooks start in each worker.
"""

from __future__ import annotations

import functools
import threading

from flask import Flask

from alert_service import api, dashboard, notify, openapi, stream
from alert_service.cases import api as cases_api
from alert_service.cases.quality import RuleQuality
from alert_service.cases.store import CaseBounds, CaseStore
from alert_service.consumer import AlertHandler
from alert_service.settings import AlertServiceSettings
from alert_service.store import AlertStore, StoreBounds
from fraud_common.api_keys import ApiKeys
from fraud_common.background import BackgroundThread, register
from fraud_common.durability import RedisDurability
from fraud_common.health import HealthCheck, install_health, loop_report
from fraud_common.http_errors import register_error_handlers
from fraud_common.kafka.config import consumer_config, producer_config
from fraud_common.kafka.consumer_loop import ConsumerLoop
from fraud_common.kafka.producer import AckingProducer
from fraud_common.kafka.topics import try_ensure_service_topics
from fraud_common.logging_setup import configure_logging
from fraud_common.metrics import install_metrics
from fraud_common.redis_client import connect
from fraud_common.schemas import Alert
from fraud_common.settings import dlq_topic

REDIS_EXTENSION = "alert_service.redis"
CLOSERS_EXTENSION = "fraud_common.closers"
TOPIC_SETUP_TIMEOUT_SECONDS = 10.0


def create_app(settings: AlertServiceSettings | None = None) -> Flask:
    settings = settings or AlertServiceSettings()  # from the environment
    configure_logging(settings.log_level, service="alert-service", fmt=settings.log_format)
    # A broker that is not up yet is only a warning: the consumer subscribes anyway and
    # gets the topic once it exists.
    try_ensure_service_topics(settings, timeout=TOPIC_SETUP_TIMEOUT_SECONDS)

    app = Flask(__name__)
    install_metrics(app, service="alert-service")
    redis_url = settings.redis_url.get_secret_value()
    redis_client = connect(
        redis_url, socket_timeout=settings.redis_socket_timeout, cluster=settings.redis_cluster
    )
    durability = RedisDurability.from_settings(settings)
    durability.check(redis_client)  # logs what the server gives; each batch checks again
    producer = AckingProducer(
        producer_config(
            settings.kafka_bootstrap_servers,
            client_id="alert-service",
            extra=settings.kafka_extra_config,
        )
    )
    store = AlertStore(
        redis_client,
        StoreBounds(
            recent_max=settings.recent_alerts_max,
            user_max=settings.user_alerts_max,
            ttl_seconds=settings.alert_ttl_seconds,
            stream_max_len=settings.stream_max_len,
        ),
    )
    quality = RuleQuality(redis_client)
    cases = CaseStore(redis_client, quality, CaseBounds(alerts_kept=settings.case_alerts_kept))
    loop: ConsumerLoop[Alert] = ConsumerLoop(
        consumer_config=consumer_config(
            settings.kafka_bootstrap_servers,
            group_id=settings.consumer_group,
            fetch_wait_max_ms=settings.kafka_fetch_wait_max_ms,
            client_id="alert-service",
            extra=settings.kafka_extra_config,
        ),
        topics=[settings.alerts_topic],
        handler=AlertHandler(
            store,
            cases,
            max_event_age=settings.max_event_age,
            make_durable=functools.partial(durability.wait, redis_client),
        ),
        producer=producer,
        dlq_topic=dlq_topic,
    )
    consumer_thread = BackgroundThread("alert-consumer", loop)
    register(app, consumer_thread)
    for channel in notify.build_notifiers(settings, redis_client, producer):
        register(app, channel)

    shutdown = threading.Event()
    app.extensions[stream.SHUTDOWN_EXTENSION] = shutdown
    app.extensions[stream.FEED_EXTENSION] = stream.AlertFeed(
        stream.FeedConfig(
            redis_url=redis_url,
            socket_timeout=settings.redis_socket_timeout,
            cluster=settings.redis_cluster,
            heartbeat_seconds=settings.sse_heartbeat_seconds,
            max_subscribers=settings.sse_max_subscribers,
        ),
        store,
        shutdown,
    )
    app.extensions[api.STORE_EXTENSION] = store
    app.extensions[cases_api.CASES_EXTENSION] = cases
    app.extensions[cases_api.QUALITY_EXTENSION] = quality
    app.extensions[api.API_KEYS_EXTENSION] = ApiKeys(settings.api_keys)
    app.extensions[REDIS_EXTENSION] = redis_client
    install_health(
        app,
        HealthCheck(
            redis_client=redis_client,
            producer=producer,
            loops=loop_report(consumer_thread, loop.status, settings.consumer_stall_seconds),
        ),
    )
    # Run by the gunicorn hook after the loops stopped: streams end, producer flushes.
    app.extensions[CLOSERS_EXTENSION] = [shutdown.set, producer.close, redis_client.close]
    app.extensions[CLOSERS_EXTENSION].append(app.extensions[stream.FEED_EXTENSION].close)

    for blueprint in (
        api.blueprint,
        cases_api.blueprint,
        stream.blueprint,
        openapi.blueprint,
        dashboard.blueprint,
    ):
        app.register_blueprint(blueprint)
    register_error_handlers(
        app,
        unavailable_message="the alert store is unavailable, retry later",
    )
    return app
