"""The working-time calendar against the official Russian production calendar.

Official figures (five-day 40-hour week) are the published norms of the
production calendar (Government decrees on moving days off; norms computed per
Order No. 588n): working days and hours per year and per month.
"""
from __future__ import annotations

import json
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

import holidays
import pytest

from helpdesk.sla.calendar import (
    HOLIDAY,
    MOVED_DAY_OFF,
    MOVED_WORKDAY,
    SCHOOL_DAY_OFF,
    SCHOOL_WORKDAY,
    WEEKEND,
    DayInfo,
    Deadline,
    SchoolHours,
    WorkCalendar,
)

MSK = ZoneInfo("Europe/Moscow")
VLAT = ZoneInfo("Asia/Vladivostok")
CAL = WorkCalendar()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def msk(*args: int) -> datetime:
    return datetime(*args, tzinfo=MSK)


# --- official norms --------------------------------------------------------------

# year: (working days, hours for a 40-hour week)
YEAR_NORMS = {
    2019: (247, 1970),
    2020: (248, 1979),
    2021: (247, 1972),
    2022: (247, 1973),
    2023: (247, 1973),
    2024: (248, 1979),
    2025: (247, 1972),
    2026: (247, 1972),
}

# year: [(working days, hours)] for January..December
MONTH_NORMS = {
    2024: [
        (17, 136), (20, 159), (20, 159), (21, 168), (20, 159), (19, 151),
        (23, 184), (22, 176), (21, 168), (23, 184), (21, 167), (21, 168),
    ],
    2025: [
        (17, 136), (20, 160), (21, 167), (22, 175), (18, 144), (19, 151),
        (23, 184), (21, 168), (22, 176), (23, 184), (19, 151), (22, 176),
    ],
    2026: [
        (15, 120), (19, 152), (21, 168), (22, 175), (19, 151), (21, 167),
        (23, 184), (21, 168), (22, 176), (22, 176), (20, 159), (22, 176),
    ],
}

# Shortened pre-holiday days as published.
SHORTENED = {
    2024: ["2024-02-22", "2024-03-07", "2024-05-08", "2024-06-11", "2024-11-02"],
    2025: ["2025-03-07", "2025-04-30", "2025-06-11", "2025-11-01"],
    2026: ["2026-04-30", "2026-05-08", "2026-06-11", "2026-11-03"],
}


@pytest.mark.parametrize("year", sorted(YEAR_NORMS))
def test_year_norms(year):
    cal = CAL.production_calendar(year)
    assert (cal["working_days"], cal["working_hours"]) == YEAR_NORMS[year]


@pytest.mark.parametrize(
    "year,month", [(y, m) for y in sorted(MONTH_NORMS) for m in range(1, 13)]
)
def test_month_norms(year, month):
    got = CAL.production_calendar(year)["months"][month - 1]
    assert got["month"] == month
    assert (got["working_days"], got["working_hours"]) == MONTH_NORMS[year][month - 1]


@pytest.mark.parametrize("year", sorted(SHORTENED))
def test_shortened_days_as_published(year):
    months = CAL.production_calendar(year)["months"]
    assert [d for m in months for d in m["shortened"]] == SHORTENED[year]


def test_production_calendar_shape():
    cal = CAL.production_calendar(2026)
    assert set(cal) == {"year", "working_days", "working_hours", "months"}
    assert cal["year"] == 2026 and len(cal["months"]) == 12
    january = cal["months"][0]
    assert set(january) == {"month", "working_days", "working_hours", "days_off", "shortened"}
    assert january["days_off"] == [f"2026-01-{d:02d}" for d in (*range(1, 12), 17, 18, 24, 25, 31)]
    assert january["shortened"] == []
    assert len(january["days_off"]) + january["working_days"] == 31
    assert json.loads(json.dumps(cal)) == cal


def test_production_calendar_ignores_school_settings():
    school = SchoolHours(start=time(9), end=time(13), extra_days_off={date(2026, 1, 12): "Карантин"})
    assert WorkCalendar(school).production_calendar(2026) == CAL.production_calendar(2026)


