"""The reminder and escalation ladder on SQLite and PostgreSQL, with a controllable clock."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from helpdesk import app
from helpdesk.cli import main
from helpdesk.config import load_config
from helpdesk.roster.store import save_roster
from helpdesk.sla.ladder import DEFAULT_LADDER, ESCALATION, REMINDER, build_ladder, ladder_from_config
from helpdesk.sla.models import CANCELLED, FIRED, PENDING, SKIPPED, SlaStep
from helpdesk.sla.pending import pending_steps
from helpdesk.sla.plan import cancel_steps, plan_new_appeal, schedule_steps
from helpdesk.sla.sweep import sweep
from helpdesk.store.db import open_database
from helpdesk.store.models import Appeal, Event, Letter, Outgoing, as_aware, to_utc_naive, utcnow
from tests.conftest import SCHOOL

MSK = ZoneInfo("Europe/Moscow")
STUDENT = "lev.kuzmin@lyceum21-edu.test"  # 7В
STUDENT2 = "ilya.kryukov@lyceum21-edu.test"  # 8Б
TEACHER = "d.karpenko@lyceum21-edu.test"  # 7В algebra
OTHER_TEACHER = "m.shubina@lyceum21-edu.test"
DEPUTY = "n.kovalevskaya@lyceum21-edu.test"
DIRECTOR = "o.grigoriev@lyceum21-edu.test"
RECEIVED = datetime(2026, 12, 1, 10, 0, tzinfo=MSK)  # Tuesday 10:00 -> due Wednesday 10:00

# Tests of the wording and of the ladder's choices run on SQLite only; everything that
# depends on the queries (planning, firing, cancelling, re-planning) runs on both.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def calendar(config):
    return app.work_calendar(config)


def new_appeal(config, received=RECEIVED, *, assignee=TEACHER, student=STUDENT, class_name="7В",
               subject="алгебра", title="помогите с уравнением") -> Appeal:
    due = calendar(config).deadline(received).due
    return Appeal.create(
        sender=student, sender_role="student", student=student, class_name=class_name,
        subject=subject, category="subject_help", assignee=assignee, title=title,
        received_at=to_utc_naive(received), due_at=to_utc_naive(due),
    )


def times(config, received=RECEIVED):
    """(reminder, breach, second level) for a letter received at ``received``."""
    cal = calendar(config)
    due = cal.deadline(received).due
    return cal.deadline(received, 0.75).due, due, cal.deadline(due, 1.0).due


def letters():
    """Queued letters as (kind, recipient, parsed message)."""
    out = []
    for row in Outgoing.select().order_by(Outgoing.id):
        msg = message_from_bytes(bytes(row.raw), policy=policy.default)
        [to] = row.recipient_list()
        out.append((row.kind, to, msg))
    return out


def text(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def states(appeal) -> dict[int, str]:
    return {s.level: s.state for s in SlaStep.select().where(SlaStep.appeal == appeal.number)
            if as_aware(s.planned_for) == as_aware(Appeal.get_by_id(appeal.number).due_at)}


def set_status(appeal, status: str, *, bump: bool = True) -> None:
    changes = {"status": status}
    if bump:
        changes["updated_at"] = utcnow()
    Appeal.update(**changes).where(Appeal.number == appeal.number).execute()


# --- the ladder itself ------------------------------------------------------------------


def test_default_ladder_and_config():
    kinds = [(lv.kind, lv.to, lv.copy) for lv in DEFAULT_LADDER.levels]
    assert kinds == [
        (REMINDER, ("assignee",), ()),
        (ESCALATION, ("deputy",), ("assignee",)),
        (ESCALATION, ("director",), ("assignee", "deputy")),
    ]
    assert [lv.after_due for lv in DEFAULT_LADDER.levels] == [None, 0.0, 1.0]
    sla = SimpleNamespace(window_days=1.0, reminder_at=0.5, escalate_to=["deputy", ["director", "boss@x.test"]],
                          escalation_interval=2, escalation_copy=[])
    ladder = ladder_from_config(SimpleNamespace(sla=sla))
    assert [(lv.kind, lv.to, lv.copy, lv.share, lv.after_due) for lv in ladder.levels] == [
        (REMINDER, ("assignee",), (), 0.5, None),
        (ESCALATION, ("deputy",), (), None, 0.0),
        (ESCALATION, ("director", "boss@x.test"), ("deputy",), None, 2.0),
    ]
    assert ladder_from_config(SimpleNamespace(sla=SimpleNamespace(window_days=1.0))) == DEFAULT_LADDER
    assert [lv.kind for lv in build_ladder(reminder_at=0).levels] == [ESCALATION, ESCALATION]
    with pytest.raises(ValueError, match="unknown recipient"):
        build_ladder(escalate_to=["headmaster"])
    with pytest.raises(ValueError, match="between 0 and 1"):
        build_ladder(reminder_at=1.5)


@SQLITE_ONLY
def test_steps_are_planned_with_the_calendar(school):
    appeal = new_appeal(school)
    steps = schedule_steps(appeal, calendar(school), DEFAULT_LADDER)
    reminder, due, second = times(school)
    assert [(s.level, s.kind, as_aware(s.due_at)) for s in steps] == [
        (0, REMINDER, reminder), (1, ESCALATION, due), (2, ESCALATION, second),
    ]
    # Tuesday 10:00 + 75% of the working day (6 h 45 min) -> Tuesday 16:45; the second
    # level one working day after Wednesday 10:00.
    assert reminder == datetime(2026, 12, 1, 16, 45, tzinfo=MSK)
    assert second == datetime(2026, 12, 3, 10, 0, tzinfo=MSK)
    assert schedule_steps(appeal, calendar(school), DEFAULT_LADDER) == steps  # idempotent
    assert SlaStep.select().count() == 3
    # For the processing stage, in the transaction that answers the appeal:
    assert cancel_steps(appeal.number, "на обращение ответили") == 3
    assert cancel_steps(appeal.number, "на обращение ответили") == 0


# --- firing ------------------------------------------------------------------------------


def test_each_level_fires_once_at_its_time(school):
    appeal = new_appeal(school)
    reminder, due, second = times(school)
    tick = timedelta(seconds=1)

    assert sweep(school, RECEIVED + timedelta(minutes=5)).planned == 1
    assert sweep(school, reminder - tick).letters == []
    assert states(appeal) == {0: PENDING, 1: PENDING, 2: PENDING}

    got = sweep(school, reminder)
    assert [(l.kind, l.to, l.numbers) for l in got.letters] == [("reminder", TEACHER, (appeal.number,))]
    assert sweep(school, reminder + tick).letters == []
    assert sweep(school, due - tick).letters == []

    got = sweep(school, due)
    assert sorted((l.kind, l.to) for l in got.letters) == sorted([("escalation", DEPUTY), ("escalation", TEACHER)])
    assert sweep(school, due + timedelta(hours=2)).letters == []
    assert sweep(school, second - tick).letters == []

    got = sweep(school, second)
    assert sorted(l.to for l in got.letters) == sorted([DIRECTOR, DEPUTY, TEACHER])
    assert sweep(school, second + timedelta(days=30)).letters == []
    assert states(appeal) == {0: FIRED, 1: FIRED, 2: FIRED}
    assert [k for k, _, _ in letters()] == ["reminder"] + ["escalation"] * 5
    events = [e.kind for e in Event.select().where(Event.appeal == appeal.number).order_by(Event.id)]
    assert events == ["sla_reminder", "sla_escalation", "sla_escalation"]


@SQLITE_ONLY
def test_letters_name_the_appeal_and_how_late(school):
    appeal = new_appeal(school)
    _, due, _ = times(school)
    sweep(school, due + timedelta(hours=2, minutes=30))  # reminder skipped: already late
    by_to = {to: msg for _, to, msg in letters()}
    assert set(by_to) == {DEPUTY, TEACHER}
    deputy = by_to[DEPUTY]
    assert deputy["Subject"] == f"Просрочено обращение № {appeal.number} (7В, алгебра)"
    body = text(deputy)
    for words in (f"№ {appeal.number}", "Кузьмин Лев", "7В", "алгебра", "Карпенко Дмитрий Анатольевич",
                  "просрочено на 2 ч 30 мин рабочего времени", "Нина Аркадьевна, здравствуйте!"):
        assert words in body, words
    own = text(by_to[TEACHER])
    assert "Истёк срок ответа на обращение, назначенное вам" in own
    assert "Сообщено: Ковалевская Нина Аркадьевна (заместитель директора)" in own
    # Not tied to the appeal: a reply to a notice must never reach the student.
    assert all(row.appeal_id is None for row in Outgoing.select())
    assert "[№" not in deputy["Subject"]
    assert deputy["Auto-Submitted"] == "auto-generated"
    assert "просрочено на 2 ч 30 мин" in deputy.get_body(preferencelist=("html",)).get_content()
    assert states(appeal)[0] == SKIPPED


def test_nothing_before_the_reminder_and_nothing_for_answered(school):
    appeal = new_appeal(school)
    reminder, due, second = times(school)
    assert sweep(school, RECEIVED).letters == []
    set_status(appeal, "answered")
    got = sweep(school, second + timedelta(hours=1))
    assert got.letters == [] and got.cancelled == 3
    assert set(states(appeal).values()) == {CANCELLED}
    [event] = Event.select().where(Event.kind == "sla_cancelled")
    assert "на обращение ответили" in event.message


def test_answer_cancels_the_levels_still_to_come(school):
    appeal = new_appeal(school)
    reminder, due, second = times(school)
    assert len(sweep(school, reminder).letters) == 1
    set_status(appeal, "answered")
    assert sweep(school, reminder + timedelta(minutes=1)).cancelled == 2  # at once, not at due time
    assert sweep(school, second + timedelta(days=1)).letters == []
    assert states(appeal) == {0: FIRED, 1: CANCELLED, 2: CANCELLED}


def test_closed_without_updated_at_is_still_never_escalated(school):
    appeal = new_appeal(school)
    _, due, _ = times(school)
    sweep(school, RECEIVED)
    set_status(appeal, "closed", bump=False)  # a writer that forgot updated_at
    got = sweep(school, due)
    assert got.letters == [] and got.cancelled == 3
    assert "обращение закрыто" in Event.get(Event.kind == "sla_cancelled").message


def test_no_duplicate_after_a_restart(school, db_url):
    appeal = new_appeal(school)
    _, due, _ = times(school)
    assert len(sweep(school, due).letters) == 2
    open_database(db_url)  # the daemon restarts: a new connection, nothing in memory
    assert sweep(school, due).letters == []
    assert sweep(school, due + timedelta(minutes=10)).letters == []
    assert Outgoing.select().count() == 2
    assert states(appeal) == {0: SKIPPED, 1: FIRED, 2: PENDING}


@SQLITE_ONLY
def test_dry_run_stores_nothing(school):
    new_appeal(school)
    reminder, _, _ = times(school)
    got = sweep(school, reminder, dry_run=True)
    assert got.dry_run and [l.to for l in got.letters] == [TEACHER]
    assert Outgoing.select().count() == 0 and SlaStep.select().count() == 0
    assert len(sweep(school, reminder).letters) == 1
    with pytest.raises(ValueError):
        sweep(school, datetime(2026, 12, 1, 10, 0))  # naive: refused
    assert sweep(school).now.tzinfo is timezone.utc  # default: the real time


def test_batched_per_recipient(school):
    first = new_appeal(school)
    second_appeal = new_appeal(school, RECEIVED + timedelta(minutes=20), student=STUDENT2, class_name="8Б",
                               subject="геометрия", title="теорема Пифагора")
    other = new_appeal(school, assignee=OTHER_TEACHER, subject="немецкий язык")
    reminder, due, _ = times(school, RECEIVED + timedelta(minutes=20))
    assert reminder == datetime(2026, 12, 2, 8, 5, tzinfo=MSK)  # 17:05 is after hours

    got = sweep(school, reminder)  # all three reminders are due by now
    assert sorted((l.to, l.numbers) for l in got.letters) == sorted([
        (TEACHER, (first.number, second_appeal.number)), (OTHER_TEACHER, (other.number,))])
    msg = {to: msg for _, to, msg in letters()}[TEACHER]
    assert msg["Subject"] == (f"Напоминание: подходит срок ответа на обращения № {first.number}, "
                              f"{second_appeal.number}")
    assert "скоро истекает срок ответа на обращения (2)" in text(msg)

    got = sweep(school, due)  # all three overdue
    by_to = {l.to: l for l in got.letters}
    assert sorted(by_to) == sorted([DEPUTY, TEACHER, OTHER_TEACHER])
    assert by_to[TEACHER].numbers == (first.number, second_appeal.number)
    assert by_to[DEPUTY].numbers == (first.number, second_appeal.number, other.number)
    assert by_to[OTHER_TEACHER].numbers == (other.number,)
    deputy = {to: msg for kind, to, msg in letters() if kind == "escalation"}[DEPUTY]
    assert deputy["Subject"] == (f"Просрочены обращения № {first.number}, {second_appeal.number}, "
                                 f"{other.number}")
    body = text(deputy)
    assert "Обращения не получили ответа в срок (3)" in body
    assert "теорема Пифагора" in body and "8Б, геометрия" in body


@SQLITE_ONLY
def test_catch_up_after_downtime_sends_one_letter_each(school):
    appeal = new_appeal(school)
    _, _, second = times(school)
    got = sweep(school, second + timedelta(days=1))  # the daemon was off for days
    assert sorted(l.to for l in got.letters) == sorted([DEPUTY, DIRECTOR, TEACHER])
    assert got.skipped == 1  # the reminder: pointless after the deadline
    assert states(appeal) == {0: SKIPPED, 1: FIRED, 2: FIRED}
    teacher = {to: msg for _, to, msg in letters()}[TEACHER]
    assert "Ковалевская Нина Аркадьевна (заместитель директора); Григорьев Олег Викторович (директор)" in text(teacher)


def test_reopen_replans(school):
    appeal = new_appeal(school)
    reminder, due, _ = times(school)
    sweep(school, due)
    set_status(appeal, "answered")
    sweep(school, due + timedelta(hours=1))
    # A follow-up on Friday reopens it with a new deadline (what the processing stage does).
    again = datetime(2026, 12, 4, 9, 0, 27, tzinfo=MSK)
    Letter.create(mailbox="INBOX", content_hash="x", raw=b"", received_at=to_utc_naive(again),
                  kind="followup", status="processed", appeal=appeal.number)
    new_due = calendar(school).deadline(again).due
    Appeal.update(status="open", due_at=to_utc_naive(new_due), updated_at=utcnow()).where(
        Appeal.number == appeal.number).execute()
    got = sweep(school, again)
    assert (got.planned, got.cancelled) == (1, 0)  # the old steps had all fired or been cancelled
    new_reminder = calendar(school).deadline(again, 0.75).due
    assert [(p["kind"], p["due_at"]) for p in pending_steps(school, again)] == [
        (REMINDER, new_reminder), (ESCALATION, new_due), (ESCALATION, calendar(school).deadline(new_due).due),
    ]
    assert new_due == datetime(2026, 12, 7, 9, 0, 27, tzinfo=MSK)  # Friday -> Monday
    assert [l.to for l in sweep(school, new_reminder).letters] == [TEACHER]
    assert sorted(l.to for l in sweep(school, new_due).letters) == sorted([TEACHER, DEPUTY])
    assert "изменился" in Event.get(Event.kind == "sla_replanned").message
    assert SlaStep.select().where(SlaStep.appeal == appeal.number).count() == 6


def test_changed_deadline_without_updated_at_is_replanned_when_met(school):
    appeal = new_appeal(school)
    reminder, due, _ = times(school)
    sweep(school, RECEIVED)
    later = due + timedelta(days=7)  # a writer that moved the deadline and forgot updated_at
    Appeal.update(due_at=to_utc_naive(later), updated_at=utcnow() - timedelta(days=1)).where(
        Appeal.number == appeal.number).execute()
    got = sweep(school, reminder)  # the old reminder is due: found stale, re-planned
    assert got.letters == [] and (got.planned, got.cancelled) == (1, 3)
    steps = list(SlaStep.select().where(SlaStep.planned_for == to_utc_naive(later)).order_by(SlaStep.level))
    assert [s.state for s in steps] == [PENDING] * 3
    # No letter marks the new window's start: it is found from the deadline itself.
    start = datetime(2026, 12, 8, 10, 0, tzinfo=MSK)
    assert as_aware(steps[0].due_at) == calendar(school).deadline(start, 0.75).due


def test_sweep_looks_only_at_recently_changed_appeals(school):
    new_appeal(school)
    assert sweep(school, RECEIVED).planned == 1  # the first pass looks at every appeal
    old = new_appeal(school)
    Appeal.update(updated_at=utcnow() - timedelta(days=2)).where(Appeal.number == old.number).execute()
    assert sweep(school, RECEIVED).planned == 0  # changed long before the mark: not looked at
    assert SlaStep.select().where(SlaStep.appeal == old.number).count() == 0
    assert main(["--config", str(school.path), "sla", "sweep", "--full", "--now", "2026-12-01T10:00"]) == 0
    assert SlaStep.select().where(SlaStep.appeal == old.number).count() == 3


@SQLITE_ONLY
def test_nobody_with_the_role(school, corpus_roster):
    roster = dataclasses.replace(corpus_roster, staff=tuple(s for s in corpus_roster.staff if s.email != DIRECTOR))
    save_roster(roster)
    appeal = new_appeal(school)
    _, _, second = times(school)
    got = sweep(school, second)
    assert DIRECTOR not in {l.to for l in got.letters}
    assert states(appeal)[2] == SKIPPED
    assert "пропущен" in Event.get(Event.kind == "sla_skipped").message


@SQLITE_ONLY
def test_cli_pending_and_sweep(school, capsys):
    appeal = new_appeal(school)
    reminder, _, _ = times(school)
    cfg = str(school.path)
    capsys.readouterr()
    assert main(["--config", cfg, "sla", "pending", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["appeal"], r["kind"], r["to"]) for r in rows] == [
        (appeal.number, "reminder", [TEACHER]), (appeal.number, "escalation", [DEPUTY]),
        (appeal.number, "escalation", [DIRECTOR]),
    ]
    assert rows[0]["due_at"] == reminder.astimezone(MSK).isoformat()
    assert rows[2]["copy"] == [TEACHER, DEPUTY]
    assert SlaStep.select().count() == 0  # listing stores nothing
    now = reminder.astimezone(MSK).replace(tzinfo=None).isoformat()
    assert main(["--config", cfg, "sla", "sweep", "--now", now, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"reminder -> {TEACHER}: appeal(s) {appeal.number}" in out and "dry run" in out
    assert Outgoing.select().count() == 0
    assert main(["--config", cfg, "sla", "sweep", "--now", now, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fired"] == [{"appeal": appeal.number, "level": 0, "kind": "reminder"}]
    assert Outgoing.select().count() == 1
    assert main(["--config", cfg, "sla", "sweep", "--now", "not a time"]) == 1


@SQLITE_ONLY
def test_window_setting_is_honoured(school):
    half = dataclasses.replace(school, sla=SimpleNamespace(window_days=0.5))
    due = calendar(school).deadline(RECEIVED, 0.5).due
    appeal = Appeal.create(
        sender=STUDENT, sender_role="student", student=STUDENT, class_name="7В", subject="алгебра",
        category="subject_help", assignee=TEACHER, received_at=to_utc_naive(RECEIVED), due_at=to_utc_naive(due))
    [reminder, breach, _] = schedule_steps(appeal, calendar(school), DEFAULT_LADDER, window_days=0.5)
    assert as_aware(reminder.due_at) == calendar(school).deadline(RECEIVED, 0.375).due
    assert as_aware(breach.due_at) == due
    assert sweep(half, as_aware(reminder.due_at)).letters[0].kind == "reminder"




@SQLITE_ONLY
def test_a_new_appeal_is_planned_as_schedule_steps_plans_it(school):
    """The processing stage plans a just-created appeal with one INSERT; the rows are
    those ``schedule_steps`` would store, and ``schedule_steps`` then finds them."""
    planned = new_appeal(school)
    assert plan_new_appeal(planned, calendar(school), DEFAULT_LADDER, window_days=1.0,
                           start=RECEIVED) == 3
    looked_up = new_appeal(school)
    expected = schedule_steps(looked_up, calendar(school), DEFAULT_LADDER, start=RECEIVED)
    rows = list(SlaStep.select().where(SlaStep.appeal == planned.number).order_by(SlaStep.level))
    assert ([(s.level, s.kind, s.planned_for, s.due_at, s.state) for s in rows]
            == [(s.level, s.kind, s.planned_for, s.due_at, s.state) for s in expected])
    assert schedule_steps(planned, calendar(school), DEFAULT_LADDER) == rows  # nothing to add
    set_status(planned, "answered")
    answered = Appeal.get_by_id(planned.number)
    assert plan_new_appeal(answered, calendar(school), DEFAULT_LADDER, window_days=1.0,
                           start=RECEIVED) == 0
