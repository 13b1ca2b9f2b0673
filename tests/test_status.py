"""``helpdesk status``: mailbox lag, queues, appeals, the daemon's heartbeat, and an
exit code for monitoring; against the real mail stack on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest

from helpdesk.cli import main
from tests.conftest import SCHOOL, letter

pytestmark = pytest.mark.mailstack


def status(capsys, config, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--config", str(config), "status", *args])
    return code, capsys.readouterr().out


def status_json(capsys, config, *args: str) -> tuple[int, dict]:
    code, out = status(capsys, config, "--json", *args)
    return code, json.loads(out)


def ask(stack, who, n: int) -> None:
    stack.send(letter(who.email, f"вопрос {n}", f"Не понимаю задачу {n} по алгебре, помогите.\n"
                      f"{who.full_name}"), who.email, [SCHOOL])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_status_reports_lag_queues_and_heartbeat(stack, helpdesk_config, capsys, corpus_roster):
    from peewee import fn

    from helpdesk.store.models import Appeal, Letter, Outgoing

    # Before the daemon ever ran: nothing polled, no heartbeat; that is a problem.
    code, before = status_json(capsys, helpdesk_config)
    assert code == 1 and before["ok"] is False
    assert before["mailbox"]["reachable"] and before["mailbox"]["waiting"] == 0
    assert any("heartbeat" in p for p in before["problems"])

    who = corpus_roster.students[15]
    for n in (1, 2):
        ask(stack, who, n)
    stack.wait_for(SCHOOL, 2)
    assert main(["--config", str(helpdesk_config), "run", "--once"]) == 0
    ask(stack, who, 3)  # arrives after the last poll: the mailbox lag
    stack.wait_for(SCHOOL, 3)

    code, report = status_json(capsys, helpdesk_config)
    assert code == 0 and report["ok"] and report["problems"] == [], report
    assert report["mailbox"]["waiting"] == 1 and report["mailbox"]["oldest_waiting_at"]
    assert report["last_uid"] == Letter.select(fn.MAX(Letter.uid)).scalar()  # UIDs go on across tests
    open_appeals = Appeal.select().where(Appeal.status == "open").count()
    assert open_appeals == 2 and report["appeals"]["open"] == open_appeals
    assert report["queued"] == Outgoing.select().where(Outgoing.status == "queued").count() == 0
    assert report["failed"] == 0 and report["unprocessed"] == 0
    for key in ("last_poll_at", "last_send_at", "last_sweep_at", "heartbeat_at"):
        assert report[key], key

    code, text = status(capsys, helpdesk_config)
    assert code == 0
    assert "1 letter(s) not yet fetched" in text and "2 open" in text
    assert text.rstrip().endswith("status:     OK")


def test_stale_heartbeat_is_a_problem(stack, helpdesk_config, capsys):
    from helpdesk.metrics import record_heartbeat
    from helpdesk.store.models import utcnow

    assert main(["--config", str(helpdesk_config), "run", "--once"]) == 0
    assert status_json(capsys, helpdesk_config)[0] == 0
    record_heartbeat(utcnow() - timedelta(hours=2))  # the daemon died two hours ago
    code, report = status_json(capsys, helpdesk_config)
    assert code == 1 and any("heartbeat is 2 h old" in p for p in report["problems"]), report


def test_unreachable_imap_still_shows_the_database(stack, helpdesk_config, capsys, corpus_roster):
    who = corpus_roster.students[15]
    ask(stack, who, 1)
    stack.wait_for(SCHOOL, 1)
    assert main(["--config", str(helpdesk_config), "run", "--once"]) == 0
    text = helpdesk_config.read_text(encoding="utf-8")
    helpdesk_config.write_text(text.replace(f"port = {stack.imap_port}", f"port = {closed_port()}"),
                               encoding="utf-8")
    code, out = status(capsys, helpdesk_config)
    assert code == 1
    assert "UNREACHABLE" in out and "problem:    IMAP server unreachable" in out
    assert "appeals     1 open" in out and "outbox      0 queued" in out
    # --no-imap: the database part alone, for a check that must not log in.
    code, report = status_json(capsys, helpdesk_config, "--no-imap")
    assert report["mailbox"]["checked"] is False and report["appeals"]["open"] == 1
    assert not any("IMAP" in p for p in report["problems"])