def test_package_exposes_transferred_saturdays():
    """The transferred working Saturdays come from `holidays`, not from our code."""
    assert date(2025, 11, 1) in holidays.country_holidays("RU", years=2025).weekend_workdays
    assert {date(2024, 4, 27), date(2024, 11, 2), date(2024, 12, 28)} <= (
        holidays.country_holidays("RU", years=2024).weekend_workdays
    )


# --- days ----------------------------------------------------------------------------


def test_day_info_kinds_and_notes():
    assert CAL.day_info(date(2026, 1, 1)) == DayInfo(
        date(2026, 1, 1), False, False, 0.0, "Новогодние каникулы", HOLIDAY
    )
    assert CAL.day_info(date(2026, 1, 7)).note == "Рождество Христово"
    weekend = CAL.day_info(date(2026, 12, 5))
    assert (weekend.working, weekend.note, weekend.kind) == (False, "Выходной", WEEKEND)
    workday = CAL.day_info(date(2026, 12, 8))
    assert (workday.working, workday.shortened, workday.hours) == (True, False, 9.0)
    # 31 Dec 2025 and 9 Jan 2026: days off moved by decree.
    for d in (date(2025, 12, 31), date(2026, 1, 9)):
        info = CAL.day_info(d)
        assert (info.working, info.kind) == (False, MOVED_DAY_OFF)
        assert info.note.startswith("Перенесённый выходной день")
    # 9 March 2026: 8 March fell on a Sunday.
    assert "Международный женский день" in CAL.day_info(date(2026, 3, 9)).note


def test_transferred_working_saturday():
    info = CAL.day_info(date(2025, 11, 1))
    assert info.working and info.kind == MOVED_WORKDAY
    assert info.note.startswith("Перенесённый рабочий день (суббота)")
    # Swapped with Monday 3 November, the eve of 4 November: shortened.
    assert info.shortened and info.hours == 8.0
    assert "Предпраздничный день: на час короче" in info.note
    # 2024: 27 April and 28 December are full working Saturdays.
    for d in (date(2024, 4, 27), date(2024, 12, 28)):
        info = CAL.day_info(d)
        assert info.working and not info.shortened and info.hours == 9.0
    assert CAL.day_info(date(2024, 11, 2)).shortened
    assert not CAL.is_working_day(date(2025, 11, 3))


def test_shortened_day_rules():
    # The eve of a holiday that falls on a Saturday (9 May 2026).
    info = CAL.day_info(date(2026, 5, 8))
    assert info.shortened and info.hours == 8.0
    assert info.note == "Предпраздничный день: на час короче"
    # Days before days off that are merely moved are full days.
    for d in (date(2025, 12, 30), date(2025, 5, 7), date(2026, 12, 30)):
        assert CAL.is_working_day(d) and not CAL.day_info(d).shortened
    # Friday before a Sunday holiday (8 March 2026): the Saturday is in between.
    assert not CAL.day_info(date(2026, 3, 6)).shortened
    # Across a year boundary: 31 Dec 2019 before 1 Jan 2020.
    assert CAL.day_info(date(2019, 12, 31)).shortened


def test_working_window():
    assert CAL.working_window(date(2026, 12, 8)) == (msk(2026, 12, 8, 8), msk(2026, 12, 8, 17))
    assert CAL.working_window(date(2026, 4, 30)) == (msk(2026, 4, 30, 8), msk(2026, 4, 30, 16))
    assert CAL.working_window(date(2026, 12, 5)) is None
    start, end = CAL.working_window(date(2026, 12, 8))
    assert start.tzinfo is not None and end.tzinfo is not None


# --- deadlines ---------------------------------------------------------------------------


def test_tuesday_to_wednesday():
    d = CAL.deadline(datetime(2026, 12, 8, 15, 0))
    assert isinstance(d, Deadline)
    assert d.received == msk(2026, 12, 8, 15)
    assert d.starts == msk(2026, 12, 8, 15)
    assert d.due == utc(2026, 12, 9, 12) and d.due.tzinfo == timezone.utc
    assert d.reasons == (
        "Письмо пришло во вторник 8 декабря в 15:00 — в рабочее время; отсчёт начинается сразу.",
        "Срок — один рабочий день: до среды 9 декабря, 15:00 (по местному времени).",
    )


