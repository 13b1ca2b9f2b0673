"""Properties of deadlines (hypothesis) and more tables: 2027, Yekaterinburg, Kaliningrad.

The properties hold for every moment of 2024-2027 and several school set-ups:

* the deadline never moves back when the letter comes later (monotone);
* it never falls inside a non-working period: always within the working hours of
  a working day;
* it is one working day of working time after the clock starts: exactly the
  working hours of the start day, less what a shorter (pre-holiday) next day
  cuts off when the deadline is clamped to its close.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk.sla.calendar import SchoolHours, WorkCalendar

CALENDARS = {
    "moscow": WorkCalendar(),
    "six-day": WorkCalendar(SchoolHours(six_day_week=True)),
    "yekaterinburg": WorkCalendar(SchoolHours(timezone="Asia/Yekaterinburg", start="08:30", end="16:30")),
    "kaliningrad": WorkCalendar(SchoolHours(timezone="Europe/Kaliningrad", start="09:00", end="18:00")),
    "vladivostok": WorkCalendar(SchoolHours(timezone="Asia/Vladivostok")),
}

calendars = st.sampled_from(sorted(CALENDARS)).map(CALENDARS.__getitem__)
moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 20), timezones=st.just(timezone.utc)
)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(calendars, moments, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)))
def test_due_is_monotone_in_receipt_time(cal, received, later):
    assert cal.deadline(received).due <= cal.deadline(received + later).due


@PROPERTY
@given(calendars, moments, st.sampled_from([0.25, 0.5, 0.75, 1.0, 2.0]))
def test_due_is_inside_working_time(cal, received, days):
    due = cal.localize(cal.deadline(received, days).due)
    window = cal.working_window(due.date())
    assert window is not None, f"{due} falls on a day off"
    assert window[0] <= due <= window[1]
    assert cal.deadline(received, days).due > received.astimezone(timezone.utc) or days == 0


@PROPERTY
@given(calendars, moments)
def test_due_is_one_working_day_after_the_clock_start(cal, received):
    d = cal.deadline(received)
    start, due = cal.localize(d.starts), cal.localize(d.due)
    start_day = cal.day_info(start.date())
    offset = cal.working_hours_between(cal.working_window(start.date())[0], start)
    next_day_hours = cal.day_info(due.date()).hours
    expected = start_day.hours - max(0.0, offset - next_day_hours)
    assert cal.working_hours_between(start, due) == pytest.approx(expected, abs=1e-9)
    if expected == start_day.hours:
        # Not clamped: the same clock time on the next working day.
        assert (due.hour, due.minute, due.second) == (start.hour, start.minute, start.second)
    else:
        assert due == cal.working_window(due.date())[1]
    assert due.date() == cal.next_working_day(start.date())


@PROPERTY
@given(calendars, moments, st.floats(min_value=0.05, max_value=0.95))
def test_a_share_of_the_window_comes_before_the_deadline(cal, received, share):
    # What the reminder ladder relies on: 75% of the window is strictly earlier.
    d = cal.deadline(received)
    part = cal.deadline(received, share).due
    assert d.starts <= part < d.due
    elapsed = cal.working_hours_between(d.starts, part)
    total = cal.working_hours_between(d.starts, d.due)
    assert elapsed == pytest.approx(share * total, abs=1 / 3600)


# --- 2027 -------------------------------------------------------------------------------

# The 2027 calendar as published (days off moved from Sat 2 Jan to Fri 5 Nov, from Sun 3 Jan
# to Fri 31 Dec, from Sat 20 Feb to Mon 22 Feb); norms for the five-day 40-hour week.
NORMS_2027 = [
    (15, 120), (19, 151), (22, 176), (22, 175), (19, 152), (21, 167),
    (22, 176), (22, 176), (22, 176), (21, 168), (20, 159), (22, 176),
]


def test_2027_production_calendar():
    report = WorkCalendar().production_calendar(2027)
    assert (report["working_days"], report["working_hours"]) == (247, 1972)
    assert [(m["working_days"], m["working_hours"]) for m in report["months"]] == NORMS_2027
    shortened = [d for m in report["months"] for d in m["shortened"]]
    assert shortened == ["2027-02-20", "2027-04-30", "2027-06-11", "2027-11-03"]


@pytest.mark.parametrize("day, working, shortened", [
    (date(2027, 1, 8), False, False),   # New Year holidays, 1-8 January
    (date(2027, 1, 11), True, False),   # first working day
    (date(2027, 2, 20), True, True),    # working Saturday instead of Monday 22 February, shortened
    (date(2027, 2, 22), False, False),  # the day off it was swapped with
    (date(2027, 3, 8), False, False),
    (date(2027, 5, 3), False, False),   # 1 May fell on Saturday
    (date(2027, 5, 10), False, False),  # 9 May fell on Sunday
    (date(2027, 6, 14), False, False),  # 12 June fell on Saturday
    (date(2027, 11, 5), False, False),  # moved from 2 January
    (date(2027, 12, 31), False, False),  # moved from 3 January
])
def test_2027_days(day, working, shortened):
    info = WorkCalendar().day_info(day)
    assert (info.working, info.shortened) == (working, shortened)


MSK = ZoneInfo("Europe/Moscow")


@pytest.mark.parametrize("received, due", [
    (datetime(2026, 12, 30, 10, 0), datetime(2027, 1, 11, 10, 0)),   # across New Year 2027
    (datetime(2027, 2, 19, 16, 30), datetime(2027, 2, 20, 16, 0)),   # Friday -> the short Saturday
    (datetime(2027, 4, 29, 12, 0), datetime(2027, 4, 30, 12, 0)),
    (datetime(2027, 4, 30, 12, 0), datetime(2027, 5, 4, 12, 0)),     # 1-3 May off
    (datetime(2027, 11, 3, 9, 0), datetime(2027, 11, 8, 9, 0)),      # 4-7 November off
    (datetime(2027, 12, 30, 15, 0), datetime(2028, 1, 10, 15, 0)),   # 31 December moved off
])
def test_2027_deadlines(received, due):
    assert WorkCalendar().deadline(received).due == due.replace(tzinfo=MSK).astimezone(timezone.utc)


# --- time zones -----------------------------------------------------------------------------

YEKT = ZoneInfo("Asia/Yekaterinburg")  # UTC+5
KALT = ZoneInfo("Europe/Kaliningrad")  # UTC+2
UTC = timezone.utc


@pytest.mark.parametrize("zone, received, starts, due", [
    # Yekaterinburg: a naive time is the school's own.
    (YEKT, datetime(2026, 12, 1, 15, 0), datetime(2026, 12, 1, 15, 0), datetime(2026, 12, 2, 15, 0)),
    # 12:30 UTC is 17:30 there: after hours, the clock starts next morning.
    (YEKT, datetime(2026, 12, 1, 12, 30, tzinfo=UTC), datetime(2026, 12, 2, 8, 0), datetime(2026, 12, 3, 8, 0)),
    # 10:00 Moscow is 12:00 in Yekaterinburg.
    (YEKT, datetime(2026, 12, 1, 10, 0, tzinfo=MSK), datetime(2026, 12, 1, 12, 0), datetime(2026, 12, 2, 12, 0)),
    # 07:00 Moscow on Monday is already 09:00 there: inside hours.
    (YEKT, datetime(2026, 12, 7, 7, 0, tzinfo=MSK), datetime(2026, 12, 7, 9, 0), datetime(2026, 12, 8, 9, 0)),
    (YEKT, datetime(2025, 12, 30, 10, 0), datetime(2025, 12, 30, 10, 0), datetime(2026, 1, 12, 10, 0)),
    # Kaliningrad: 06:00 UTC is 08:00 there, the start of the day.
    (KALT, datetime(2026, 12, 1, 6, 0, tzinfo=UTC), datetime(2026, 12, 1, 8, 0), datetime(2026, 12, 2, 8, 0)),
    # 16:30 on Friday in Moscow is 15:30 in Kaliningrad: due Monday 15:30.
    (KALT, datetime(2026, 12, 11, 16, 30, tzinfo=MSK), datetime(2026, 12, 11, 15, 30),
     datetime(2026, 12, 14, 15, 30)),
    # 17:30 in Moscow is 16:30 in Kaliningrad: still inside its hours.
    (KALT, datetime(2026, 12, 1, 17, 30, tzinfo=MSK), datetime(2026, 12, 1, 16, 30), datetime(2026, 12, 2, 16, 30)),
    # 23:30 Kaliningrad on New Year's Eve 2026 is already 2027 in Moscow; both are off.
    (KALT, datetime(2026, 12, 31, 23, 30), datetime(2027, 1, 11, 8, 0), datetime(2027, 1, 12, 8, 0)),
])
def test_time_zones(zone, received, starts, due):
    cal = WorkCalendar(SchoolHours(timezone=zone.key))
    d = cal.deadline(received)
    assert d.starts == starts.replace(tzinfo=zone)
    assert d.due == due.replace(tzinfo=zone).astimezone(UTC)
    assert d.reasons[-1].endswith("(по местному времени).")


def test_six_day_week_in_kaliningrad():
    cal = WorkCalendar(SchoolHours(timezone="Europe/Kaliningrad", six_day_week=True))
    # Friday 16:00 -> Saturday 16:00; Saturday -> Monday; a holiday Saturday stays off.
    assert cal.localize(cal.deadline(datetime(2026, 12, 11, 16, 0)).due) == datetime(2026, 12, 12, 16, 0, tzinfo=KALT)
    assert cal.localize(cal.deadline(datetime(2026, 12, 12, 9, 0)).due) == datetime(2026, 12, 14, 9, 0, tzinfo=KALT)
    assert not cal.is_working_day(date(2027, 1, 2))
    assert cal.day_info(date(2026, 12, 12)).hours == 9.0
    assert time(8, 0) == cal.hours.start
