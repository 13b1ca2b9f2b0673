"""What every benchmark needs: a real mail stack, a config, a database, and
subprocesses timed from start to exit with their peak memory."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.letters import ROSTER, SCHOOL, Letter  # noqa: E402
from helpdesk.testing.mailstack import MailStack  # noqa: E402

PASSWORD = "bench"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Finished:
    seconds: float  # wall time of the command from start to exit
    max_rss_mb: float  # its peak resident set size (ru_maxrss), in MiB
    stdout: str
    stderr: str


PEAK_RSS = str(Path(__file__).with_name("peak_rss.py"))


def run_process(argv: list[str], *, cwd: Path | None = None, timeout: float = 900) -> Finished:
    """Run ``argv`` to its end under benchmarks/peak_rss.py, which times it and reads
    its own peak RSS (see there why the peak cannot be read from here)."""
    with tempfile.TemporaryDirectory(prefix="hd-run-") as tmp:
        report = Path(tmp) / "report.json"
        # A session of its own: on a timeout the wrapper and the command go together.
        proc = subprocess.Popen([sys.executable, PEAK_RSS, str(report), *argv], cwd=cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"{' '.join(argv)} did not finish within {timeout:g} s") from exc
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        if proc.returncode != 0 or not report.exists():
            raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{stderr[-3000:]}")
        measured = json.loads(report.read_text())
    return Finished(measured["seconds"], measured["max_rss_kb"] / 1024, stdout, stderr)


def helpdesk_argv(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "helpdesk", "--config", str(config), *args]


def roster_addresses() -> set[str]:
    from helpdesk.roster.reader import read_roster

    roster = read_roster(ROSTER)
    found = {SCHOOL}
    found |= {p.email for p in roster.staff}
    for student in roster.students:
        found.add(student.email)
        found.update(student.parent_emails)
    return {a.lower() for a in found}


@contextmanager
def mail_stack(extra_users: set[str] = frozenset()) -> Iterator[MailStack]:
    """A fresh stack on 127.0.0.1 with the school, every roster address and
    ``extra_users`` as mailboxes; stopped (and its mail removed) afterwards."""
    import logging

    users = {a: PASSWORD for a in roster_addresses() | {u.lower() for u in extra_users}}
    stack = MailStack.start(users=users)
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        yield stack
    finally:
        stack.stop()


def write_config(directory: Path, stack: MailStack, db_url: str, *, idle: bool = True) -> Path:
    """A helpdesk config for ``stack``: defaults but for what a benchmark must fix.

    The acknowledgement limit is off (a backlog has many letters per sender within a
    minute) and the daily digest is off (it would add letters after 08:00)."""
    path = directory / "config.toml"
    path.write_text(
        f'[school]\nname = "МАОУ «Лицей №21»"\naddress = "{SCHOOL}"\ntimezone = "Europe/Moscow"\n\n'
        f'[imap]\nhost = "127.0.0.1"\nport = {stack.imap_port}\nsecurity = "none"\n'
        f'username = "{SCHOOL}"\npassword = "{PASSWORD}"\nidle = {"true" if idle else "false"}\n\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {stack.smtp_port}\nsecurity = "none"\n'
        f'username = ""\n\n'
        f'[database]\nurl = "{db_url}"\n\n'
        '[hours]\nstart = "08:00"\nend = "17:00"\n\n'
        '[outbox]\nack_limit_per_hour = 0\n\n[digest]\nenabled = false\n',
        encoding="utf-8",
    )
    run_process(helpdesk_argv(path, "roster", "import", str(ROSTER)))
    return path


def append_letters(stack: MailStack, letters: list[Letter], folder: str = "INBOX",
                   batch: int = 200) -> float:
    """APPEND the letters to the school's folder over one IMAP connection
    (MULTIAPPEND, ``batch`` letters per command); seconds taken."""
    started = time.perf_counter()
    client = stack.imap(SCHOOL)
    try:
        for i in range(0, len(letters), batch):
            client.multiappend(folder, [l.raw for l in letters[i:i + batch]])
    finally:
        client.logout()
    return time.perf_counter() - started


def count_letters(stack: MailStack, address: str, folder: str = "INBOX") -> int:
    client = stack.imap(address)
    try:
        return client.select_folder(folder, readonly=True)[b"EXISTS"]
    finally:
        client.logout()


# --- PostgreSQL ----------------------------------------------------------------------


def postgres_reachable() -> str | None:
    """None when PostgreSQL at 127.0.0.1:5432 takes connections, else why not."""
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 not installed (pip install 'helpdesk[postgres]')"
    try:
        psycopg2.connect(PG_ADMIN, connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001 - any failure means: skip PostgreSQL
        return f"PostgreSQL at 127.0.0.1:5432 unreachable ({str(exc).strip().splitlines()[0]})"
    return None


@contextmanager
def postgres_database() -> Iterator[str]:
    """A database of our own (helpdesk_bench_<random>), dropped afterwards; yields its URL."""
    import psycopg2

    name = f"helpdesk_bench_{secrets.token_hex(4)}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    try:
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()