def test_friday_to_monday():
    d = CAL.deadline(datetime(2026, 12, 11, 16, 0))
    assert d.due == msk(2026, 12, 14, 16)
    assert "Нерабочие дни с 12 по 13 декабря в срок не входят." in d.reasons


def test_saturday_to_tuesday_morning():
    d = CAL.deadline(datetime(2026, 12, 5, 11, 20))
    assert d.starts == msk(2026, 12, 7, 8)
    assert d.due == msk(2026, 12, 8, 8)
    assert d.reasons == (
        "Письмо пришло в субботу 5 декабря — выходной; "
        "отсчёт начинается в понедельник 7 декабря в 08:00.",
        "Срок — один рабочий день: до вторника 8 декабря, 08:00 (по местному времени).",
    )


def test_new_year_example():
    d = CAL.deadline(datetime(2025, 12, 30, 10, 0))
    assert d.due == utc(2026, 1, 12, 7, 0)
    assert d.reasons[1] == "Нерабочие дни с 31 декабря по 11 января в срок не входят."
    assert d.reasons[-1] == (
        "Срок — один рабочий день: до понедельника 12 января 2026 года, 10:00 "
        "(по местному времени)."
    )


def test_received_outside_hours():
    after = CAL.deadline(datetime(2026, 12, 8, 18, 10))
    assert after.starts == msk(2026, 12, 9, 8) and after.due == msk(2026, 12, 10, 8)
    assert after.reasons[0] == (
        "Письмо пришло во вторник 8 декабря в 18:10 — после окончания рабочего дня (17:00); "
        "отсчёт начинается в среду 9 декабря в 08:00."
    )
    before = CAL.deadline(datetime(2026, 12, 8, 6, 30))
    assert before.starts == msk(2026, 12, 8, 8) and before.due == msk(2026, 12, 9, 8)
    # Exactly at closing time: the clock starts next morning.
    assert CAL.deadline(datetime(2026, 12, 8, 17, 0)).starts == msk(2026, 12, 9, 8)


def test_received_on_a_holiday():
    d = CAL.deadline(datetime(2026, 1, 1, 12, 0))
    assert d.starts == msk(2026, 1, 12, 8) and d.due == msk(2026, 1, 13, 8)
    assert d.reasons[0] == (
        "Письмо пришло в четверг 1 января — нерабочий праздничный день (Новогодние каникулы); "
        "отсчёт начинается в понедельник 12 января в 08:00."
    )


def test_shortened_day_deadlines():
    # Same time on the shortened day fits into its window.
    assert CAL.deadline(datetime(2026, 4, 29, 10, 0)).due == msk(2026, 4, 30, 10)
    # 16:30 does not (the day ends at 16:00): due when it closes.
    late = CAL.deadline(datetime(2026, 4, 29, 16, 30))
    assert late.due == msk(2026, 4, 30, 16)
    assert any("предпраздничный день" in r for r in late.reasons)
    # From the shortened day across the May holidays.
    assert CAL.deadline(datetime(2026, 4, 30, 10, 0)).due == msk(2026, 5, 4, 10)
    # After 16:00 on a shortened day is after hours.
    after = CAL.deadline(datetime(2026, 4, 30, 16, 15))
    assert after.starts == msk(2026, 5, 4, 8) and after.due == msk(2026, 5, 5, 8)


def test_transferred_saturday_deadlines():
    # Friday 31 Oct 2025 -> the working Saturday 1 November.
    assert CAL.deadline(datetime(2025, 10, 31, 12, 0)).due == msk(2025, 11, 1, 12)
    # A letter on that Saturday is answered after the 2-4 November days off.
    d = CAL.deadline(datetime(2025, 11, 1, 10, 0))
    assert d.starts == msk(2025, 11, 1, 10)
    assert d.due == msk(2025, 11, 5, 10)
    # 28 Dec 2024, a working Saturday before the New Year break.
    assert CAL.deadline(datetime(2024, 12, 27, 9, 0)).due == msk(2024, 12, 28, 9)
    assert CAL.deadline(datetime(2024, 12, 28, 9, 0)).due == msk(2025, 1, 9, 9)


