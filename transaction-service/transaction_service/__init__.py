"""The transaction-service: validates transactions, stores them in Redis and publishes
them to Kafka, answering 201 only once the broker acknowledged.

Served by gunicorn as ``gunicorn --config gunicorn.conf.py 'transaction_service:create_app()'``.
"""

from transaction_service.app import create_app

__all__ = ["create_app"]
