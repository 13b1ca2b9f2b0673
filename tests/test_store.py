"""The database layer on SQLite and PostgreSQL: schema versions and the roster."""
from __future__ import annotations

import dataclasses

import pytest

from helpdesk.roster.store import load_roster, save_roster
from helpdesk.store.db import (
    SCHEMA_VERSION,
    DatabaseError,
    open_database,
    schema_version,
    set_meta,
    upgrade,
)
from helpdesk.store.models import Person


def test_schema_created_and_versioned(db):
    assert schema_version(db) == SCHEMA_VERSION
    assert upgrade(db) == SCHEMA_VERSION  # idempotent
    for table in ("appeal", "letter", "outgoing", "event", "mailbox_state", "person"):
        assert db.table_exists(table)


def test_newer_schema_is_refused(db, db_url):
    set_meta("schema_version", str(SCHEMA_VERSION + 1))
    with pytest.raises(DatabaseError, match="newer than this helpdesk"):
        open_database(db_url)


def test_roster_round_trip(db, corpus_roster):
    summary = save_roster(corpus_roster)
    assert summary.students == len(corpus_roster.students) and summary.added > 0
    loaded = load_roster()
    assert set(loaded.students) == set(corpus_roster.students)
    assert set(loaded.staff) == set(corpus_roster.staff)
    assert dict(loaded.class_teachers) == dict(corpus_roster.class_teachers)
    assert loaded.assignments == corpus_roster.assignments
    # 10Б English is taught in two groups: both teachers, in roster order.
    assert loaded.teachers_for("10Б", "английский язык") == (
        "a.gorbunova@lyceum21-edu.test", "m.shubina@lyceum21-edu.test")


def test_reimport_updates_in_place(db, corpus_roster):
    save_roster(corpus_roster)
    first = corpus_roster.students[0]
    moved = dataclasses.replace(first, class_name="5В")
    smaller = dataclasses.replace(
        corpus_roster, students=(moved, *corpus_roster.students[2:]),
    )
    ids_before = {p.email: p.id for p in Person.select()}
    summary = save_roster(smaller)
    assert summary.added == 0 and summary.updated == 1 and summary.deactivated == 1
    loaded = load_roster()
    assert loaded.student(first.email).class_name == "5В"
    assert loaded.student(corpus_roster.students[1].email) is None  # inactive, not deleted
    assert {p.email: p.id for p in Person.select()} == ids_before


def test_a_too_old_sqlite_is_refused_with_a_clear_error(tmp_path, monkeypatch):
    import sqlite3

    from helpdesk.store import db as db_module

    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.34.1")
    with pytest.raises(db_module.DatabaseError, match=r"SQLite 3\.34\.1 is too old.*3\.35"):
        db_module.open_database(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    assert not (tmp_path / "old.sqlite3").exists()  # refused before anything was created
