"""The Flask application factory: settings, clients and blueprints, built once per worker."""

from __future__ import annotations

from flask import Flask

from fraud_common.api_keys import ApiKeys
from fraud_common.durability import RedisDurability
from fraud_common.health import HealthCheck, install_health
from fraud_common.http_errors import register_error_handlers
from fraud_common.kafka.config import producer_config
from fraud_common.kafka.producer import AckingProducer
from fraud_common.kafka.topics import try_ensure_service_topics
from fraud_common.logging_setup import configure_logging
from fraud_common.metrics import install_metrics
from fraud_common.redis_client import connect
from transaction_service import openapi, transactions
from transaction_service.context import ServiceContext
from transaction_service.idempotency import IdempotencyStore
from transaction_service.publishing import Publisher
from transaction_service.settings import TransactionServiceSettings

CLOSERS = "fraud_common.closers"
TOPIC_SETUP_TIMEOUT_SECONDS = 5.0


def create_app(settings: TransactionServiceSettings | None = None) -> Flask:
    settings = settings or TransactionServiceSettings()
    configure_logging(settings.log_level, service="transaction-service", fmt=settings.log_format)
    app = Flask(__name__, static_folder=None)
    install_metrics(app, service="transaction-service")

    redis_client = connect(
        settings.redis_url.get_secret_value(),
        socket_timeout=settings.redis_socket_timeout,
        cluster=settings.redis_cluster,
    )
    producer = AckingProducer(
        producer_config(
            settings.kafka_bootstrap_servers,
            client_id="transaction-service",
            delivery_timeout_ms=settings.delivery_timeout_ms,
            extra=settings.kafka_extra_config,
        )
    )
    app.extensions[CLOSERS] = [producer.close, redis_client.close]
    durability = RedisDurability.from_settings(settings)
    durability.check(redis_client)  # logs what the server gives; each write checks again
    # A broker that is down is only a warning: publishing answers 503 until it is back,
    # and health says so.
    try_ensure_service_topics(settings, timeout=TOPIC_SETUP_TIMEOUT_SECONDS)

    ServiceContext(
        settings=settings,
        redis=redis_client,
        publisher=Publisher(
            redis_client,
            producer,
            topic=settings.transactions_topic,
            record_ttl_seconds=settings.transaction_ttl_seconds,
            publish_timeout_seconds=settings.publish_timeout_seconds,
            durability=durability,
        ),
        idempotency=IdempotencyStore(
            redis_client,
            ttl_seconds=settings.idempotency_ttl_seconds,
            in_flight_seconds=settings.idempotency_in_flight_seconds,
            durability=durability,
        ),
        api_keys=ApiKeys(settings.api_keys),
        openapi_document=openapi.document_text(settings),
    ).install(app)

    register_error_handlers(app, unavailable_message="storage is unavailable; retry shortly")
    app.register_blueprint(transactions.bp)
    install_health(
        app, HealthCheck(redis_client=redis_client, producer=producer), url_prefix="/api/v1"
    )
    app.register_blueprint(openapi.bp)
    return app
