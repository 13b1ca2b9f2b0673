"""The administration's digest and the inspector's report, on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import dataclasses
import statistics
from datetime import date, datetime, time, timedelta, timezone
from email import message_from_bytes, policy
from zoneinfo import ZoneInfo

import pytest

from helpdesk import app
from helpdesk.cli import main
from helpdesk.config import load_config
from helpdesk.digest.figures import compute
from helpdesk.digest.models import DigestSent
from helpdesk.digest.send import due_digest, period_for, render_text, send_digest
from helpdesk.roster.store import load_roster, save_roster
from helpdesk.routing.models import RoutingCorrection
from helpdesk.store.db import open_database
from helpdesk.store.models import Appeal, Outgoing, as_aware, database, to_utc_naive
from tests.conftest import SCHOOL

MSK = ZoneInfo("Europe/Moscow")
STUDENT = "lev.kuzmin@lyceum21-edu.test"  # 7В
STUDENT2 = "ilya.kryukov@lyceum21-edu.test"  # 8Б
TEACHER = "d.karpenko@lyceum21-edu.test"
OTHER_TEACHER = "m.shubina@lyceum21-edu.test"
DEPUTY = "n.kovalevskaya@lyceum21-edu.test"
DIRECTOR = "o.grigoriev@lyceum21-edu.test"

FRI = date(2026, 12, 4)
MON = date(2026, 12, 7)
MON_8 = datetime(2026, 12, 7, 8, 0, tzinfo=MSK)
FRI_8 = datetime(2026, 12, 4, 8, 0, tzinfo=MSK)


def msk(month, day, hour, minute=0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK)


def with_digest(config, **digest):
    """The config with other ``[digest]`` settings."""
    return dataclasses.replace(config, digest=dataclasses.replace(config.digest, **digest))


def appeal(config, received, *, answered=None, closed=None, assignee=TEACHER, student=STUDENT,
           class_name="7В", subject="алгебра", title="помогите с уравнением", triage=False,
           sender=None, role="student", category="subject_help") -> Appeal:
    due = app.work_calendar(config).deadline(received).due
    status = "closed" if closed else ("answered" if answered else "open")
    return Appeal.create(
        sender=sender or student, sender_role=role, student=student, class_name=class_name,
        subject=subject, category=category, assignee=assignee, title=title, triage=triage,
        status=status, received_at=to_utc_naive(received), due_at=to_utc_naive(due),
        answered_at=to_utc_naive(answered) if answered else None,
        closed_at=to_utc_naive(closed) if closed else None,
    )


@pytest.fixture
def seeded(school):
    """Appeals around the weekend of 5-6 December 2026; Monday's digest covers Fri 08:00 - Mon 08:00."""
    c = school
    a = {}
    a["wed"] = appeal(c, msk(12, 2, 10), answered=msk(12, 2, 14))  # before the period: chart only
    a["overdue"] = appeal(c, msk(12, 3, 9), title="Где задание на каникулы?")  # due Fri 09:00
    a["late"] = appeal(c, msk(12, 3, 11), answered=msk(12, 4, 16), assignee=OTHER_TEACHER,
                       subject="немецкий язык")
    a["fast"] = appeal(c, msk(12, 4, 10), answered=msk(12, 4, 15), student=STUDENT2, class_name="8Б")
    a["open"] = appeal(c, msk(12, 4, 9), title="Оценка за контрольную")  # due Mon 09:00
    a["triage"] = appeal(c, msk(12, 5, 12), assignee=DEPUTY, student=None, class_name=None, subject=None,
                         sender="grandpa.sitnikov@mail.test", role="unknown", triage=True,
                         category="other", title="Вопрос от дедушки")
    a["closed"] = appeal(c, msk(12, 6, 12), closed=msk(12, 6, 13))
    a["after"] = appeal(c, msk(12, 7, 9))  # after the period
    RoutingCorrection.create(appeal=a["open"].number, old_assignee=TEACHER, new_assignee=OTHER_TEACHER,
                             who=DEPUTY, note="ведёт другая группа", at=to_utc_naive(msk(12, 5, 10)))
    return a


def digest_rows():
    return list(Outgoing.select().where(Outgoing.kind == "digest").order_by(Outgoing.id))


def body(row, kind="plain") -> str:
    msg = message_from_bytes(bytes(row.raw), policy=policy.default)
    return msg.get_body(preferencelist=(kind,)).get_content()


# --- figures --------------------------------------------------------------------------


