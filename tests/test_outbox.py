"""The outbox against the real SMTP front: temporary refusals are retried and the
letter arrives exactly once, permanent ones are given up with the server's words,
an unreachable server costs the letters nothing, a crash repeats at most the
letter in flight."""
from __future__ import annotations

import json
import time
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from helpdesk.outbox.sender import RetryPolicy, SmtpSettings, drain, recover_in_flight
from helpdesk.testing.mailstack import free_ports
from tests.conftest import SCHOOL

pytestmark = pytest.mark.mailstack

STUDENT = "lev.kuzmin@lyceum21-edu.test"
TEACHER = "d.karpenko@lyceum21-edu.test"
QUICK = RetryPolicy(max_attempts=5, base_seconds=0.01, cap_seconds=0.05)


def settings(stack, port: int | None = None) -> SmtpSettings:
    return SmtpSettings(host=stack.host, port=port or stack.smtp_port, security="none", timeout=5)


def queue(to: str = STUDENT, kind: str = "ack"):
    from helpdesk.store.models import Outgoing

    msg = EmailMessage()
    msg["From"] = SCHOOL
    msg["To"] = to
    msg["Subject"] = "[№ 1] Ваше обращение зарегистрировано"
    msg["Message-ID"] = make_msgid(domain="lyceum21-edu.test")
    msg.set_content("Здравствуйте! Ваше обращение № 1 зарегистрировано.")
    return Outgoing.create(kind=kind, mail_from=SCHOOL, recipients=json.dumps([to]),
                           message_id=msg["Message-ID"], raw=msg.as_bytes())


def reload(row):
    return type(row).get_by_id(row.id)


def drain_until_done(stack, rounds: int = 20):
    """Call the outbox like the daemon does, until nothing is queued."""
    from helpdesk.store.models import Outgoing

    results = []
    for _ in range(rounds):
        results.append(drain(settings(stack), QUICK))
        if not Outgoing.select().where(Outgoing.status == "queued").exists():
            break
        time.sleep(0.06)
    return results


def delivered(stack, address: str, message_id: str) -> int:
    return sum(1 for raw in stack.messages(address) if message_id.encode() in raw)


@pytest.mark.parametrize("stage", ["data", "rcpt"])
def test_temporary_refusals_are_retried_and_the_letter_arrives_once(db, stack, stage):
    row = queue()
    stack.refuse_next(2, 451, "4.3.2 try again later", stage=stage)
    results = drain_until_done(stack)
    assert sum(r.retried for r in results) == 2 and sum(r.sent for r in results) == 1
    assert all(r.unreachable is None for r in results)
    row = reload(row)
    assert row.status == "sent" and row.attempts == 3
    assert "451" in row.last_error
    assert delivered(stack, STUDENT, row.message_id) == 1


def test_permanent_refusal_is_given_up_with_the_servers_words(db, stack):
    from helpdesk.store.models import Event

    row = queue()
    stack.refuse_next(1, 554, "5.7.1 message refused")
    [result] = drain_until_done(stack)
    assert result.failed == 1 and result.sent == 0
    row = reload(row)
    assert row.status == "failed" and "554" in row.last_error
    event = Event.get(Event.kind == "send_failed")
    assert "5.7.1 message refused" in event.message and STUDENT in event.message
    assert stack.messages(STUDENT) == []


def test_unreachable_server_keeps_letters_queued_without_spending_attempts(db, stack):
    first, second = queue(), queue(TEACHER, "to_assignee")
    [closed_port] = free_ports(1)
    result = drain(settings(stack, closed_port), QUICK)
    assert result.unreachable and str(closed_port) in result.unreachable
    assert result.sent == result.retried == result.failed == 0
    for row in (first, second):
        row = reload(row)
        assert row.status == "queued" and row.attempts == 0
    # Reachable again: both go out, once each.
    assert drain(settings(stack), QUICK).sent == 2
    assert delivered(stack, STUDENT, first.message_id) == 1
    assert delivered(stack, TEACHER, second.message_id) == 1


def test_smtp_front_stopped_and_started_again(db, stack):
    row = queue()
    stack.stop_smtp()
    try:
        assert drain(settings(stack), QUICK).unreachable
    finally:
        stack.start_smtp()
    assert drain(settings(stack), QUICK).sent == 1
    assert reload(row).attempts == 1
    assert delivered(stack, STUDENT, row.message_id) == 1


def test_a_crash_in_flight_repeats_only_that_letter(db, stack):
    from helpdesk.store.models import Event, Outgoing

    sent, in_flight, waiting = queue(), queue(), queue(TEACHER, "to_assignee")
    assert drain(settings(stack), QUICK, limit=1).sent == 1
    # As a SIGKILL leaves it: marked sending, perhaps already handed to the server.
    Outgoing.update(status="sending").where(Outgoing.id == in_flight.id).execute()
    assert recover_in_flight() == 1
    assert reload(in_flight).status == "queued"
    assert Event.get(Event.kind == "send_resumed").message
    assert drain(settings(stack), QUICK).sent == 2
    assert delivered(stack, STUDENT, sent.message_id) == 1
    assert delivered(stack, STUDENT, in_flight.message_id) == 1
    assert delivered(stack, TEACHER, waiting.message_id) == 1


def test_stop_request_ends_the_drain_between_two_letters(db, stack):
    from helpdesk.store.models import Outgoing

    rows = [queue() for _ in range(5)]
    calls = []

    def stop_after_two() -> bool:
        calls.append(1)
        return len(calls) > 2

    result = drain(settings(stack), QUICK, should_stop=stop_after_two)
    assert result.stopped and result.sent == 2
    statuses = [reload(r).status for r in rows]
    assert statuses == ["sent", "sent", "queued", "queued", "queued"]
    assert not Outgoing.select().where(Outgoing.status == "sending").exists()


def test_marks_record_who_sent_and_what_was_refused_and_leave_the_session_as_found(db, stack):
    """A sent letter keeps its sender and loses its lease; a partly refused one is
    marked sent with an event naming the refused address. On PostgreSQL the drain
    commits without waiting for the disk only while it runs: the session's own
    ``synchronous_commit`` is back afterwards."""
    from helpdesk.outbox.sender import owner
    from helpdesk.store.db import on_postgres
    from helpdesk.store.models import Event, Outgoing, database

    if on_postgres():
        database.execute_sql("SET synchronous_commit TO local")
    whole = queue()
    partial = queue()
    Outgoing.update(recipients=json.dumps([STUDENT, "nobody@lyceum21-edu.test"])).where(
        Outgoing.id == partial.id).execute()
    result = drain(settings(stack), QUICK)
    assert result.sent == 2 and result.failed == result.retried == 0
    for row in (reload(whole), reload(partial)):
        assert row.status == "sent" and row.attempts == 1 and isinstance(row.sent_at, datetime)
        assert row.claimed_by == owner() and row.lease_until is None
    [event] = Event.select().where(Event.kind == "send_partial")
    assert "nobody@lyceum21-edu.test" in event.message and "550" in event.message
    assert delivered(stack, STUDENT, whole.message_id) == 1
    assert delivered(stack, STUDENT, partial.message_id) == 1
    if on_postgres():
        [(value,)] = database.execute_sql("SHOW synchronous_commit").fetchall()
        assert value == "local"
