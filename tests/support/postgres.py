"""A real PostgreSQL for the archive's tests: `tools.postgres_server.PostgresServer`
(initdb into a temporary directory, the server on a free loopback port with its socket
there), stopped after; never the machine's server on 5432.

``postgres_server`` is one server per test module (a test may stop and start it: the
same port and data come back); ``archive_database`` gives each test an empty database
of its own on it, so tests never see each other's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tools.postgres_server import PostgresServer


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    # fsync off: a throwaway server; the tests stop it cleanly (pg_ctl stop -m fast).
    with PostgresServer(fsync=False) as server:
        yield server


def create_database(server: PostgresServer) -> str:
    """An empty database on ``server``; returns its URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.admin_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def archive_database(postgres_server: PostgresServer) -> str:
    return create_database(postgres_server)


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        return connection.execute(sql.encode(), params).fetchall()


def counts(url: str) -> tuple[int, int]:
    """(rows in transactions, rows in decisions); (0, 0) before the archiver made them."""
    try:
        rows = query(
            url, "SELECT (SELECT count(*) FROM transactions), (SELECT count(*) FROM decisions)"
        )
    except psycopg.errors.UndefinedTable:
        return 0, 0
    return int(rows[0][0]), int(rows[0][1])


def as_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))