def test_figures_match_a_direct_count(seeded, school):
    cal = app.work_calendar(school)
    start, end = FRI_8, MON_8
    fig = compute(cal, load_roster(), start, end)
    s, e = to_utc_naive(start), to_utc_naive(end)

    # The direct count, straight from the table.
    received = Appeal.select().where((Appeal.received_at >= s) & (Appeal.received_at < e)).count()
    answered = list(Appeal.select().where((Appeal.answered_at >= s) & (Appeal.answered_at < e)))
    in_time = sum(1 for x in answered if x.answered_at <= x.due_at)
    overdue = Appeal.select().where(
        (Appeal.received_at < e) & (Appeal.due_at < e)
        & (Appeal.answered_at.is_null() | (Appeal.answered_at >= e))
        & (Appeal.closed_at.is_null() | (Appeal.closed_at >= e))).count()
    median = statistics.median(
        cal.working_hours_between(as_aware(x.received_at), as_aware(x.answered_at)) for x in answered)

    assert (fig.received, fig.answered, fig.answered_in_time, fig.overdue_now) == (received, len(answered),
                                                                                  in_time, overdue)
    # ... and what they should be, worked out by hand.
    assert (fig.received, fig.answered, fig.answered_in_time, fig.overdue_now, fig.open_now) == (4, 2, 1, 1, 3)
    assert fig.in_time_pct == 50
    assert fig.median_hours == pytest.approx(median) == pytest.approx(9.5)  # 5 h and 6 + 8 h
    [row] = fig.overdue
    assert (row.number, row.class_name, row.subject, row.hours_late, row.late) == (
        seeded["overdue"].number, "7В", "алгебра", 8.0, "8 ч")
    assert row.student == "Кузьмин Лев Дмитриевич, 7В"
    teachers = {r.name: (r.open, r.answered, r.late) for r in fig.teachers}
    roster = load_roster()
    assert teachers[roster.name_of(TEACHER)] == (2, 1, 1)
    assert teachers[roster.name_of(OTHER_TEACHER)] == (0, 1, 0)
    classes = {r.name: (r.received, r.answered, r.late) for r in fig.classes}
    assert classes["7В"] == (2, 1, 1) and classes["8Б"] == (1, 1, 0)
    assert [t.number for t in fig.triage] == [seeded["triage"].number]
    assert [(c.number, c.new) for c in fig.corrections] == [(seeded["open"].number, roster.name_of(OTHER_TEACHER))]
    days = {d.day: (d.received, d.in_time) for d in fig.days}
    assert len(fig.days) == 14 and fig.days[-1].day == FRI
    assert days[date(2026, 12, 2)] == (1, 1)
    assert days[date(2026, 12, 3)] == (2, 0)
    assert days[FRI] == (2, 1)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rendered_digest_shows_the_figures(seeded, school):
    text, html, fig = render_text(school, MON)
    assert "понедельник, 7 декабря 2026" in text
    assert "Поступило: 4" in text and "Отвечено: 2" in text and "Ответ в срок: 50% (1 из 2)" in text
    assert "Просрочено сейчас: 1" in text and "9 ч 30 мин" in text
    assert f"№ {seeded['overdue'].number} · 7В · алгебра" in text and "Кузьмин Лев Дмитриевич, 7В" in text
    assert "Вопрос от дедушки" in text and "ведёт другая группа" in text
    assert "с опозданием" not in text
    assert "Кузьмин Лев Дмитриевич, 7В" in html and "#2da44e" in html and "<table" in html


# --- sending -----------------------------------------------------------------------------


def test_exactly_once_across_restarts(seeded, school, db_url):
    assert due_digest(school, MON_8 - timedelta(minutes=1)) is None
    assert due_digest(school, MON_8) == MON
    result = send_digest(school, MON_8 + timedelta(minutes=1))
    assert result is not None and not result.late
    assert set(result.recipients) >= {DEPUTY, DIRECTOR}
    assert send_digest(school, MON_8 + timedelta(minutes=2)) is None
    assert due_digest(school, MON_8 + timedelta(hours=3)) is None
    # A restart: a new connection, the same database.
    database.close()
    open_database(db_url)
    assert due_digest(school, MON_8 + timedelta(hours=5)) is None
    assert send_digest(school, MON_8 + timedelta(hours=5)) is None
    [row] = digest_rows()
    assert row.appeal_id is None and row.status == "queued"
    assert set(row.recipient_list()) == set(result.recipients)
    mark = DigestSent.get(DigestSent.day == MON)
    assert mark.outgoing == row.id and not mark.late
    msg = message_from_bytes(bytes(row.raw), policy=policy.default)
    assert "[№" not in msg["Subject"] and msg["Subject"].startswith("Сводка обращений на 7 декабря")
    # The next working day's digest is due again, and covers from Monday 08:00.
    assert due_digest(school, MON_8 + timedelta(days=1)) == MON + timedelta(days=1)
    assert period_for(school, MON + timedelta(days=1)).start == MON_8


def test_late_digest_says_so(seeded, school):
    now = msk(12, 7, 11, 40)  # the daemon came up at 11:40
    result = send_digest(school, now)
    assert result is not None and result.late and result.period.end == MON_8
    [row] = digest_rows()
    text = body(row)
    assert "с опозданием" in text and "11:40" in text
    assert "с опозданием" in body(row, "html")
    assert "Поступило: 4" in text  # the figures are those of 08:00, as on time
    assert DigestSent.get(DigestSent.day == MON).late


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_monday_covers_the_weekend(seeded, school):
    friday = send_digest(school, FRI_8 + timedelta(minutes=5))
    assert friday is not None and friday.period.end == FRI_8
    assert friday.period.start == msk(12, 3, 8)  # the first digest: since Thursday's send time
    assert due_digest(school, msk(12, 5, 9)) is None  # Saturday
    assert due_digest(school, msk(12, 6, 9)) is None  # Sunday
    monday = send_digest(school, MON_8)
    assert (monday.period.start, monday.period.end) == (FRI_8, MON_8)
    assert "Вопрос от дедушки" in body(digest_rows()[-1])  # received on Saturday