def test_school_extra_day_off():
    school = SchoolHours(extra_days_off={date(2026, 12, 9): "Санитарный день"})
    cal = WorkCalendar(school)
    info = cal.day_info(date(2026, 12, 9))
    assert (info.working, info.kind) == (False, SCHOOL_DAY_OFF)
    assert info.note == "Выходной день школы: Санитарный день"
    d = cal.deadline(datetime(2026, 12, 8, 15, 0))
    assert d.due == msk(2026, 12, 10, 15)
    received_then = cal.deadline(datetime(2026, 12, 9, 11, 0))
    assert received_then.reasons[0].startswith(
        "Письмо пришло в среду 9 декабря — выходной день школы: Санитарный день;"
    )


def test_school_extra_working_day():
    cal = WorkCalendar(SchoolHours(extra_working_days={"2026-12-12": "Отработка"}))
    info = cal.day_info(date(2026, 12, 12))
    assert info.working and info.kind == SCHOOL_WORKDAY
    assert info.note == "Рабочий день школы: Отработка"
    assert cal.deadline(datetime(2026, 12, 11, 16, 0)).due == msk(2026, 12, 12, 16)


def test_other_time_zone():
    cal = WorkCalendar(SchoolHours(timezone="Asia/Vladivostok"))
    naive = cal.deadline(datetime(2026, 12, 8, 15, 0))
    assert naive.received == datetime(2026, 12, 8, 15, tzinfo=VLAT)
    assert naive.due == utc(2026, 12, 9, 5)
    # An aware time is converted: 05:00 UTC is 15:00 in Vladivostok.
    aware = cal.deadline(utc(2026, 12, 8, 5, 0))
    assert aware.received == utc(2026, 12, 8, 5, 0)
    assert aware.starts == datetime(2026, 12, 8, 15, tzinfo=VLAT)
    assert aware.due == naive.due
    # 23:00 Moscow on Tuesday is Wednesday 06:00 in Vladivostok: before hours.
    early = cal.deadline(msk(2026, 12, 8, 23, 0))
    assert early.starts == datetime(2026, 12, 9, 8, tzinfo=VLAT)
    assert early.due == utc(2026, 12, 9, 22)  # Thursday 08:00 local


def test_six_day_week():
    cal = WorkCalendar(SchoolHours(six_day_week=True))
    assert cal.is_working_day(date(2026, 12, 12))
    assert not cal.is_working_day(date(2026, 12, 13))
    assert cal.deadline(datetime(2026, 12, 11, 16, 0)).due == msk(2026, 12, 12, 16)
    assert cal.deadline(datetime(2026, 12, 12, 10, 0)).due == msk(2026, 12, 14, 10)
    assert cal.deadline(datetime(2026, 12, 13, 10, 0)).due == msk(2026, 12, 15, 8)
    # Holidays stay off; Saturday 7 March 2026, the eve of 8 March, is shortened.
    assert not cal.is_working_day(date(2026, 1, 3))
    assert cal.day_info(date(2026, 3, 7)).shortened
    official = CAL.production_calendar(2026)
    six = cal.production_calendar(2026)
    assert six["working_hours"] == official["working_hours"] == 1972
    assert six["working_days"] > official["working_days"]
    assert "2026-03-07" in six["months"][2]["shortened"]


# --- working time -----------------------------------------------------------------------


