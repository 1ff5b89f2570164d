"""Opening the bridge's small SQLite files the durable way (WAL, ``synchronous=FULL``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["open_durable", "transaction"]


def open_durable(path: Path, schema: Iterable[str]) -> sqlite3.Connection:
    """Open (creating) ``path`` in autocommit mode with WAL and full sync; run ``schema``.

    Raises ``sqlite3.Error`` or ``OSError``; the connection is closed again then.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        for statement in schema:
            db.execute(statement)
    except BaseException:
        db.close()
        raise
    return db


def transaction(db: sqlite3.Connection, body: Callable[[sqlite3.Connection], None]) -> None:
    """Run ``body(db)`` in one ``BEGIN IMMEDIATE`` transaction (rolled back on error)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        body(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
