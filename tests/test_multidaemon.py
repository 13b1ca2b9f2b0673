"""Several daemons on one database: the claims, and two `helpdesk run` daemons on
one PostgreSQL database against the real mail stack.

The claims are first tested in one process with two database connections (two
threads, started together at a barrier). Then the two daemons are real processes with the same config: they share the outbox (letters
claimed FOR UPDATE SKIP LOCKED), the stored letters (each claimed by an advisory
lock while it is processed) and the SLA sweep; one of them ingests the mailbox
(an advisory lock per mailbox) while the other stands by for that stage only.
The letters that reach the real mailboxes are counted over IMAP.

The PostgreSQL tests are skipped when 127.0.0.1:5432 cannot be reached.
"""
from __future__ import annotations

import signal
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import SCHOOL, fresh_postgres, letter, postgres_reachable
from tests.daemon_kit import kill, make_config, message_ids_received, question, spawn_daemon, wait_for_log, \
    wait_until

needs_postgres = pytest.mark.skipif(not postgres_reachable(),
                                    reason="PostgreSQL not reachable at 127.0.0.1:5432")


@pytest.fixture
def pg_url():
    yield from fresh_postgres()


def query(url: str, sql: str) -> list[tuple]:
    """A read-only query on its own connection (the daemons are not disturbed)."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        conn.close()


def scalar(url: str, sql: str):
    return query(url, sql)[0][0]


def deliver(stack, students, first: int, count: int, followups: int = 0) -> tuple[list[str], list[str]]:
    """``count`` appeals from roster students through the SMTP front, every
    ``followups``-th one followed at once by a follow-up of the same student.
    Returns the Message-IDs of the appeals and of the follow-ups."""
    items, appeals, more = [], [], []
    for n in range(first, first + count):
        student = students[n % len(students)]
        msg = question(student, n)
        items.append((msg, student.email, [SCHOOL]))
        appeals.append(msg["Message-ID"])
        if followups and n % followups == 0:
            extra = letter(student.email, "Re: " + msg["Subject"], "Дополнение: это задача из учебника.",
                           In_Reply_To=msg["Message-ID"], References=msg["Message-ID"])
            items.append((extra, student.email, [SCHOOL]))
            more.append(extra["Message-ID"])
    stack.send_many(items)
    return appeals, more


def config_for(tmp_path: Path, stack, url: str) -> Path:
    # Many appeals per student within minutes: the per-hour acknowledgement limit
    # (a loop guard) is off, so that every appeal gets its acknowledgement.
    return make_config(tmp_path, stack, url, outbox__ack_limit_per_hour="0", daemon__interval="0.3")


def start_two(config: Path, tmp_path: Path):
    logs = [tmp_path / "daemon-a.log", tmp_path / "daemon-b.log"]
    procs = [spawn_daemon(config, log) for log in logs]
    for log in logs:
        wait_for_log(log, "helpdesk running", 60)  # SIGTERM is handled from here on
    return procs, logs


def drained(url: str, letters: int) -> bool:
    return bool(scalar(url, f"""
        select (select count(*) from letter) = {letters}
           and (select count(*) from letter where status = 'new') = 0
           and (select count(*) from outgoing where status in ('queued', 'sending')) = 0"""))


def stop(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(20) == 0


def check_processed_once(url: str, appeals: list[str], followups: list[str] = ()) -> None:
    """Every letter stored and processed once: an appeal of its own for each appeal,
    the appeal it follows for each follow-up, one acknowledgement per appeal."""
    rows = {m: (kind, appeal) for m, kind, appeal in
            query(url, "select message_id, kind, appeal_id from letter")}
    assert len(rows) == len(appeals) + len(followups) and set(rows) == {*appeals, *followups}
    assert all(rows[m][0] == "appeal" for m in appeals)
    assert len({rows[m][1] for m in appeals}) == len(appeals)
    assert scalar(url, "select count(*) from appeal") == len(appeals)
    # A follow-up processed before its appeal was stored would have become an appeal.
    originals = dict(query(url, "select f.message_id, a.message_id from letter f join letter a "
                                "on a.appeal_id = f.appeal_id and a.kind = 'appeal' where f.kind = 'followup'"))
    assert sorted(originals) == sorted(followups)
    acks = Counter(letter for (letter,) in query(url, "select letter_id from outgoing where kind = 'ack'"))
    assert len(acks) == len(appeals) and set(acks.values()) == {1}, "an acknowledgement queued twice"
    per_letter = Counter(query(url, "select letter_id, kind from outgoing"))
    assert set(per_letter.values()) == {1}, "a letter's reply queued twice"
    assert scalar(url, "select count(*) from event where kind = 'duplicate'") == 0


def senders(url: str) -> Counter:
    """Letters sent per process (the pid in ``claimed_by``, "host/pid/token")."""
    return Counter(owner.split("/")[1] for (owner,) in
                   query(url, "select claimed_by from outgoing where status = 'sent'"))


# --- who may requeue a letter left "sending" (no database) ----------------------------------

NOW = datetime(2026, 11, 30, 9, 0)
ME = "host-a/4242/aaaa"


@pytest.mark.parametrize("owner, lease, dead, expected", [
    (None, None, set(), True),  # a row from before claims existed
    (ME, NOW + timedelta(minutes=4), set(), False),  # this process's own, within the lease
    (ME, NOW - timedelta(seconds=1), set(), True),  # ... left behind (the lease ran out)
    ("host-b/4242/bbbb", NOW + timedelta(minutes=4), set(), False),  # another host, within its lease
    ("host-b/4242/bbbb", NOW - timedelta(seconds=1), set(), True),  # ... whose lease ran out
    ("host-a/777/cccc", NOW + timedelta(minutes=4), set(), False),  # a live process of this host
    ("host-a/777/cccc", NOW + timedelta(minutes=4), {777}, True),  # ... that is gone
    ("host-a/4242/dddd", NOW + timedelta(minutes=4), set(), True),  # an earlier run with our pid
])
def test_which_letters_in_flight_are_abandoned(owner, lease, dead, expected):
    from helpdesk.outbox.sender import abandoned

    assert abandoned(owner, lease, NOW, me=ME, pid_alive=lambda pid: pid not in dead) is expected


def test_lock_keys_are_stable_signed_64_bit():
    from helpdesk.store.db import lock_key

    key = lock_key("helpdesk/mailbox/school@imap.example:993/INBOX")
    assert key == lock_key("helpdesk/mailbox/school@imap.example:993/INBOX")
    assert -2**63 <= key < 2**63 and key != lock_key("helpdesk/mailbox/school@imap.example:993/Archive")


def old_database(path: Path) -> None:
    """A SQLite database as before the claims: no outgoing.claimed_by, lease_until."""
    import sqlite3

    from helpdesk.store.db import open_database
    from helpdesk.store.models import database

    open_database(f"sqlite:///{path}")
    database.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE outgoing DROP COLUMN claimed_by")
    conn.execute("ALTER TABLE outgoing DROP COLUMN lease_until")
    conn.commit()
    conn.close()


def test_the_claim_columns_are_added_to_an_older_database(tmp_path):
    from peewee import SqliteDatabase

    from helpdesk.store.db import add_claim_columns

    old_database(tmp_path / "old.sqlite3")
    db = SqliteDatabase(str(tmp_path / "old.sqlite3"))
    add_claim_columns(db)
    add_claim_columns(db)  # idempotent
    assert {"claimed_by", "lease_until"} <= {c.name for c in db.get_columns("outgoing")}
    db.close()


def test_an_older_database_is_upgraded_in_place(tmp_path):
    import sqlite3

    from helpdesk.store.db import MIGRATIONS, SCHEMA_VERSION, open_database, schema_version
    from helpdesk.store.models import database

    found = [i for i, step in enumerate(MIGRATIONS) if step.__module__.endswith("_claims")]
    if not found:
        pytest.skip("the claims migration (helpdesk/store/migrations/m000N_claims.py) is not installed")
    path = tmp_path / "old.sqlite3"
    old_database(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(found[0]),))
    conn.commit()
    conn.close()
    db = open_database(f"sqlite:///{path}")
    try:
        assert schema_version(db) == SCHEMA_VERSION
        assert {"claimed_by", "lease_until"} <= {c.name for c in db.get_columns("outgoing")}
    finally:
        database.close()


# --- two connections at once, in one process ------------------------------------------------


def together(*jobs):
    """Run the jobs in threads (each with its own database connection), started at
    one barrier; return their results in order, or raise the first error."""
    from helpdesk.store.models import database

    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i, job):
        try:
            barrier.wait()
            results[i] = job()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


def queue_letters(count: int) -> None:
    from helpdesk.store.models import Outgoing

    for n in range(count):
        Outgoing.create(kind="ack", mail_from=SCHOOL, recipients='["a@mail.test"]',
                        message_id=f"<claim-{n}@test>", raw=b"Subject: x\r\n\r\nx\r\n")


def test_two_connections_claim_different_letters(db):
    from helpdesk.outbox.sender import claim, owner
    from helpdesk.store.models import Outgoing

    queue_letters(230)

    def claim_all():
        taken = []
        while batch := claim(limit=20):
            taken += [row.id for row in batch]
        return taken

    first, second = together(claim_all, claim_all)
    assert not set(first) & set(second)
    assert len(first) + len(second) == 230
    assert {(r.status, r.claimed_by) for r in Outgoing.select()} == {("sending", owner())}
    assert all(r.lease_until > r.created_at for r in Outgoing.select())


def test_only_letters_of_a_gone_process_are_requeued(db):
    import socket
    import subprocess
    import sys

    from helpdesk.outbox.sender import recover_in_flight
    from helpdesk.store.models import Event, Outgoing, utcnow

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lease = utcnow() + timedelta(minutes=5)
    queue_letters(5)
    rows = list(Outgoing.select().order_by(Outgoing.id))
    dead = f"{socket.gethostname()}/{gone.pid}/dead"
    for row in rows[:3]:  # a batch the dead process had claimed; the first was in flight
        Outgoing.update(status="sending", claimed_by=dead, lease_until=lease).where(
            Outgoing.id == row.id).execute()
    for row in rows[3:]:  # a live daemon on another host, within its lease
        Outgoing.update(status="sending", claimed_by="elsewhere/1/live", lease_until=lease).where(
            Outgoing.id == row.id).execute()

    assert recover_in_flight() == 1
    assert [Outgoing.get_by_id(r.id).status for r in rows] == ["queued"] * 3 + ["sending"] * 2
    assert [e.message for e in Event.select().where(Event.kind == "send_resumed")] == [
        "Отправка письма ack для a@mail.test была прервана сбоем и повторена; адресат может "
        "получить его дважды (с тем же Message-ID)."]
    assert recover_in_flight(now=lease + timedelta(seconds=1)) == 1  # the other's lease ran out
    assert Outgoing.select().where(Outgoing.status == "sending").count() == 0


def test_a_renewal_keeps_only_the_letters_still_claimed(db):
    from helpdesk.outbox.sender import claim, release, renew
    from helpdesk.store.models import Outgoing

    queue_letters(6)
    batch = claim(limit=6)
    before = {r.id: r.lease_until for r in Outgoing.select()}
    # This process was stalled beyond its lease: another daemon requeued two letters
    # and took one of them.
    taken, requeued = batch[1].id, batch[4].id
    Outgoing.update(status="queued", claimed_by=None, lease_until=None).where(
        Outgoing.id.in_([taken, requeued])).execute()
    Outgoing.update(status="sending", claimed_by="elsewhere/1/x").where(Outgoing.id == taken).execute()

    kept = renew(batch, lease=600)
    assert [r.id for r in kept] == [r.id for r in batch if r.id not in (taken, requeued)]
    assert all(Outgoing.get_by_id(r.id).lease_until > before[r.id] for r in kept)
    release(batch)  # gives back only what is still ours
    assert Outgoing.get_by_id(taken).claimed_by == "elsewhere/1/x"
    assert Outgoing.select().where(Outgoing.status == "queued").count() == 5


@needs_postgres
def test_a_letter_claimed_for_processing_is_skipped_by_the_other(pg_url):
    from helpdesk.store.db import letter_claim, open_database
    from helpdesk.store.models import Letter

    open_database(pg_url)

    def stored(uid: int, sender: str) -> int:
        return Letter.create(mailbox="m", content_hash=str(uid), raw=b"x", uid=uid, uidvalidity=1,
                             sender=sender).id

    appeal, followup = stored(1, "pupil@mail.test"), stored(2, "Pupil@mail.test")
    other = stored(3, "someone@mail.test")
    held, checked = threading.Event(), threading.Event()

    def first():
        with letter_claim(appeal) as mine:
            held.set()
            checked.wait(30)
            Letter.update(status="processed").where(Letter.id == appeal).execute()
            return mine

    def second():
        held.wait(30)
        found = []
        for letter_id in (appeal, followup, other):  # the same letter, the same sender, another
            with letter_claim(letter_id) as mine:
                found.append(mine)
        checked.set()
        return found

    assert together(first, second) == [True, [False, False, True]]
    with letter_claim(appeal) as mine:  # free again, but no longer new
        assert mine is False
    with letter_claim(followup) as mine:  # the sender's earlier letter is done: its turn
        assert mine is True


@needs_postgres
def test_the_ingest_lock_is_kept_and_lost_with_the_connection(pg_url):
    from helpdesk.store.db import holds_session_lock, keep_session_lock, open_database
    from helpdesk.store.models import database

    name = "helpdesk/mailbox/school@imap.example:993/INBOX"
    open_database(pg_url)
    assert keep_session_lock(name) and keep_session_lock(name) and holds_session_lock(name)
    assert together(lambda: keep_session_lock(name)) == [False]  # another connection stands by
    database.close()  # as after a database error: the next query reconnects
    assert not holds_session_lock(name)
    other_took_it = threading.Event()
    release = threading.Event()

    def other():
        assert keep_session_lock(name)
        other_took_it.set()
        release.wait(30)

    thread = threading.Thread(target=lambda: together(other))
    thread.start()
    try:
        other_took_it.wait(30)
        assert keep_session_lock(name) is False
    finally:
        release.set()
        thread.join(30)
    assert keep_session_lock(name)  # the other connection ended: free again


@needs_postgres
def test_two_digests_at_once_queue_one(stack, tmp_path, pg_url):
    from helpdesk import app
    from helpdesk.config import load_config
    from helpdesk.digest.send import send_digest
    from helpdesk.store.models import Outgoing

    config = load_config(make_config(tmp_path, stack, pg_url, digest__enabled="true"))
    app.open_db(config)
    monday = datetime(2026, 11, 30, 9, 30, tzinfo=timezone.utc)  # after 08:00 in Moscow
    results = together(lambda: send_digest(config, monday), lambda: send_digest(config, monday))
    assert sum(r is not None for r in results) == 1
    assert Outgoing.select().where(Outgoing.kind == "digest").count() == 1


@needs_postgres
def test_two_sweeps_at_once_fire_each_step_once(stack, tmp_path, pg_url, corpus_roster):
    from helpdesk import app
    from helpdesk.cli import main
    from helpdesk.config import load_config
    from helpdesk.sla.models import FIRED, SlaStep
    from helpdesk.sla.sweep import SWEEP_LOCK, sweep
    from helpdesk.store.db import try_transaction_lock
    from helpdesk.store.models import Event, Outgoing, database

    path = config_for(tmp_path, stack, pg_url)
    deliver(stack, list(corpus_roster.students), 0, 12)
    assert main(["--config", str(path), "run", "--once", "--only", "ingest"]) == 0
    config = load_config(path)
    app.open_db(config)
    later = datetime.now(timezone.utc) + timedelta(days=20)  # every step is due
    # While another connection sweeps (holds the sweep lock), a sweep leaves it the work.
    holding, done = threading.Event(), threading.Event()

    def hold_the_lock():
        try:
            with database.atomic():
                assert try_transaction_lock(SWEEP_LOCK)
                holding.set()
                done.wait(30)
        finally:
            database.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        holding.wait(30)
        assert sweep(config, later).idle
    finally:
        done.set()
        holder.join(30)
    results = together(lambda: sweep(config, later), lambda: sweep(config, later))
    fired = SlaStep.select().where(SlaStep.state == FIRED).count()
    assert fired and sum(len(r.fired) for r in results) == fired
    events = Counter(e.data for e in Event.select().where(Event.kind.in_(["sla_reminder", "sla_escalation"])))
    assert len(events) == fired and set(events.values()) == {1}
    assert (Outgoing.select().where(Outgoing.kind.in_(["reminder", "escalation"])).count()
            == sum(len(r.letters) for r in results))
    assert not sweep(config, later).fired  # nothing left to fire


# --- two daemon processes -----------------------------------------------------------------------


@needs_postgres
def test_two_daemons_drain_1000_letters_without_a_double_send(stack, tmp_path, pg_url,
                                                              corpus_roster):
    students = list(corpus_roster.students)
    config = config_for(tmp_path, stack, pg_url)
    ids, _ = deliver(stack, students, 0, 1000)
    procs, logs = start_two(config, tmp_path)
    try:
        wait_until(lambda: drained(pg_url, 1000), 120, interval=0.5, what="1,000 letters drained")
        stop(procs)
    finally:
        for proc in procs:
            kill(proc)

    check_processed_once(pg_url, ids)
    outgoing = scalar(pg_url, "select count(*) from outgoing")
    assert scalar(pg_url, "select count(*) from outgoing where status = 'sent'") == outgoing
    # Each letter sent reached its mailboxes exactly once (counted by Message-ID over IMAP).
    addresses = {s.email for s in students} | {s.email for s in corpus_roster.staff}
    received = message_ids_received(stack, addresses)
    assert len(received) == outgoing and set(received.values()) == {1}
    assert scalar(pg_url, "select count(*) from event where kind = 'send_resumed'") == 0
    # Both did work: each sent letters, and exactly one of them ingested the mailbox.
    by_pid = senders(pg_url)
    assert set(by_pid) == {str(p.pid) for p in procs}, by_pid
    standby = [log for log in logs if "stands by" in log.read_text()]
    assert len(standby) == 1


@needs_postgres
def test_the_other_daemon_finishes_after_one_is_killed(stack, tmp_path, pg_url, corpus_roster):
    students = list(corpus_roster.students)
    config = config_for(tmp_path, stack, pg_url)
    # Some appeals followed at once by a follow-up: the two daemons must still take
    # the follow-up after its appeal.
    first, followups = deliver(stack, students, 0, 250, followups=5)
    procs, logs = start_two(config, tmp_path)
    try:
        # Kill the daemon that ingests the mailbox while both are sending.
        wait_until(lambda: len(senders(pg_url)) == 2, 60, interval=0.05, what="both daemons sending")
        ingester = next(i for i, log in enumerate(logs) if "stands by" not in log.read_text())
        kill(procs[ingester], signal.SIGKILL)
        survivor = procs[1 - ingester]
        # Letters delivered after the kill: the survivor takes the mailbox over.
        more, _ = deliver(stack, students, 250, 50)
        wait_until(lambda: drained(pg_url, 350), 90, interval=0.5, what="the survivor drained it all")
        assert "this process ingests it now" in logs[1 - ingester].read_text()
        stop([survivor])
    finally:
        for proc in procs:
            kill(proc)

    check_processed_once(pg_url, first + more, followups)
    outgoing = scalar(pg_url, "select count(*) from outgoing")
    assert scalar(pg_url, "select count(*) from outgoing where status = 'sent'") == outgoing
    addresses = {s.email for s in students} | {s.email for s in corpus_roster.staff}
    received = message_ids_received(stack, addresses)
    assert len(received) == outgoing
    # Only a letter the killed daemon had in flight may arrive twice (it keeps its
    # Message-ID, and the event log says so); the survivor never sent one twice.
    resumed = scalar(pg_url, "select count(*) from event where kind = 'send_resumed'")
    extra = sum(n - 1 for n in received.values())
    assert resumed <= 1 and extra <= resumed, (resumed, received.most_common(3))


def test_a_daemon_that_cannot_use_imap_leaves_the_mailbox_to_another(stack, tmp_path, pg_url,
                                                                        corpus_roster):
    from tests.daemon_kit import with_settings

    good = config_for(tmp_path, stack, pg_url)
    (tmp_path / "a").mkdir()
    cut_off = tmp_path / "a" / "config.toml"  # the same mailbox, which this daemon cannot log in to
    cut_off.write_text(with_settings(good.read_text(encoding="utf-8"), {"imap__password": '"wrong"'}),
                       encoding="utf-8")
    logs = [tmp_path / "cut-off.log", tmp_path / "healthy.log"]
    procs = [spawn_daemon(cut_off, logs[0])]
    try:
        wait_for_log(logs[0], "helpdesk running", 60)
        wait_until(lambda: scalar(pg_url, "select count(*) from pg_locks where locktype = 'advisory'") > 0,
                   30, what="the cut-off daemon holding the mailbox lock")
        procs.append(spawn_daemon(good, logs[1]))
        wait_for_log(logs[1], "stands by", 60)
        appeals, _ = deliver(stack, list(corpus_roster.students), 0, 3)
        wait_for_log(logs[0], "left to another daemon", 60)
        wait_until(lambda: drained(pg_url, 3), 60, interval=0.3, what="the healthy daemon ingested")
        assert "this process ingests it now" in logs[1].read_text()
        stop(procs)
    finally:
        for proc in procs:
            kill(proc)
    check_processed_once(pg_url, appeals)
