"""Ingestion that never loses or doubles a letter, with real faults: Dovecot and
the SMTP front stopped and started under a running daemon, the daemon killed
with SIGKILL in the middle of a 500-letter backlog, a UIDVALIDITY change and
re-delivered letters, and the mailbox kept tidy (nothing ever deleted)."""
from __future__ import annotations

import json
import logging
import os
import random
import signal
import time
from collections import Counter

import pytest

from helpdesk.cli import main
from helpdesk.ingest import runner as runner_module
from tests.conftest import SCHOOL
from tests.daemon_kit import (  # noqa: F401 - mail, fresh: fixtures
    fresh,
    mail,
    DaemonThread,
    kill,
    letter,
    make_config,
    message_ids_received,
    private_stack,
    question,
    replies_by_original,
    spawn_daemon,
    sqlite_counts,
    wait_for_log,
    wait_until,
)

pytestmark = pytest.mark.mailstack


def cli_json(config, *args: str, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["--config", str(config), *args, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def run_once(config) -> None:
    assert main(["--config", str(config), "run", "--once"]) == 0


def folder(stack, name: str, address: str = SCHOOL) -> list[bytes]:
    return stack.messages(address, name)


def warnings_about(caplog, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and words in r.getMessage()]


def broken_letter(n: int) -> bytes:
    """No sender at all (sent with a null envelope sender): it can only be quarantined."""
    return (f"To: {SCHOOL}\r\nSubject: =?utf-8?b?0YHQu9C+0LzQsNC90L4g?= {n}\r\n"
            f"Message-ID: <broken-{n}-{os.getpid()}-{time.time_ns()}@mail.test>\r\n\r\n"
            "\u0442\u0435\u043a\u0441\u0442 \u0431\u0435\u0437 \u043e\u0442\u043f\u0440\u0430\u0432\u0438\u0442\u0435\u043b\u044f\r\n"
            ).encode("utf-8")


# --- servers going away under a running daemon -------------------------------------------


def test_imap_server_restart_while_the_daemon_runs(fresh, tmp_path, corpus_roster, caplog):
    config = make_config(tmp_path, fresh, imap__poll_interval="60")
    lev, lera = corpus_roster.students[15], corpus_roster.students[7]
    with caplog.at_level(logging.INFO, logger="helpdesk"), DaemonThread(config) as running:
        fresh.send(question(lev, 1), lev.email, [SCHOOL])
        fresh.wait_for(lev.email, 1, timeout=5)
        fresh.stop_imap()
        wait_until(lambda: running.daemon.imap.down, 5, what="the outage noticed")
        time.sleep(1.0)  # a reconnect or two fails meanwhile
        fresh.start_imap()
        restarted = time.monotonic()
        fresh.send(question(lera, 2), lera.email, [SCHOOL])
        fresh.wait_for(lera.email, 1, timeout=20)
        recovered_in = time.monotonic() - restarted
    print(f"\nIMAP restart: letter delivered after the restart acknowledged in {recovered_in:.2f} s")
    assert recovered_in < 10
    down = warnings_about(caplog, "IMAP server 127.0.0.1")
    assert len(down) == 2, down  # one line when it went, one when it came back
    assert "unavailable" in down[0] and "available again after" in down[1]
    assert not any(r.exc_info for r in caplog.records), "no traceback for an outage"


def test_smtp_server_down_letters_wait_and_go_once(fresh, tmp_path, corpus_roster, caplog):
    from helpdesk.store.models import Outgoing

    config = make_config(tmp_path, fresh, imap__poll_interval="60")
    lev = corpus_roster.students[15]
    original = question(lev, 3)
    with caplog.at_level(logging.INFO, logger="helpdesk"), DaemonThread(config) as running:
        fresh.stop_smtp()
        try:
            with fresh.imap(SCHOOL) as client:  # SMTP is down: put the letter in directly
                client.append("INBOX", original.as_bytes())
            wait_until(lambda: running.daemon.smtp.down, 10, what="the SMTP outage noticed")
            time.sleep(1.0)
            rows = list(Outgoing.select())
            assert len(rows) == 2 and all(r.status == "queued" and r.attempts == 0 for r in rows)
        finally:
            fresh.start_smtp()
        restarted = time.monotonic()
        fresh.wait_for(lev.email, 1, timeout=20)
        recovered_in = time.monotonic() - restarted
    print(f"\nSMTP restart: queued acknowledgement delivered {recovered_in:.2f} s after the restart")
    assert replies_by_original(fresh, [lev.email])[(lev.email, original["Message-ID"])] == 1
    down = warnings_about(caplog, "SMTP server 127.0.0.1")
    assert len(down) == 2 and "available again after" in down[1], down
    assert not any(r.exc_info for r in caplog.records)


# --- SIGKILL in the middle of a backlog -------------------------------------------------------


def backlog(students) -> tuple[list, dict[str, list[str]]]:
    """500 letters: 240 appeals with 180 auto-replies and 30 letters without a
    sender among them, then 50 follow-ups to earlier appeals. Returns the SMTP
    items and the Message-IDs by kind."""
    items, ids = [], {"appeal": [], "followup": [], "auto_reply": [], "broken": []}
    appeals = []
    for n in range(240):
        s = students[n % len(students)]
        msg = question(s, n)
        items.append((msg, s.email, [SCHOOL]))
        ids["appeal"].append(msg["Message-ID"])
        appeals.append((s, msg))
        if n % 8 == 5:
            raw = broken_letter(n)
            items.append((raw, "", [SCHOOL]))
            ids["broken"].append(raw.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode())
        if n % 4 != 3:
            auto = letter(s.email, f"Автоответ: Re: вопрос {n}", "Я в отпуске до понедельника.",
                          Auto_Submitted="auto-replied")
            items.append((auto, s.email, [SCHOOL]))
            ids["auto_reply"].append(auto["Message-ID"])
    for s, original in appeals[:50]:
        more = letter(s.email, "Re: " + original["Subject"], "Дополнение: забыл написать, это задача из учебника.",
                      In_Reply_To=original["Message-ID"], References=original["Message-ID"])
        items.append((more, s.email, [SCHOOL]))
        ids["followup"].append(more["Message-ID"])
    return items, ids


def test_sigkill_during_a_500_letter_backlog(fresh, tmp_path, corpus_roster, capsys):
    seed = int(os.environ.get("HELPDESK_CRASH_SEED") or time.time_ns() % 100_000)
    rng = random.Random(seed)
    # Eight appeals per student within minutes: the per-hour acknowledgement limit (a loop
    # guard) is off here, so that every appeal must have its acknowledgement.
    config = make_config(tmp_path, fresh, outbox__ack_limit_per_hour="0")
    db = tmp_path / "helpdesk.sqlite3"
    students = list(corpus_roster.students)
    items, ids = backlog(students)
    assert len(items) == 500 and len(ids["auto_reply"]) == 180 and len(ids["broken"]) == 30
    began = time.monotonic()
    fresh.send_many(items)
    delivered_in = time.monotonic() - began

    log = tmp_path / "daemon.log"
    kills, progress = 0, []
    for _ in range(4):
        offset = len(log.read_text()) if log.exists() else 0
        proc = spawn_daemon(config, log)
        try:
            wait_for_log(log, "helpdesk running", 30, offset)
            time.sleep(rng.uniform(0.1, 3.5))
        finally:
            kill(proc, signal.SIGKILL)
        kills += 1
        progress.append(sqlite_counts(db, "select (select count(*) from letter), "
                                          "(select count(*) from letter where status != 'new'), "
                                          "(select count(*) from outgoing where status = 'sent')")[0])
    offset = len(log.read_text())
    proc = spawn_daemon(config, log)
    try:
        wait_for_log(log, "helpdesk running", 30, offset)  # SIGTERM is handled from here on
        wait_until(lambda: sqlite_counts(
            db, "select (select count(*) from letter) = 500 "
                "and (select count(*) from letter where status = 'new') = 0 "
                "and (select count(*) from outgoing where status in ('queued', 'sending')) = 0")[0][0],
            90, interval=0.3, what="the backlog drained")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        kill(proc)
    total = time.monotonic() - began

    letters = cli_json(config, "letters", "list", capsys=capsys)
    appeals = cli_json(config, "appeals", "list", capsys=capsys)
    status = Counter(l["status"] for l in letters)
    kinds = Counter(l["kind"] for l in letters)
    followups = kinds["followup"]
    # The count check: every letter in is exactly one of these.
    assert len(letters) == 500
    assert len(appeals) + followups + status["ignored"] + status["quarantined"] == 500, (status, kinds)
    by_id = {l["message_id"]: l for l in letters}
    assert all(by_id[m]["kind"] == "appeal" for m in ids["appeal"])
    assert all(by_id[m]["kind"] == "followup" for m in ids["followup"])
    assert all(by_id[m]["status"] == "ignored" for m in ids["auto_reply"])
    assert all(by_id[m]["status"] == "quarantined" and by_id[m]["reason"] for m in ids["broken"])
    # Every appeal exactly once.
    assert len(appeals) == 240 and len({by_id[m]["appeal"] for m in ids["appeal"]}) == 240
    # Acknowledgements: at least one per appeal, at most one extra per crash.
    acks = replies_by_original(fresh, {s.email for s in students})
    per_original = Counter({m: 0 for m in ids["appeal"]})
    for (_address, original), n in acks.items():
        per_original[original] += n
    assert all(per_original[m] >= 1 for m in ids["appeal"])
    extra_acks = sum(n - 1 for m, n in per_original.items() if m in set(ids["appeal"]))
    received = message_ids_received(fresh, {s.email for s in students}
                                    | {s.email for s in corpus_roster.staff})
    extra_letters = sum(n - 1 for n in received.values())
    duplicates_seen = sqlite_counts(db, "select count(*) from event where kind = 'duplicate'")[0][0]
    resumed = sqlite_counts(db, "select count(*) from event where kind = 'send_resumed'")[0][0]
    sent = sqlite_counts(db, "select count(*) from outgoing where status = 'sent'")[0][0]
    assert extra_acks <= extra_letters <= kills
    assert len(received) == sent == 240 * 2 + 50
    with capsys.disabled():
        print(f"\nSIGKILL test (seed {seed}): 500 letters delivered in {delivered_in:.1f} s; "
              f"{kills} kills, progress at each kill (letters stored, done, sent) {progress}; "
              f"appeals {len(appeals)}, follow-ups {followups}, ignored {status['ignored']}, "
              f"quarantined {status['quarantined']}; duplicates seen at ingest {duplicates_seen}; "
              f"letters resumed after a crash {resumed}; extra acknowledgements {extra_acks}, "
              f"extra letters of any kind {extra_letters}; {total:.1f} s in all")


# --- one letter twice ----------------------------------------------------------------------------


def test_uidvalidity_change_and_redelivery_make_no_new_appeals(fresh, tmp_path, corpus_roster, capsys):
    from helpdesk.store.models import Event, MailboxState

    config = make_config(tmp_path, fresh)
    lev, lera, gosha = (corpus_roster.students[i] for i in (15, 7, 8))
    with_id = question(lev, 10)
    without_id = (f"From: {lera.email}\r\nTo: {SCHOOL}\r\nSubject: =?utf-8?b?"
                  "0LLQvtC/0YDQvtGBINC/0L4g0YTQuNC30LjQutC1?=\r\nDate: Mon, 30 Nov 2026 10:00:00 +0300\r\n"
                  "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                  "Не понимаю закон Ома, помогите пожалуйста. Быкова Лера 6Б\r\n").encode()
    auto = letter(gosha.email, "Автоответ", "Я в отпуске.", Auto_Submitted="auto-replied")
    fresh.send(with_id, lev.email, [SCHOOL])
    fresh.send(without_id, lera.email, [SCHOOL])
    fresh.send(auto, gosha.email, [SCHOOL])
    run_once(config)
    assert len(cli_json(config, "appeals", "list", capsys=capsys)) == 2

    # The server renumbers the folder: same letters, same UIDs, a new UIDVALIDITY.
    old = MailboxState.get().uidvalidity
    fresh.doveadm("mailbox", "update", "-u", SCHOOL, "--uid-validity", str(old + 1000), "INBOX")
    run_once(config)
    assert MailboxState.get().uidvalidity == old + 1000
    assert Event.select().where(Event.kind == "uidvalidity").count() == 1
    assert Event.select().where(Event.kind == "duplicate").count() == 3

    # The same letters delivered again (new Received/Return-Path headers, a letter
    # without Message-ID among them) and one copied inside the folder.
    fresh.send(with_id, lev.email, [SCHOOL])
    fresh.send(without_id, lera.email, [SCHOOL])
    with fresh.imap(SCHOOL) as client:
        client.select_folder("INBOX")
        client.copy(client.search("ALL")[:1], "INBOX")
    new = question(gosha, 11)
    fresh.send(new, gosha.email, [SCHOOL])
    run_once(config)
    appeals = cli_json(config, "appeals", "list", capsys=capsys)
    assert sorted(a["sender"] for a in appeals) == sorted([lev.email, lera.email, gosha.email])
    assert Event.select().where(Event.kind == "duplicate").count() == 6
    letters = cli_json(config, "letters", "list", capsys=capsys)
    assert len(letters) == 4
    for student in (lev, lera, gosha):
        assert len(fresh.messages(student.email)) == 1  # one acknowledgement each


def test_copies_are_recognised_and_a_reused_message_id_loses_nothing(db):
    from datetime import datetime, timezone

    from helpdesk.ingest.imap import FetchedLetter
    from helpdesk.ingest.runner import content_hash, store_letter
    from helpdesk.store.models import Event, Letter, database

    original = (b"From: lev@mail.test\r\nTo: school@x.test\r\nSubject: =?utf-8?b?0LDQu9Cz0LXQsdGA0LA=?=\r\n"
                b"Message-ID: <one@mail.test>\r\nDate: Mon, 30 Nov 2026 10:00:00 +0300\r\n\r\n"
                b"help, please\r\n")
    delivered_again = (b"Return-Path: <lev@mail.test>\nDelivered-To: school@x.test\n"
                       b"Received: from mx by mx; Mon, 30 Nov 2026 10:05:00 +0300\n"
                       b"X-Received: by 10.0.0.1\nX-Spam-Score: 0.1\n"
                       + original.replace(b"\r\n", b"\n").replace(b"Subject: ", b"Subject:\n "))
    reused = original.replace(b"help, please", b"another question altogether")
    assert content_hash(delivered_again) == content_hash(original) != content_hash(reused)

    def store(uid: int, raw: bytes) -> bool:
        with database.atomic():
            return store_letter("box", 1, FetchedLetter(uid, datetime.now(timezone.utc), raw))

    assert store(1, original)
    assert not store(2, delivered_again)  # the same letter: a no-op
    assert store(3, reused)  # another letter under a taken Message-ID: kept
    assert not store(4, reused)  # ... and its own copies are copies
    assert [(l.uid, l.message_id) for l in Letter.select().order_by(Letter.uid)] == [
        (1, "<one@mail.test>"), (3, None)]
    assert Event.select().where(Event.kind == "duplicate").count() == 2
    assert Event.select().where(Event.kind == "message_id_reused").count() == 2


def test_a_crash_between_flagging_and_storing_loses_nothing(fresh, tmp_path, corpus_roster, monkeypatch):
    from helpdesk.config import load_config
    from helpdesk.app import imap_settings
    from helpdesk.ingest.imap import Mailbox
    from helpdesk.store.models import Letter

    config = load_config(make_config(tmp_path, fresh))
    students = corpus_roster.students[:3]
    fresh.send_many([(question(s, n), s.email, [SCHOOL]) for n, s in enumerate(students)])
    real_store = runner_module.store_letter
    stored = []

    def crash_after_one(*args):  # killed in the middle of storing a fetched batch
        if stored:
            raise SystemExit("killed")
        stored.append(real_store(*args))
        return stored[-1]

    monkeypatch.setattr(runner_module, "store_letter", crash_after_one)
    with Mailbox(imap_settings(config)) as mailbox, pytest.raises(SystemExit):
        runner_module.ingest(mailbox)
    assert stored == [True]
    assert Letter.select().count() == 0  # the batch and the mark rolled back together
    monkeypatch.setattr(runner_module, "store_letter", real_store)
    with Mailbox(imap_settings(config)) as mailbox:
        result = runner_module.ingest(mailbox)
        flags = mailbox.client.get_flags(mailbox.client.search("ALL"))
    assert (result.stored, result.duplicates) == (3, 0)
    assert Letter.select().count() == 3
    assert all(b"\\Seen" in f for f in flags.values())


# --- mailbox hygiene -------------------------------------------------------------------------------


def test_quarantined_letters_go_to_the_quarantine_folder(fresh, tmp_path, corpus_roster, capsys):
    from helpdesk.store.models import Event

    config = make_config(tmp_path, fresh)  # the defaults: flag \Seen, quarantine to "Quarantine"
    lev = corpus_roster.students[15]
    fresh.send(question(lev, 20), lev.email, [SCHOOL])
    with fresh.imap(SCHOOL) as client:
        client.append("INBOX", b"\x00\xff\xfe not a letter at all\r\n")
    run_once(config)
    [bad] = cli_json(config, "letters", "list", "--status", "quarantined", capsys=capsys)
    assert len(folder(fresh, "INBOX")) == 1  # the appeal stays, flagged
    [kept] = folder(fresh, "Quarantine")  # (Dovecot stores the NUL as 0x80)
    assert kept.endswith(b"\xff\xfe not a letter at all\r\n")
    [moved] = Event.select().where(Event.kind == "mailbox_moved")
    assert moved.letter_id == bad["id"] and "Quarantine" in moved.message
    run_once(config)  # nothing more to do, nothing done twice
    assert Event.select().where(Event.kind == "mailbox_moved").count() == 1
    assert len(folder(fresh, "Quarantine")) == 1


def test_hygiene_folders_are_read_from_the_config_with_defaults(tmp_path):
    from helpdesk.app import imap_settings
    from helpdesk.config import default_config_text, load_config

    path = tmp_path / "config.toml"
    path.write_text(default_config_text(), encoding="utf-8")
    plain = imap_settings(load_config(path))
    assert (plain.processed_folder, plain.quarantine_folder) == ("", "Quarantine")
    text = default_config_text().replace('processed_folder = ""', 'processed_folder = "Обработано"')
    path.write_text(text.replace('quarantine_folder = "Quarantine"', 'quarantine_folder = ""'),
                    encoding="utf-8")
    chosen = imap_settings(load_config(path))
    assert (chosen.processed_folder, chosen.quarantine_folder) == ("Обработано", "")


def test_processed_letters_can_be_moved_to_a_folder(fresh, tmp_path, corpus_roster, capsys, monkeypatch):
    config = make_config(tmp_path, fresh, imap__processed_folder='"Обработано"',
                         imap__quarantine_folder='"Карантин"')
    lev, lera = corpus_roster.students[15], corpus_roster.students[7]
    appeal = question(lev, 21)
    fresh.send(appeal, lev.email, [SCHOOL])
    fresh.send(appeal, lev.email, [SCHOOL])  # a duplicate: moved as well
    fresh.send(letter(lera.email, "Автоответ", "Я в отпуске.", Auto_Submitted="auto-replied"),
               lera.email, [SCHOOL])
    with fresh.imap(SCHOOL) as client:
        client.append("INBOX", b"Subject: no sender\r\n\r\nwho wrote this?\r\n")
    run_once(config)
    assert folder(fresh, "INBOX") == []
    assert len(folder(fresh, "Обработано")) == 3
    assert len(folder(fresh, "Карантин")) == 1
    # Later letters follow; nothing is ever deleted.
    fresh.send(question(lera, 22), lera.email, [SCHOOL])
    run_once(config)
    assert folder(fresh, "INBOX") == [] and len(folder(fresh, "Обработано")) == 4
    assert len(cli_json(config, "appeals", "list", capsys=capsys)) == 2
