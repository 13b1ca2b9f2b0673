"""Shared fixtures: databases (SQLite and, where reachable, PostgreSQL) and the
real local mail stack (Dovecot + an SMTP front that delivers into it)."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "letters-dev"
ROSTER = CORPUS / "roster"
SCHOOL = "lyceum21@lyceum21-edu.test"
PG_HOST, PG_PORT = "127.0.0.1", 5432


def letter(sender: str, subject: str, body: str, **headers: str):
    """A letter to the school as a mail client writes it (headers: Auto_Submitted=...)."""
    from email.message import EmailMessage
    from email.utils import make_msgid

    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SCHOOL
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="mail.test")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def postgres_reachable() -> bool:
    try:
        import psycopg2
    except ImportError:
        return False
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
        psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="test").close()
        return True
    except Exception:
        return False


_PG = postgres_reachable()


def pytest_report_header(config):
    if _PG:
        return "PostgreSQL: reachable at 127.0.0.1:5432, database tests run on SQLite and PostgreSQL"
    return "PostgreSQL: NOT reachable at 127.0.0.1:5432, PostgreSQL variants are SKIPPED"


def _pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="test")
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty database URL: SQLite always, PostgreSQL where reachable."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}"
        return
    yield from fresh_postgres()


def fresh_postgres():
    """A fresh PostgreSQL database's URL (skips where PostgreSQL is not reachable),
    dropped afterwards; for fixtures."""
    if not _PG:
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    name = f"helpdesk_test_{secrets.token_hex(4)}"
    _pg_admin(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    from helpdesk.store.models import database

    if database.obj is not None:
        database.close()
    _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db(db_url):
    from helpdesk.store.db import open_database
    from helpdesk.store.models import database

    handle = open_database(db_url)
    yield handle
    database.close()


@pytest.fixture(scope="session")
def corpus_roster():
    from helpdesk.roster.reader import read_roster

    return read_roster(ROSTER)


def offline_config_text(db_url: str) -> str:
    """A config for tests that need the database but no mail server."""
    return (f'[school]\nname = "МАОУ «Лицей №21»"\naddress = "{SCHOOL}"\ntimezone = "Europe/Moscow"\n'
            '[imap]\nhost = "127.0.0.1"\nsecurity = "none"\n'
            '[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\n'
            f'[database]\nurl = "{db_url}"\n'
            '[hours]\nstart = "08:00"\nend = "17:00"\n')


@pytest.fixture
def config(tmp_path, db_url):
    """A loaded config over the test's database (no mail server needed)."""
    from helpdesk.config import load_config

    path = tmp_path / "config.toml"
    path.write_text(offline_config_text(db_url), encoding="utf-8")
    return load_config(path)


@pytest.fixture
def school(db, corpus_roster, config):
    """``config`` with the corpus roster imported into its database."""
    from helpdesk.roster.store import save_roster

    save_roster(corpus_roster)
    return config


# --- the real mail stack ---------------------------------------------------------------


def roster_addresses(roster) -> set[str]:
    found = {SCHOOL}
    found |= {s.email for s in roster.staff}
    for student in roster.students:
        found.add(student.email)
        found.update(student.parent_emails)
    return found


EXTRA_USERS = ("stranger@mail.test", "grandpa.sitnikov@mail.test")


@pytest.fixture(scope="session")
def mailstack(corpus_roster):
    if shutil.which("dovecot") is None and not os.path.exists("/usr/sbin/dovecot"):
        pytest.skip("dovecot not installed (apt-get install dovecot-imapd dovecot-lmtpd)")
    from helpdesk.testing.mailstack import MailStack

    users = {addr: "secret" for addr in roster_addresses(corpus_roster) | set(EXTRA_USERS)}
    stack = MailStack.start(users=users)
    yield stack
    stack.stop()


@pytest.fixture
def stack(mailstack):
    """The session's mail stack with every mailbox emptied."""
    mailstack.clear()
    return mailstack


def write_config(directory: Path, stack, db_url: str, **extra: str) -> Path:
    path = directory / "config.toml"
    sections = {
        "school": f'name = "МАОУ «Лицей №21»"\naddress = "{SCHOOL}"\ntimezone = "Europe/Moscow"',
        "imap": f'host = "127.0.0.1"\nport = {stack.imap_port}\nsecurity = "none"\n'
                f'username = "{SCHOOL}"\npassword = "secret"\nfolder = "INBOX"\npoll_interval = 5',
        "smtp": f'host = "127.0.0.1"\nport = {stack.smtp_port}\nsecurity = "none"',
        "database": f'url = "{db_url}"',
        "hours": 'start = "08:00"\nend = "17:00"',
        # The daily digest would otherwise go out in any test run after 08:00 on a
        # working day; its own tests switch it on.
        "digest": "enabled = false",
    }
    for key, value in extra.items():
        section, _, name = key.partition("__")
        lines = [l for l in sections.get(section, "").splitlines() if not l.startswith(f"{name} =")]
        sections[section] = "\n".join([*lines, f"{name} = {value}"])
    path.write_text("\n\n".join(f"[{k}]\n{v}" for k, v in sections.items()) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def helpdesk_config(tmp_path, stack, db_url):
    """A config for the real stack and a fresh database with the corpus roster imported."""
    from helpdesk.cli import main

    path = write_config(tmp_path, stack, db_url)
    assert main(["--config", str(path), "roster", "import", str(ROSTER)]) == 0
    yield path
    from helpdesk.store.models import database

    database.close()
