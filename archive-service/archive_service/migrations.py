"""Schema migrations: numbered SQL files, applied once, in order, at start.

``archive-service/migrations/NNNN_name.sql`` are applied in one database transaction
that first takes a transaction-scoped advisory lock, so archivers that start together
queue on the lock and the second finds everything applied (a no-op); a failing file
rolls the whole run back. ``schema_migrations`` records what was applied.

A dozen lines of our own rather than a migration library: the schema is two tables,
the archiver is its only writer, and plain numbered SQL files are what an operator
reads and runs by hand (``psql -f``) if need be.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
"""``archive-service/migrations`` in the repository, ``/app/migrations`` in the image."""
ADVISORY_LOCK_ID = 0x66_72_61_75_64_61_72_63  # "fraudarc": this schema's lock, one number
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory`` by version; a badly named .sql file is an error."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: migrations are named NNNN_lowercase_name.sql")
        found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a number in {directory}")
    return found


def apply(connection: psycopg.Connection[Any], directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the migrations not applied yet; returns their names (empty: nothing to do)."""
    pending = available(directory)
    applied_now: list[str] = []
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
        connection.execute(CREATE_TABLE)
        done = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
        for migration in pending:
            if migration.version in done:
                continue
            connection.execute(migration.sql.encode())  # no parameters: several statements
            connection.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied_now.append(migration.name)
    if applied_now:
        log.info("applied migrations", extra={"migrations": applied_now})
    return applied_now
