"""Connecting to the database by URL and keeping its schema current.

``sqlite:///path`` is the embedded default, ``postgresql://user@host:port/db``
the scale path. The schema carries a version number in the ``meta`` table;
``MIGRATIONS`` lists the steps from one version to the next, so a later release
upgrades a school's database in place (``helpdesk init`` or any start).
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import re
from typing import Callable
from urllib.parse import urlparse

from peewee import Database, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import connect as connect_url

from .models import ALL_MODELS, Meta, database


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
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
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


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Bind the models to the database at ``url`` and bring its schema up to date."""
    db = make_database(url)
    if database.obj is not None and not database.obj.is_closed():
        database.obj.close()  # re-binding (tests, a CLI call in-process): drop the old handle
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
    except Exception as exc:
        raise DatabaseError(f"cannot open database {redact(url)}: {exc}") from exc
    if url.startswith("sqlite") and db.database not in ("", ":memory:"):
        try:
            os.chmod(db.database, 0o600)  # personal data of minors: owner only
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
