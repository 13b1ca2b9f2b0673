"""Helpers for the daemon, ingest-fault and outbox tests.

These tests stop and restart the mail servers, so they use a private mail stack
(not the session's). The daemon runs either in a thread of the test process
(fast, logs captured by ``caplog``) or as a real process
(``python -m helpdesk --config ... run``) when a signal has to be sent to it.
"""
from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.conftest import EXTRA_USERS, ROSTER, SCHOOL, letter, roster_addresses, write_config

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def private_stack(roster) -> Iterator:
    """A mail stack of our own with every roster address as a user."""
    from helpdesk.testing.mailstack import MailStack

    users = {addr: "secret" for addr in roster_addresses(roster) | set(EXTRA_USERS)}
    stack = MailStack.start(users=users)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's line per command
    try:
        yield stack
    finally:
        stack.stop()


def make_config(directory: Path, stack, db_url: str | None = None, **extra: str) -> Path:
    """A config for ``stack`` and a fresh database with the corpus roster imported."""
    from helpdesk.cli import main

    db_url = db_url or f"sqlite:///{directory / 'helpdesk.sqlite3'}"
    path = write_config(directory, stack, db_url)
    path.write_text(with_settings(path.read_text(encoding="utf-8"), extra), encoding="utf-8")
    assert main(["--config", str(path), "roster", "import", str(ROSTER)]) == 0
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    return path


def with_settings(text: str, settings: dict[str, str]) -> str:
    """The config text with ``section__key=value`` settings replaced or added."""
    lines = text.splitlines()
    for name, value in settings.items():
        section, _, key = name.partition("__")
        header = lines.index(f"[{section}]") if f"[{section}]" in lines else None
        if header is None:
            lines += ["", f"[{section}]", f"{key} = {value}"]
            continue
        end = next((i for i in range(header + 1, len(lines)) if lines[i].startswith("[")), len(lines))
        found = [i for i in range(header + 1, end) if lines[i].split("=")[0].strip() == key]
        if found:
            lines[found[0]] = f"{key} = {value}"
        else:
            lines.insert(header + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def mail(corpus_roster):
    """A mail stack of the test module's own (these tests stop and restart servers)."""
    with private_stack(corpus_roster) as stack:
        yield stack


@pytest.fixture
def fresh(mail):
    mail.clear()
    return mail


def question(student, n: int = 0) -> EmailMessage:
    """A plain appeal from a roster student."""
    return letter(student.email, f"вопрос по алгебре {n}",
                  f"Здравствуйте! Не понимаю задачу номер {n} по алгебре, помогите пожалуйста.\n"
                  f"{student.full_name}, {student.class_name}")


def parse(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05,
               what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g} s")
        time.sleep(interval)


def _header_values(stack, addresses, field: str):
    """(address, value of ``field``) for every letter in the INBOXes of ``addresses``."""
    for address in addresses:
        client = stack.imap(address)
        try:
            client.select_folder("INBOX", readonly=True)
            uids = client.search("ALL")
            if not uids:
                continue
            key = f"BODY[HEADER.FIELDS ({field})]".encode()
            for item in client.fetch(uids, [f"BODY.PEEK[HEADER.FIELDS ({field})]"]).values():
                yield address, item[key].decode(errors="replace").partition(":")[2].strip()
        finally:
            client.logout()


def replies_by_original(stack, addresses) -> Counter:
    """How many letters each address received per In-Reply-To (original Message-ID)."""
    return Counter((address, value) for address, value in _header_values(stack, addresses, "IN-REPLY-TO")
                   if value)


def message_ids_received(stack, addresses) -> Counter:
    """Message-ID -> how many copies arrived, over the INBOXes of ``addresses``."""
    return Counter(value for _address, value in _header_values(stack, addresses, "MESSAGE-ID"))


# --- the daemon in a thread -----------------------------------------------------------


class DaemonThread:
    """``Daemon.run_forever`` in a thread of the test process (no signals there:
    ``stop()`` asks it to stop the way SIGTERM does)."""

    def __init__(self, config_path: Path) -> None:
        from helpdesk.config import load_config
        from helpdesk.daemon import Daemon

        self.daemon = Daemon(load_config(config_path))
        self.thread = threading.Thread(target=self._run, name="helpdesk-daemon", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.daemon.run_forever()
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def start(self) -> "DaemonThread":
        self.thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.daemon.request_stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the daemon did not stop"
        if self.error is not None:
            raise self.error

    def __enter__(self) -> "DaemonThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- the daemon as a process --------------------------------------------------------------


def spawn_daemon(config_path: Path, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "helpdesk", "--config", str(config_path), "run"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=str(config_path.parent),
        )


def wait_for_log(log_path: Path, text: str, timeout: float, start: int = 0) -> None:
    wait_until(lambda: text in log_path.read_text(errors="replace")[start:], timeout,
               what=f"log line {text!r}")


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(10)


# --- reading the database of a daemon running elsewhere ---------------------------------------


def sqlite_counts(db_path: Path, sql: str) -> list[tuple]:
    """Run a read-only query on the SQLite file (its own connection, not the
    models' one, so a daemon thread or process is not disturbed)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()
