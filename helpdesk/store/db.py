"""Connecting to the database by URL and keeping its schema current.

``sqlite:///path`` is the embedded default, ``postgresql://user@host:port/db``
the scale path. The schema carries a version number in the ``meta`` table;
``MIGRATIONS`` lists the steps from one version to the next, so a later release
upgrades a school's database in place (``helpdesk init`` or any start).
"""
from __future__ import annotations

import hashlib
import importlib
import os
import sqlite3
import pkgutil
import re
from contextlib import contextmanager
from typing import Callable, Iterator
from urllib.parse import urlparse

from peewee import Database, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import connect as connect_url

from .models import ALL_MODELS, Letter, Meta, database


class DatabaseError(Exception):
    """The database cannot be opened or upgraded; the message says why."""


def _create_v1(db: Database) -> None:
    db.create_tables(ALL_MODELS, safe=True)


def _discover() -> list[Callable[[Database], None]]:
    """Version 1 plus every ``helpdesk/store/migrations/mNNNN_*.py``, in number order.

    Each module has ``upgrade(db)``, which takes the schema from version NNNN - 1
    to NNNN (m0002 from 1 to 2). A released migration is never edited: a change
    to the schema is a new module. Models that a migration creates live in their
    own modules and are not in ``ALL_MODELS`` (which is frozen at version 1).
    """
    from . import migrations

    steps: list[Callable[[Database], None]] = [_create_v1]
    names = sorted(
        m.name for m in pkgutil.iter_modules(migrations.__path__) if re.match(r"m\d{4}_", m.name)
    )
    for expected, name in enumerate(names, start=2):
        if int(name[1:5]) != expected:
            raise DatabaseError(f"migration {name}: expected number {expected:04d}")
        steps.append(importlib.import_module(f"{migrations.__name__}.{name}").upgrade)
    return steps


MIGRATIONS: list[Callable[[Database], None]] = _discover()
SCHEMA_VERSION = len(MIGRATIONS)


def make_database(url: str) -> Database:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parsed.path
        if path and path != ":memory:":
            _create_private(path)
        return SqliteDatabase(
            path or ":memory:",
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "synchronous": "normal",
                "busy_timeout": 10000,
            },
        )
    if parsed.scheme in ("postgres", "postgresql"):
        try:
            import psycopg2  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise DatabaseError(
                "PostgreSQL needs psycopg2: pip install 'helpdesk[postgres]'"
            ) from exc
        db = connect_url(url)
        assert isinstance(db, PostgresqlDatabase)
        return db
    raise DatabaseError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")


def _create_private(path: str) -> None:
    """A new database directory is made 0700 and a new database file 0600 before SQLite
    opens it; SQLite gives its -wal and -shm files the database file's permissions."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # empty = valid SQLite
    except FileExistsError:
        pass


# The outbox claims letters with UPDATE ... RETURNING (SQLite 3.35, March 2021).
MIN_SQLITE = (3, 35)


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Bind the models to the database at ``url`` and bring its schema up to date."""
    if url.startswith("sqlite") and sqlite3.sqlite_version_info < MIN_SQLITE:
        raise DatabaseError(
            f"SQLite {sqlite3.sqlite_version} is too old: helpdesk needs {'.'.join(map(str, MIN_SQLITE))} "
            "or newer (UPDATE ... RETURNING); use a newer Python build or PostgreSQL")
    db = make_database(url)
    if database.obj is not None and not database.obj.is_closed():
        database.obj.close()  # re-binding (tests, a CLI call in-process): drop the old handle
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
    except Exception as exc:
        raise DatabaseError(f"cannot open database {redact(url)}: {exc}") from exc
    if url.startswith("sqlite") and db.database not in ("", ":memory:"):
        for name in (db.database, db.database + "-wal", db.database + "-shm"):
            try:
                os.chmod(name, 0o600)  # personal data of minors: owner only (older files too)
            except OSError:
                pass
    if migrate:
        upgrade(db)
    return db


def schema_version(db: Database) -> int:
    if not db.table_exists("meta"):
        return 0
    row = Meta.get_or_none(Meta.key == "schema_version")
    return int(row.value) if row else 0


def set_meta(key: str, value: str) -> None:
    Meta.insert(key=key, value=value).on_conflict(
        conflict_target=[Meta.key], update={Meta.value: value}
    ).execute()


def upgrade(db: Database) -> int:
    """Apply every pending migration, each in its own transaction. Returns the version."""
    current = schema_version(db)
    if current > SCHEMA_VERSION:
        raise DatabaseError(
            f"the database has schema version {current}, newer than this helpdesk "
            f"({SCHEMA_VERSION}); upgrade helpdesk"
        )
    for version in range(current, SCHEMA_VERSION):
        with db.atomic():
            MIGRATIONS[version](db)
            set_meta("schema_version", str(version + 1))
    return SCHEMA_VERSION


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


