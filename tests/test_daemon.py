"""The daemon loop: IDLE (renewed before the server's limit) or polling, a letter
acknowledged within seconds, outages logged once each way, SIGTERM honoured."""
from __future__ import annotations

import logging
import signal
import time

import peewee
import pytest

from helpdesk import daemon as daemon_module
from helpdesk.daemon import Outage
from helpdesk.ingest import imap as imap_module
from tests.conftest import SCHOOL
from tests.daemon_kit import (  # noqa: F401 - mail, fresh: fixtures
    fresh,
    mail,
    DaemonThread,
    kill,
    make_config,
    private_stack,
    question,
    spawn_daemon,
    sqlite_counts,
    wait_for_log,
    wait_until,
)

pytestmark = pytest.mark.mailstack


def student(roster, index: int = 15):
    return roster.students[index]  # lev.kuzmin, 7В


def count_calls(monkeypatch, owner, name: str) -> list:
    calls: list = []
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(time.monotonic())
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def outage_lines(caplog, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


# --- outages ---------------------------------------------------------------------------


def test_outage_is_one_line_down_one_line_up_with_growing_backoff(caplog, monkeypatch):
    monkeypatch.setattr(daemon_module.random, "uniform", lambda a, b: b)  # no jitter
    outage = Outage("IMAP server x:1", base=1.0, cap=8.0)
    delays = []
    with caplog.at_level(logging.DEBUG, logger="helpdesk.daemon"):
        for _ in range(6):
            before = time.monotonic()
            outage.failed("ConnectionRefusedError: [Errno 111] Connection refused")
            delays.append(round(outage.retry_at - before))
        assert outage.down and not outage.due()
        lasted = outage.recovered()
    assert delays == [1, 2, 4, 8, 8, 8]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2
    assert "IMAP server x:1 unavailable: ConnectionRefusedError" in warnings[0].getMessage()
    assert "available again after" in warnings[1].getMessage() and "6 failed" in warnings[1].getMessage()
    assert lasted is not None and outage.recovered() is None and not outage.down


def test_jitter_spreads_retries(monkeypatch):
    outage = Outage("SMTP", base=4.0, cap=60.0)
    outage.failures = 3
    delays = {round(outage.delay(), 3) for _ in range(20)}
    assert len(delays) > 10 and all(8.0 <= d <= 16.0 for d in delays)


def test_database_outage_and_a_bug_in_ingest_log_once(fresh, tmp_path, monkeypatch, caplog):
    from helpdesk.config import load_config

    config = load_config(make_config(tmp_path, fresh))
    d = daemon_module.Daemon(config, only=("ingest",))
    failures = iter([peewee.OperationalError("database is locked")] * 3 + [KeyError("bug")] * 3)

    def broken_ingest(*_args, **_kwargs):
        raise next(failures)

    monkeypatch.setattr(daemon_module, "ingest", broken_ingest)
    with caplog.at_level(logging.INFO, logger="helpdesk"):
        for _ in range(6):
            d.db.retry_at = d.imap.retry_at = 0  # no waiting in a test
            d.cycle()
        monkeypatch.setattr(daemon_module, "ingest", imap_module_ingest())
        d.imap.retry_at = 0
        d.cycle()
    d._drop_mailbox()
    assert len(outage_lines(caplog, "database unavailable")) == 1
    assert len(outage_lines(caplog, "database available again")) == 1
    imap_down = [r for r in caplog.records if "unavailable: KeyError" in r.getMessage()]
    assert len(imap_down) == 1 and imap_down[0].exc_info  # a bug: its traceback, once
    assert sum(1 for r in caplog.records if r.exc_info) == 1
    assert len(outage_lines(caplog, "available again after")) == 2


def imap_module_ingest():
    from helpdesk.ingest.runner import ingest

    return ingest


# --- waiting for mail -----------------------------------------------------------------------


def test_idle_acknowledges_a_new_letter_within_seconds(fresh, tmp_path, corpus_roster, monkeypatch):
    config = make_config(tmp_path, fresh, imap__poll_interval="60")
    idles = count_calls(monkeypatch, imap_module.Mailbox, "_idle_once")
    who = student(corpus_roster)
    with DaemonThread(config):
        wait_until(lambda: idles, 10, what="the daemon in IDLE")
        began = time.monotonic()
        fresh.send(question(who), who.email, [SCHOOL])
        fresh.wait_for(who.email, 1, timeout=5)
        latency = time.monotonic() - began
    print(f"\nack latency with IDLE: {latency:.2f} s")
    assert latency < 5


def test_idle_is_renewed_before_the_servers_limit(fresh, tmp_path, corpus_roster, monkeypatch):
    monkeypatch.setattr(imap_module, "IDLE_RENEW", 0.3)  # stands for 25 minutes
    config = make_config(tmp_path, fresh, imap__poll_interval="60")
    idles = count_calls(monkeypatch, imap_module.Mailbox, "_idle_once")
    cycles = count_calls(monkeypatch, daemon_module.Daemon, "cycle")
    who = student(corpus_roster, 3)
    with DaemonThread(config):
        wait_until(lambda: len(idles) >= 4, 10, what="four IDLE commands")
        assert len(cycles) == 1  # one wait of up to 60 s, IDLE re-issued inside it
        fresh.send(question(who), who.email, [SCHOOL])
        fresh.wait_for(who.email, 1, timeout=5)
    gaps = [b - a for a, b in zip(idles, idles[1:4])]
    assert all(0.2 < gap < 1.0 for gap in gaps), gaps


def test_polling_when_the_server_has_no_idle(fresh, tmp_path, corpus_roster, monkeypatch):
    config = make_config(tmp_path, fresh, imap__poll_interval="60", daemon__interval="0.5")
    real_has = imap_module.Mailbox.has
    monkeypatch.setattr(imap_module.Mailbox, "has",
                        lambda self, cap: cap != b"IDLE" and real_has(self, cap))
    idles = count_calls(monkeypatch, imap_module.Mailbox, "_idle_once")
    cycles = count_calls(monkeypatch, daemon_module.Daemon, "cycle")
    who = student(corpus_roster, 7)
    with DaemonThread(config):
        wait_until(lambda: len(cycles) >= 2, 10, what="two polls")
        began = time.monotonic()
        fresh.send(question(who), who.email, [SCHOOL])
        fresh.wait_for(who.email, 1, timeout=5)
        latency = time.monotonic() - began
    assert idles == [] and latency < 4


def test_idle_switched_off_in_the_config_polls(fresh, tmp_path, corpus_roster, monkeypatch):
    config = make_config(tmp_path, fresh, imap__idle="false", daemon__interval="0.5")
    idles = count_calls(monkeypatch, imap_module.Mailbox, "_idle_once")
    who = student(corpus_roster, 9)
    with DaemonThread(config) as running:
        wait_until(lambda: running.daemon.mailbox is not None, 10, what="the first poll")
        fresh.send(question(who), who.email, [SCHOOL])
        fresh.wait_for(who.email, 1, timeout=5)
    assert idles == []


# --- SIGTERM -----------------------------------------------------------------------------------


def test_sigterm_finishes_the_letter_in_hand_and_exits_zero(fresh, tmp_path, corpus_roster):
    from helpdesk.cli import main

    config = make_config(tmp_path, fresh)
    db_path = tmp_path / "helpdesk.sqlite3"
    students = corpus_roster.students
    fresh.send_many([(question(s, n), s.email, [SCHOOL])
                     for n, s in enumerate(students * 2)])  # 64 letters
    log_path = tmp_path / "daemon.log"
    proc = spawn_daemon(config, log_path)
    try:
        wait_until(lambda: sqlite_counts(db_path, "select count(*) from letter where status != 'new'")[0][0] >= 3,
                   20, what="processing under way")
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = proc.wait(10)
        stopped_in = time.monotonic() - began
    finally:
        kill(proc)
    log = log_path.read_text()
    assert code == 0 and stopped_in < 3, (code, stopped_in, log[-2000:])
    assert "stop requested" in log and "helpdesk stopped" in log and "Traceback" not in log
    # Nothing half-done: each processed appeal has both its letters, none is in flight.
    rows = sqlite_counts(db_path, "select l.id, count(o.id) from letter l left join outgoing o "
                                  "on o.letter_id = l.id where l.status = 'processed' group by l.id")
    assert rows and all(n == 2 for _, n in rows)
    assert sqlite_counts(db_path, "select count(*) from outgoing where status = 'sending'")[0][0] == 0
    assert sqlite_counts(db_path, "select count(*) from letter")[0][0] == 64
    # What was left is done by the next run, once.
    assert main(["--config", str(config), "run", "--once"]) == 0
    assert sqlite_counts(db_path, "select count(*) from appeal")[0][0] == 64
    assert sqlite_counts(db_path, "select count(*) from outgoing where status != 'sent'")[0][0] == 0

    # A daemon waiting in IDLE stops as quickly.
    proc = spawn_daemon(config, log_path)
    try:
        start = len(log)
        wait_for_log(log_path, "helpdesk running", 20, start)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        assert proc.wait(10) == 0
        assert time.monotonic() - began < 2
    finally:
        kill(proc)


# --- a letter that never finishes -------------------------------------------------------------


def test_watchdog_notices_a_letter_that_hangs(fresh, tmp_path, corpus_roster, monkeypatch):
    import threading

    from helpdesk.pipeline import Processor

    config = make_config(tmp_path, fresh)
    release = threading.Event()
    real = Processor.process_one

    def hangs(self, letter_id):
        release.wait(10)  # stands for a regular expression that runs for hours
        return real(self, letter_id)

    monkeypatch.setattr(Processor, "process_one", hangs)
    hung: list[int] = []
    who = student(corpus_roster)
    running = DaemonThread(config)
    running.daemon.letter_timeout = 0.5
    running.daemon.on_hang = lambda letter_id: (hung.append(letter_id), release.set())
    with running:
        fresh.send(question(who), who.email, [SCHOOL])
        wait_until(lambda: hung, 10, what="the watchdog")
        fresh.wait_for(who.email, 1, timeout=10)
    assert hung == [1]


def test_restart_process_starts_the_same_command_again(tmp_path):
    import os
    import subprocess
    import sys
    import textwrap

    from tests.daemon_kit import ROOT

    code = textwrap.dedent("""
        import os, sys
        from helpdesk.daemon import restart_process
        n = int(os.environ.get("HD_TEST_RESTARTS", "0"))
        print("run", n, os.getpid(), sys.argv[1:], flush=True)
        if n < 1:
            os.environ["HD_TEST_RESTARTS"] = str(n + 1)
            restart_process(7)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code, "--config", "x.toml", "run"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 2, (done.stdout, done.stderr)
    first, second = (line.split(" ", 3) for line in lines)
    assert first[1] == "0" and second[1] == "1"
    assert first[2] == second[2]  # the same process, started afresh
    assert first[3] == second[3] == "['--config', 'x.toml', 'run']"
    assert "restarts itself" in done.stderr


def test_a_letter_delivered_just_before_idle_is_not_missed(fresh, tmp_path, corpus_roster):
    """Between the cycle's SEARCH and the IDLE command a letter may arrive; the server
    announces it before IDLE starts. The wait must still return at once, not after
    poll_interval."""
    from helpdesk.app import imap_settings
    from helpdesk.config import load_config
    from helpdesk.ingest.imap import Mailbox

    settings = imap_settings(load_config(make_config(tmp_path, fresh)))
    student = corpus_roster.students[0]
    with Mailbox(settings) as mailbox:
        mailbox.refresh()
        fresh.send(question(student, 1), student.email, [SCHOOL])  # after the "search"
        time.sleep(0.6)  # Dovecot notices new mail about 0.5 s after delivery
        began = time.monotonic()
        assert mailbox.wait(10, lambda: False) is True
        assert time.monotonic() - began < 2


def test_a_backlog_is_ingested_in_slices_so_the_loop_comes_round(fresh, tmp_path, corpus_roster, monkeypatch):
    """However much mail waits, one cycle's ingest ends after its time slice (at a batch
    boundary), so the loop -- and with it the systemd watchdog ping -- comes round;
    ``run --once`` still takes everything."""
    from helpdesk.config import load_config
    from helpdesk.ingest import runner as runner_module
    from helpdesk.store.models import Letter

    config = load_config(make_config(tmp_path, fresh))
    students = corpus_roster.students
    fresh.send_many([(question(students[n % len(students)], n), students[n % len(students)].email,
                      [SCHOOL]) for n in range(450)])
    d = daemon_module.Daemon(config, only=("ingest",))
    d.slice_seconds = 0.0  # the slice is over after the first batch
    taken = count_calls(monkeypatch, runner_module, "_take_in")
    first = d.cycle()
    assert first.more and len(taken) == 1 and 0 < first.fetched <= imap_module.FETCH_BATCH
    d.slice_seconds = 2.0
    total = d.run_once()
    assert first.fetched + total.fetched == 450 and Letter.select().count() == 450
    assert Letter.select().where(Letter.status == "new").count() == 0