def test_working_hours_between_across_weekend():
    # Friday 15:00 -> Monday 10:00: 2 hours on Friday, 2 on Monday.
    assert CAL.working_hours_between(datetime(2026, 12, 11, 15), datetime(2026, 12, 14, 10)) == 4.0
    assert CAL.working_hours_between(datetime(2026, 12, 14, 10), datetime(2026, 12, 11, 15)) == -4.0
    # A shortened day counts 8 hours (30 April 2026); the May days off count 0.
    assert CAL.working_hours_between(datetime(2026, 4, 30, 0), datetime(2026, 5, 4, 0)) == 8.0
    # Outside working time nothing passes.
    assert CAL.working_hours_between(datetime(2026, 12, 12, 9), datetime(2026, 12, 13, 18)) == 0.0
    # Aware and naive mix: naive is school-local.
    assert CAL.working_hours_between(utc(2026, 12, 8, 5), datetime(2026, 12, 8, 9, 30)) == 1.5


def test_add_working_hours():
    assert CAL.add_working_hours(datetime(2026, 12, 11, 15), 4) == msk(2026, 12, 14, 10)
    # Ending exactly at closing time gives the closing time.
    assert CAL.add_working_hours(datetime(2026, 12, 11, 15), 2) == msk(2026, 12, 11, 17)
    # From a day off: counting starts at the next opening.
    assert CAL.add_working_hours(datetime(2026, 12, 12, 12), 1.5) == msk(2026, 12, 14, 9, 30)
    assert CAL.add_working_hours(datetime(2026, 12, 12, 12), 0) == msk(2026, 12, 12, 12)
    with pytest.raises(ValueError):
        CAL.add_working_hours(datetime(2026, 12, 12, 12), -1)


@pytest.mark.parametrize(
    "start", [datetime(2026, 4, 29, 16, 30), datetime(2025, 12, 30, 10), datetime(2026, 12, 11, 8)]
)
@pytest.mark.parametrize("hours", [0.25, 7.5, 9, 30])
def test_add_and_between_agree(start, hours):
    end = CAL.add_working_hours(start, hours)
    assert CAL.working_hours_between(start, end) == pytest.approx(hours)


def test_fractional_working_days():
    # Tuesday 15:00: one working day is 9 hours of working time (2 + 7).
    reminder = CAL.deadline(datetime(2026, 12, 8, 15, 0), 0.75)
    assert reminder.due == msk(2026, 12, 9, 12, 45)
    assert reminder.reasons[-1] == (
        "Срок — 0,75 рабочего дня: до среды 9 декабря, 12:45 (по местному времени)."
    )
    half = CAL.deadline(datetime(2026, 12, 8, 8, 0), 0.5)
    assert half.due == msk(2026, 12, 8, 12, 30)
    two = CAL.deadline(datetime(2026, 12, 8, 15, 0), 2)
    assert two.due == msk(2026, 12, 10, 15)
    assert two.reasons[-1].startswith("Срок — 2 рабочих дня: до четверга 10 декабря, 15:00")
    one_and_half = CAL.deadline(datetime(2026, 12, 8, 15, 0), 1.5)
    assert msk(2026, 12, 9, 15) < one_and_half.due < msk(2026, 12, 10, 15)
    # Fractions never overshoot the whole day, even next to a shortened day.
    for received in (datetime(2026, 4, 29, 16, 30), datetime(2025, 12, 30, 10)):
        whole = CAL.deadline(received).due
        assert CAL.deadline(received, 0.75).due < whole
        assert CAL.deadline(received, 0.999999).due <= whole


# --- configuration ------------------------------------------------------------------


def test_school_hours_normalisation_and_validation():
    hours = SchoolHours(start="09:00", end="15:30", extra_days_off={"2026-09-01": "Линейка"})
    assert hours.start == time(9) and hours.end == time(15, 30)
    assert hours.extra_days_off == {date(2026, 9, 1): "Линейка"}
    assert hash(hours) == hash(SchoolHours(start=time(9), end=time(15, 30),
                                           extra_days_off={date(2026, 9, 1): "Линейка"}))
    assert WorkCalendar(hours).day_info(date(2026, 12, 8)).hours == 6.5
    with pytest.raises(ValueError):
        SchoolHours(start=time(17), end=time(8))
    with pytest.raises(ValueError):
        SchoolHours(extra_days_off={date(2026, 1, 12): "a"}, extra_working_days={date(2026, 1, 12): "b"})
    with pytest.raises(Exception):
        SchoolHours(timezone="Mars/Olympus")