def test_nothing_on_a_holiday(school):
    holiday = datetime(2026, 11, 4, 9, 0, tzinfo=MSK)  # День народного единства, Wednesday
    assert due_digest(school, holiday) is None
    assert send_digest(school, holiday) is None
    assert not digest_rows() and DigestSent.select().count() == 0
    # The next morning's digest covers the holiday.
    assert period_for(school, date(2026, 11, 5)).start == datetime(2026, 11, 3, 8, 0, tzinfo=MSK)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_config_time_enabled_and_extra_addresses(seeded, school):
    path = school.path
    path.write_text(path.read_text(encoding="utf-8") + '[digest]\ntime = "09:30"\n'
                    'extra_addresses = ["Inspector@Gov.Example"]\n', encoding="utf-8")
    cfg = load_config(path)
    assert cfg.digest.time == time(9, 30)
    assert due_digest(cfg, msk(12, 7, 9, 0)) is None
    assert due_digest(cfg, msk(12, 7, 9, 30)) == MON
    result = send_digest(cfg, msk(12, 7, 9, 31))
    assert "inspector@gov.example" in result.recipients
    off = with_digest(school, enabled=False)
    assert due_digest(off, msk(12, 8, 10)) is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_print_has_no_side_effects_and_send_resends(seeded, school, capsys, tmp_path):
    path = str(school.path)
    assert main(["--config", path, "digest", "--date", "2026-12-07", "--print",
                 "--html", str(tmp_path / "d.html")]) == 0
    out = capsys.readouterr().out
    assert "Сводка обращений — понедельник, 7 декабря 2026" in out and "Поступило: 4" in out
    assert (tmp_path / "d.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not digest_rows() and DigestSent.select().count() == 0
    assert main(["--config", path, "digest", "--date", "2026-12-07", "--send"]) == 0
    assert main(["--config", path, "digest", "--date", "2026-12-07", "--send"]) == 0  # a resend
    assert len(digest_rows()) == 2
    mark = DigestSent.get(DigestSent.day == MON)
    assert mark.manual and mark.outgoing == digest_rows()[-1].id
    assert due_digest(school, MON_8 + timedelta(hours=1)) is None  # the day is marked


# --- the report ---------------------------------------------------------------------------


def test_report_csv_and_xlsx_reopen(seeded, school, tmp_path):
    import openpyxl

    path = str(school.path)
    out_csv, out_xlsx = tmp_path / "q.csv", tmp_path / "q.xlsx"
    assert main(["--config", path, "report", "--from", "2026-12-01", "--to", "2026-12-06",
                 "--format", "csv", "--output", str(out_csv), "--now", "2026-12-07T08:00"]) == 0
    assert main(["--config", path, "report", "--from", "2026-12-01", "--to", "2026-12-06",
                 "--format", "xlsx", "--output", str(out_xlsx)]) == 0
    raw = out_csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with open(out_csv, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    header, data = rows[0], rows[1:]
    assert header[:3] == ["№", "Поступило", "Срок ответа"]
    assert len(data) == 7  # received 1-6 December, the Monday one is not
    by_number = {int(r[0]): dict(zip(header, r)) for r in data}
    fast = by_number[seeded["fast"].number]
    assert fast["Поступило"] == "2026-12-04T10:00" and fast["Ответ"] == "2026-12-04T15:00"
    assert fast["Ученик"] == load_roster().name_of(STUDENT2) and fast["Ученик"].startswith("Крюков")
    assert fast["Класс"] == "8Б" and fast["Предмет"] == "алгебра" and fast["В срок"] == "в срок"
    assert fast["Категория"] == "помощь по предмету" and fast["Время ответа, раб. ч"] == "5"
    assert by_number[seeded["late"].number]["В срок"] == "с опозданием"
    assert by_number[seeded["overdue"].number]["В срок"] == "просрочено"
    assert by_number[seeded["closed"].number]["В срок"] == "закрыто без ответа"

    wb = openpyxl.load_workbook(out_xlsx)
    ws = wb.active
    values = list(ws.iter_rows(values_only=True))
    assert list(values[0]) == header and len(values) == 8
    xrows = {r[0]: r for r in values[1:]}
    xfast = xrows[seeded["fast"].number]
    assert xfast[1] == datetime(2026, 12, 4, 10, 0) and xfast[7] == "8Б"
    assert xfast[9] == fast["Ученик"] and xrows[seeded["triage"].number][15] == "Вопрос от дедушки"
