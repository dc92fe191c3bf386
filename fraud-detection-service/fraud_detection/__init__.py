"""The fraud-detection-service: consumes transactions, evaluates the rules against
per-user state in Redis, publishes alerts and records decisions.

Served by gunicorn as ``gunicorn --config gunicorn.conf.py 'fraud_detection:create_app()'``;
each worker runs one consumer of the group in a background thread (started by the
hooks in `fraud_common.gunicorn_hooks`) and answers ``GET /health``.
"""

from __future__ import annotations

import functools
import os
import socket

from flask import Flask, request

from fraud_common.api_keys import HEADER as API_KEY_HEADER
from fraud_common.api_keys import ApiKeys
from fraud_common.background import BackgroundThread, register
from fraud_common.durability import RedisDurability
from fraud_common.gunicorn_hooks import on_hangup
from fraud_common.health import HealthCheck, install_health, loop_report
from fraud_common.http_errors import register_error_handlers
from fraud_common.kafka.config import consumer_config, producer_config
from fraud_common.kafka.consumer_loop import ConsumerLoop
from fraud_common.kafka.producer import AckingProducer
from fraud_common.kafka.topics import ensure_service_topics
from fraud_common.logging_setup import configure_logging
from fraud_common.metrics import install_metrics
from fraud_common.money import load_fx_rates
from fraud_common.redis_client import connect
from fraud_common.schemas import Transaction
from fraud_common.settings import dlq_topic
from fraud_detection.geo import load_gazetteer
from fraud_detection.handler import TransactionHandler
from fraud_detection.lists import ListStore
from fraud_detection.lists_api import install as install_lists_api
from fraud_detection.openapi import install as install_openapi
from fraud_detection.reconciler import Reconciler
from fraud_detection.rules_api import RuleStats, install_rules_api
from fraud_detection.rules_source import RulesSource
from fraud_detection.settings import DetectorSettings
from fraud_detection.state import UserState
from fraud_detection.worker import DetectorWorker

SERVICE = "fraud-detection-service"
CONSUMER_THREAD = "fraud-detector"
RECONCILER_THREAD = "fraud-reconciler"
RULES_THREAD = "fraud-rules-watcher"


def create_app(settings: DetectorSettings | None = None) -> Flask:
    settings = settings or DetectorSettings()  # from the environment
    configure_logging(settings.log_level, service=SERVICE, fmt=settings.log_format)
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    install_metrics(app, service=SERVICE)
    client_id = f"{SERVICE}-{socket.gethostname()}-{os.getpid()}"

    redis_client = connect(
        settings.redis_url.get_secret_value(),
        socket_timeout=settings.redis_socket_timeout,
        cluster=settings.redis_cluster,
    )
    producer = AckingProducer(
        producer_config(
            settings.kafka_bootstrap_servers,
            client_id=client_id,
            extra=settings.kafka_extra_config,
        )
    )
    app.extensions["fraud_common.closers"] = [producer.close, redis_client.close]
    durability = RedisDurability.from_settings(settings)
    durability.check(redis_client)  # logs what the server gives; each write checks again
    app.extensions["fraud_common.durability"] = durability
    list_store = ListStore(redis_client, durability=durability)

    rules = RulesSource(settings.rules_file, poll_seconds=settings.rules_poll_seconds)
    on_hangup(app, rules.request_reload)
    gazetteer = functools.partial(load_gazetteer, settings.gazetteer_min_population)
    handler = TransactionHandler(
        rules=rules.current,
        state=UserState(
            redis_client,
            late_allowance_ms=settings.late_event_allowance_seconds * 1000,
            max_entries=settings.window_max_entries,
            evaluation_ttl_seconds=settings.evaluation_ttl_seconds,
            user_ttl_seconds=settings.user_state_ttl_seconds,
        ),
        lists=list_store,
        redis_client=redis_client,
        producer=producer,
        alerts_topic=settings.alerts_topic,
        fx_rates=load_fx_rates(settings.fx_rates_path),
        gazetteer=gazetteer,
        decision_ttl_seconds=settings.decision_ttl_seconds,
        stats_ttl_seconds=settings.stats_ttl_seconds,
        ack_timeout_seconds=settings.alert_ack_timeout_seconds,
        max_event_age=settings.max_event_age,
        durability=durability,
        decisions_topic=settings.decisions_topic,
    )
    loop: ConsumerLoop[Transaction] = ConsumerLoop(
        consumer_config=consumer_config(
            settings.kafka_bootstrap_servers,
            group_id=settings.consumer_group,
            fetch_wait_max_ms=settings.kafka_fetch_wait_max_ms,
            client_id=client_id,
            extra=settings.kafka_extra_config,
        ),
        topics=[settings.transactions_topic],
        handler=handler,
        producer=producer,
        dlq_topic=dlq_topic,
        max_batch=settings.consumer_batch_size,
        poll_timeout=settings.consumer_poll_timeout_seconds,
    )
    worker = DetectorWorker(
        loop,
        ensure_topics=functools.partial(
            ensure_service_topics,
            settings,
            timeout=settings.topic_setup_timeout_seconds,
            decisions=settings.decisions_topic or None,
        ),
        warm_up=gazetteer,
    )
    thread = BackgroundThread(CONSUMER_THREAD, worker)
    register(app, thread)
    reconciler = Reconciler(
        redis_client,
        producer,
        topic=settings.transactions_topic,
        interval_seconds=settings.reconcile_interval_seconds,
        after_seconds=settings.reconcile_after_seconds,
        batch_size=settings.reconcile_batch_size,
        ack_timeout_seconds=settings.alert_ack_timeout_seconds,
    )
    register(app, BackgroundThread(RECONCILER_THREAD, reconciler))
    register(app, BackgroundThread(RULES_THREAD, rules))

    admin_keys = ApiKeys(settings.admin_api_keys)
    install_rules_api(
        app,
        rules,
        RuleStats(redis_client),
        authorize=lambda: admin_keys.require(request.headers.get(API_KEY_HEADER)),
    )
    install_lists_api(app, list_store, admin_keys)
    install_openapi(app)
    install_health(
        app,
        HealthCheck(
            redis_client=redis_client,
            producer=producer,
            loops=loop_report(thread, loop.status, settings.consumer_stall_seconds),
        ),
    )
    register_error_handlers(app, unavailable_message="Redis is unavailable; retry shortly")
    return app
