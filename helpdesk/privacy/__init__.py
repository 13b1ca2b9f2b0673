"""Personal data of minors: retention (``purge``) and erasure (``erase``).

Both keep the statistics: the appeal rows (dates, class, subject, category,
assignee, status) and the event log stay, so the digest and ``helpdesk report``
give the same figures afterwards. What goes is the text people wrote: a removed
letter keeps its row, with ``REMOVED_RAW`` (a tiny valid message saying
"удалено") instead of its bytes, so everything that may read it still can.
"""
from __future__ import annotations

from email.message import EmailMessage

MARKER = "удалено"  # what stands where personal data was


def _removed_raw() -> bytes:
    msg = EmailMessage()
    msg["Subject"] = MARKER
    msg["X-Helpdesk-Removed"] = "yes"
    msg.set_content(MARKER)
    return msg.as_bytes()


REMOVED_RAW = _removed_raw()


def _sqlite():
    from peewee import SqliteDatabase

    from ..store.models import database

    return database.obj if isinstance(database.obj, SqliteDatabase) else None


def overwrite_freed_space() -> None:
    """SQLite: removed text is overwritten with zeros, not left in free pages (this connection)."""
    db = _sqlite()
    if db is not None:
        db.execute_sql("PRAGMA secure_delete = ON")


def flush_journal() -> None:
    """SQLite: copy the changes into the database file and empty the WAL, which still
    holds the pages as they were before. (PostgreSQL: autovacuum reclaims old row versions.)"""
    db = _sqlite()
    if db is not None:
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
