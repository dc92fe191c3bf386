"""``GET /api/v1/transactions/<id>`` after Redis: the PostgreSQL archive
(`fraud_common.archive`), when ``ARCHIVE_DATABASE_URL`` is set.

Redis keeps a record only for ``TRANSACTION_TTL_SECONDS``; the archive-service keeps
it, and its decision, for good. The reader (a small connection pool) is made on the
first read in each gunicorn worker, after the fork, and closed with the app's other
clients. The archive away is a 503 like Redis away: the record may well be there.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from flask import current_app

from fraud_common.archive import ArchiveReader
from fraud_common.http_errors import unavailable
from transaction_service.context import current

log = logging.getLogger(__name__)

EXTENSION = "transaction_service.archive_reader"
CLOSERS = "fraud_common.closers"
_creating = threading.Lock()


def read_archived(transaction_id: str) -> tuple[str, str | None] | None:
    """``(record JSON, decision JSON or None)`` from the archive; None when the archive
    is off or does not have it. Raises the 503 `ApiError` when it cannot be asked."""
    reader = _reader()
    if reader is None:
        return None
    try:
        return reader.read(transaction_id)
    except psycopg.OperationalError:
        log.warning("could not read the archive", exc_info=True)
        raise unavailable("storage is unavailable; retry shortly") from None


def _reader() -> ArchiveReader | None:
    url = current().settings.archive_url
    if url is None:
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _creating:
        reader: ArchiveReader | None = app.extensions.get(EXTENSION)
        if reader is None:
            reader = ArchiveReader(url)
            app.extensions[EXTENSION] = reader
            app.extensions.setdefault(CLOSERS, []).append(reader.close)
        return reader