# --- locks: several daemons on one PostgreSQL ------------------------------------------
#
# On PostgreSQL several daemon processes (or hosts) may share one database. What
# only one of them may do at a time is guarded by an advisory lock named by a
# string (its 64-bit key is a stable hash of the name): a *session* lock lives
# as long as the connection, so a process that dies lets go of it at once; a
# *transaction* lock ends with the transaction. SQLite has one writer at a time
# and no such locks: there every lock is granted.


def on_postgres() -> bool:
    return isinstance(database.obj, PostgresqlDatabase)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for an advisory lock named ``name``."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(),
                          "big", signed=True)


def _scalar(sql: str, *params) -> object:
    return database.execute_sql(sql, params).fetchone()[0]


def try_transaction_lock(name: str) -> bool:
    """Take the lock ``name`` until the current transaction ends, unless another
    session holds it (then False at once, no waiting). Call inside a transaction."""
    if not on_postgres():
        return True
    return bool(_scalar("SELECT pg_try_advisory_xact_lock(%s)", lock_key(name)))


def try_session_lock(name: str) -> bool:
    """Take the lock ``name`` for this connection (released by ``release_session_lock``
    or when the connection ends), unless another session holds it."""
    if not on_postgres():
        return True
    return bool(_scalar("SELECT pg_try_advisory_lock(%s)", lock_key(name)))


def release_session_lock(name: str) -> None:
    if on_postgres():
        _scalar("SELECT pg_advisory_unlock(%s)", lock_key(name))


def holds_session_lock(name: str) -> bool:
    """Whether this connection holds the session lock ``name`` (a reconnected
    connection has lost every lock the old one held)."""
    if not on_postgres():
        return True
    key = lock_key(name) & 0xFFFFFFFFFFFFFFFF
    return bool(_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND pid = pg_backend_pid() AND objsubid = 1 AND classid::bigint = %s"
        " AND objid::bigint = %s)", key >> 32, key & 0xFFFFFFFF))


def keep_session_lock(name: str) -> bool:
    """Hold the session lock ``name`` from now on if it is free: True while this
    process holds it (taken now or earlier), False while another one does."""
    return holds_session_lock(name) or try_session_lock(name)


@contextmanager
def letter_claim(letter_id: int) -> Iterator[bool]:
    """Claim a stored letter for processing: True when this process may process it
    (nobody else is, and it is still ``new``), False when it must skip it.

    On PostgreSQL the claim is a session advisory lock on the letter's *sender*,
    held while the letter is processed: two daemons never process one letter, nor
    two letters of one sender at once, so a sender's letters are still taken in
    order (a follow-up after the appeal it follows). A process killed in the
    middle lets go of the lock with its connection, and the letter is taken by
    the next cycle of whichever daemon runs."""
    if not on_postgres():
        yield True
        return
    row = Letter.select(Letter.sender, Letter.status).where(Letter.id == letter_id).first()
    if row is None or row.status != "new":
        yield False
        return
    sender = row.sender.strip().lower()
    name = f"helpdesk/sender/{sender}" if sender else f"helpdesk/letter/{letter_id}"
    if not try_session_lock(name):
        yield False
        return
    try:
        yield Letter.select().where((Letter.id == letter_id) & (Letter.status == "new")).exists()
    finally:
        try:
            release_session_lock(name)
        except Exception:  # noqa: BLE001 - a broken connection has dropped the lock already
            pass


def commit_without_flush() -> None:
    """Let the current transaction commit without waiting for its WAL to reach the
    disk (PostgreSQL ``synchronous_commit = off`` for this transaction only; SQLite
    in WAL mode with synchronous=NORMAL does not flush on commit anyway).

    For marks that are cheap to lose: a crash of the database *server* may forget
    the last fraction of a second of them (never corrupting anything); a crash of
    the daemon loses nothing that was committed. Call inside a transaction."""
    if on_postgres():
        database.execute_sql("SET LOCAL synchronous_commit TO OFF")


def add_claim_columns(db: Database) -> None:
    """The schema step of the claims: ``outgoing.claimed_by`` (the process sending a
    letter, "host/pid/start token") and ``outgoing.lease_until`` (until when its
    claim holds). Idempotent: a database created with these columns is left alone."""
    from peewee import CharField, DateTimeField
    from playhouse.migrate import SchemaMigrator, migrate

    columns = {c.name for c in db.get_columns("outgoing")}
    migrator = SchemaMigrator.from_database(db)
    steps = []
    if "claimed_by" not in columns:
        steps.append(migrator.add_column("outgoing", "claimed_by", CharField(max_length=255, null=True)))
    if "lease_until" not in columns:
        steps.append(migrator.add_column("outgoing", "lease_until", DateTimeField(null=True)))
    if steps:
        migrate(*steps)
