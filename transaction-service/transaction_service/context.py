"""The objects a request needs, built once per worker in `create_app` and kept on the app."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app

from fraud_common.api_keys import ApiKeys
from transaction_service.idempotency import IdempotencyStore
from transaction_service.publishing import Publisher
from transaction_service.settings import TransactionServiceSettings

EXTENSION = "transaction_service"


@dataclass(frozen=True)
class ServiceContext:
    settings: TransactionServiceSettings
    redis: redis.Redis
    publisher: Publisher
    idempotency: IdempotencyStore
    api_keys: ApiKeys
    openapi_document: str

    def install(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self


def current() -> ServiceContext:
    context: ServiceContext = current_app.extensions[EXTENSION]
    return context
