"""The school's working-time calendar: pure functions, no I/O.

Working days follow the Russian production calendar (производственный календарь)
as published by the `holidays` package (``holidays.country_holidays("RU")``):

* non-working public holidays of the Labour Code, art. 112 (named holidays:
  "Новогодние каникулы", "День Победы", ...);
* days off moved by government decree (the package's "substituted" holidays) and
  the weekend days that become working days in exchange
  (``HolidayBase.weekend_workdays``);
* days off that replace a holiday falling on a weekend (art. 112, part 2; the
  package's "observed" days).

Nothing that the package knows is hard-coded here. ``_PACKAGE_GAPS`` is the one
place for facts of the official calendar that the package lacks; at the time of
writing (holidays 0.109) it is empty, because the package matches the official
tables for 2021-2026 (see tests/test_calendar.py).

Shortened days (Labour Code, art. 95: the working day immediately before a
non-working holiday is one hour shorter) are derived, see ``_is_pre_holiday``.

The school works ``SchoolHours.start``-``SchoolHours.end`` local time on its
working days; a shortened day ends one hour earlier. All working-time arithmetic
is done on those windows; differences are taken in UTC so that a DST change (none
in Russia since 2014, but a school may sit elsewhere) cannot distort them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping
from zoneinfo import ZoneInfo

import holidays

__all__ = ["SchoolHours", "DayInfo", "Deadline", "WorkCalendar"]

ONE_DAY = timedelta(days=1)
ONE_HOUR = timedelta(hours=1)
# How far a search for the next working day may go before the configuration is
# declared broken (e.g. every day marked as a school day off).
_MAX_SEARCH_DAYS = 3 * 366

# Official-norm hours for a 40-hour week (Order of the Ministry of Health and
# Social Development No. 588n): 8 hours a day, 7 on a shortened pre-holiday day.
NORM_DAY_HOURS = 8
NORM_SHORT_DAY_HOURS = 7

SAT, SUN = 5, 6

# Day kinds (DayInfo.kind).
WORKDAY = "workday"                # an ordinary working day
MOVED_WORKDAY = "moved_workday"    # a weekend day made a working day by decree
SCHOOL_WORKDAY = "school_workday"  # made a working day by the school
WEEKEND = "weekend"                # the weekly rest day(s)
HOLIDAY = "holiday"                # a non-working public holiday (art. 112)
MOVED_DAY_OFF = "moved_day_off"    # a day off moved by decree or after a weekend holiday
SCHOOL_DAY_OFF = "school_day_off"  # a day off of the school only

# Facts of the official calendar that `holidays` lacks, keyed by year. Only ever
# ADDS to what the package says. Shape:
#   {year: {"days_off": {date: "name"},            # extra non-working holidays
#           "weekend_workdays": {date: date}}}     # working weekend day -> the day
#                                                  # off it was swapped with
# Empty for holidays 0.109: 2021-2026 computed from the package match the
# published norms exactly.
_PACKAGE_GAPS: Mapping[int, Mapping[str, Mapping[date, object]]] = MappingProxyType({})

# --- Russian words -----------------------------------------------------------

WEEKDAY_NAMES = ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье")
_WEEKDAY_ACC = ("понедельник", "вторник", "среду", "четверг", "пятницу", "субботу", "воскресенье")
_WEEKDAY_GEN = ("понедельника", "вторника", "среды", "четверга", "пятницы", "субботы", "воскресенья")
MONTHS_GENITIVE = (
    "января", "февраля", "марта", "апреля", "мая", "июня",
    "июля", "августа", "сентября", "октября", "ноября", "декабря",
)


def _day_month(d: date, year_of: int | None = None) -> str:
    """"5 декабря"; the year is added when it differs from ``year_of``."""
    text = f"{d.day} {MONTHS_GENITIVE[d.month - 1]}"
    if year_of is not None and d.year != year_of:
        text += f" {d.year} года"
    return text


def _on_day(d: date, year_of: int | None = None) -> str:
    """"во вторник 8 декабря", "в субботу 5 декабря"."""
    prep = "во" if d.weekday() == 1 else "в"
    return f"{prep} {_WEEKDAY_ACC[d.weekday()]} {_day_month(d, year_of)}"


def _until_day(d: date, year_of: int | None = None) -> str:
    """"до вторника 8 декабря"."""
    return f"до {_WEEKDAY_GEN[d.weekday()]} {_day_month(d, year_of)}"


def _from_day(d: date, year_of: int | None = None) -> str:
    """"с субботы 4 января"."""
    prep = "со" if d.weekday() == 2 else "с"
    return f"{prep} {_WEEKDAY_GEN[d.weekday()]} {_day_month(d, year_of)}"


def _hhmm(t: datetime | time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


def _date_range(first: date, last: date) -> str:
    """"9 марта", "с 1 по 4 мая", "с 31 декабря по 11 января"."""
    if first == last:
        return _day_month(first)
    if (first.year, first.month) == (last.year, last.month):
        return f"с {first.day} по {_day_month(last)}"
    return f"с {_day_month(first)} по {_day_month(last)}"


def _working_days_phrase(n: float) -> str:
    """"один рабочий день", "2 рабочих дня", "5 рабочих дней", "0,75 рабочего дня"."""
    if n == 1:
        return "один рабочий день"
    if n != int(n):
        return f"{n:g}".replace(".", ",") + " рабочего дня"
    k = int(n)
    if k % 10 == 1 and k % 100 != 11:
        word = "рабочий день"
    elif k % 10 in (2, 3, 4) and k % 100 not in (12, 13, 14):
        word = "рабочих дня"
    else:
        word = "рабочих дней"
    return f"{k} {word}"


# --- The official calendar, as the `holidays` package knows it ---------------


@dataclass(frozen=True)
class _YearFacts:
    """The official calendar of one year (five-day week), school-independent."""

    holidays: Mapping[date, str]          # non-working public holidays, art. 112
    moved_days_off: Mapping[date, date]   # day off by decree -> the day it was moved from
    observed_days_off: Mapping[date, str]  # day off after a weekend holiday -> package name
    weekend_workdays: Mapping[date, date]  # working weekend day -> the day off it pays for


def _substitutions(table: Mapping[int, object], year: int) -> Iterator[tuple[date, date]]:
    """(day off, moved-from day) pairs of a year from the package's decree table.

    The table is ``special_public_holidays`` of the RU entity: per year, either one
    entry or a tuple of entries; substitutions are ``(to_month, to_day, from_month,
    from_day[, from_year])``, other entries are 3-tuples (month, day, name).
    """
    entries = table.get(year, ())
    if entries and not isinstance(entries[0], tuple):
        entries = (entries,)
    for entry in entries:
        if len(entry) >= 4 and all(isinstance(x, int) for x in entry):
            to_month, to_day, from_month, from_day, *rest = entry
            from_year = rest[0] if rest else year
            yield date(year, to_month, to_day), date(from_year, from_month, from_day)


@lru_cache(maxsize=64)
def _year_facts(year: int) -> _YearFacts:
    """Read one year of the Russian production calendar from `holidays`."""
    with_observed = holidays.country_holidays("RU", years=year, language="ru")
    without_observed = holidays.country_holidays("RU", years=year, language="ru", observed=False)
    table = getattr(with_observed, "special_public_holidays", {}) or {}
    moved = dict(_substitutions(table, year))
    workdays = set(with_observed.weekend_workdays)
    gaps = _PACKAGE_GAPS.get(year, {})
    named = {d: name for d, name in without_observed.items() if d not in moved}
    named.update({d: str(name) for d, name in gaps.get("days_off", {}).items()})
    observed = {d: name for d, name in with_observed.items() if d not in without_observed}
    # Pair each working weekend day with the day off it was exchanged for.
    swaps = {src: dst for dst, src in moved.items() if src in workdays}
    for d in workdays - swaps.keys():
        swaps[d] = d  # no known partner: the day only counts as a working day
    swaps.update(gaps.get("weekend_workdays", {}))  # type: ignore[arg-type]
    return _YearFacts(
        holidays=MappingProxyType(named),
        moved_days_off=MappingProxyType(moved),
        observed_days_off=MappingProxyType(observed),
        weekend_workdays=MappingProxyType(swaps),
    )


def _holiday_name(d: date) -> str | None:
    """Name of the non-working public holiday on ``d``, if any."""
    return _year_facts(d.year).holidays.get(d)


def _weekend_workday_partner(d: date) -> date | None:
    """For a weekend day made working by decree: the day off it was swapped with.

    A decree may move a day across a year boundary, so neighbouring years are
    consulted too. None when ``d`` is not such a day.
    """
    for year in (d.year, d.year - 1, d.year + 1):
        partner = _year_facts(year).weekend_workdays.get(d)
        if partner is not None:
            return partner
    return None


def _is_pre_holiday(d: date) -> bool:
    """Whether a working day ``d`` is shortened by one hour (art. 95).

    The rule that reproduces the official tables (checked for 2021-2026):

    1. ``d`` is directly followed by a named non-working holiday (art. 112) --
       whatever weekday it falls on (Fri 8 May 2026 before Sat 9 May). Days off
       that are merely moved (by decree, or after a weekend holiday) do not count:
       Tue 30 Dec 2025 before the moved day off 31 Dec is a full day, and so is
       Wed 7 May 2025 before the moved day off 8 May.
    2. ``d`` is a weekend day made working by decree, and the day off it was
       swapped with would itself have been a pre-holiday day by rule 1: the
       shortening moves together with the working day. Sat 2 Nov 2024 (swapped
       with Tue 30 Apr, the eve of 1 May) and Sat 1 Nov 2025 (swapped with
       Mon 3 Nov, the eve of 4 Nov) are shortened; Sat 27 Apr 2024 (swapped with
       Mon 29 Apr) and Sat 28 Dec 2024 (with Mon 30 Dec) are not.
    """
    if _holiday_name(d + ONE_DAY) is not None:
        return True
    partner = _weekend_workday_partner(d)
    return partner is not None and partner != d and _holiday_name(partner + ONE_DAY) is not None


def _official_status(d: date, six_day_week: bool) -> tuple[str, str]:
    """(kind, note) of ``d`` in the official calendar, before school overrides.

    Six-day week (a documented simplification): only Sunday is the weekly rest
    day; every day off of the five-day calendar (holidays, days moved by decree
    or after a weekend holiday) stays a day off.
    """
    facts = _year_facts(d.year)
    name = facts.holidays.get(d)
    if name is not None:
        return HOLIDAY, name
    if d in facts.moved_days_off:
        source = facts.moved_days_off[d]
        return MOVED_DAY_OFF, f"Перенесённый выходной день ({_from_day(source, d.year)})"
    if d in facts.observed_days_off:
        return MOVED_DAY_OFF, _observed_note(d, facts.observed_days_off[d])
    weekday = d.weekday()
    is_rest_day = weekday == SUN or (weekday == SAT and not six_day_week)
    if is_rest_day:
        if _weekend_workday_partner(d) is not None:
            return MOVED_WORKDAY, f"Перенесённый рабочий день ({WEEKDAY_NAMES[weekday]})"
        return WEEKEND, "Выходной"
    return WORKDAY, "Рабочий день"


def _observed_note(d: date, package_name: str) -> str:
    """Note for a day off given instead of a holiday that fell on a weekend."""
    for back in range(1, 8):
        origin = d - back * ONE_DAY
        name = _holiday_name(origin)
        if name is not None and origin.weekday() in (SAT, SUN):
            return (
                f"Перенесённый выходной день ({name}, {_day_month(origin, d.year)}, "
                f"пришёлся на {_WEEKDAY_ACC[origin.weekday()]})"
            )
    return f"Перенесённый выходной день ({package_name})"


# --- Public value types --------------------------------------------------------


def _as_date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _as_time(value: time | str) -> time:
    return value if isinstance(value, time) else time.fromisoformat(str(value))


def _frozen_days(days: Mapping[date | str, str] | Iterable[date | str]) -> Mapping[date, str]:
    if isinstance(days, Mapping):
        items = {_as_date(d): str(note) for d, note in days.items()}
    else:
        items = {_as_date(d): "" for d in days}
    return MappingProxyType(items)


@dataclass(frozen=True)
class SchoolHours:
    """The school's working hours and its own deviations from the official calendar.

    ``start``/``end`` may be given as "HH:MM" strings, the day maps' keys as ISO
    dates; they are normalised. The maps are made read-only.
    """

    timezone: str = "Europe/Moscow"
    start: time = time(8, 0)
    end: time = time(17, 0)
    six_day_week: bool = False
    extra_days_off: Mapping[date, str] = field(default_factory=dict)
    extra_working_days: Mapping[date, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # raises for an unknown zone
        start, end = _as_time(self.start), _as_time(self.end)
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("school hours are local wall-clock times, without a time zone")
        if datetime.combine(date.min, end) - datetime.combine(date.min, start) <= ONE_HOUR:
            raise ValueError(f"working hours {start}-{end}: the end must be over an hour after the start")
        off, extra = _frozen_days(self.extra_days_off), _frozen_days(self.extra_working_days)
        if both := sorted(off.keys() & extra.keys()):
            raise ValueError(f"days both off and working for the school: {both}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "extra_days_off", off)
        object.__setattr__(self, "extra_working_days", extra)

    def __hash__(self) -> int:
        return hash((
            self.timezone, self.start, self.end, self.six_day_week,
            tuple(sorted(self.extra_days_off.items())),
            tuple(sorted(self.extra_working_days.items())),
        ))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class DayInfo:
    """One calendar day as the school sees it.

    ``hours`` is the length of the school's working time that day (0 on a day off);
    ``kind`` is one of the module constants WORKDAY, MOVED_WORKDAY, SCHOOL_WORKDAY,
    WEEKEND, HOLIDAY, MOVED_DAY_OFF, SCHOOL_DAY_OFF.
    """

    date: date
    working: bool
    shortened: bool
    hours: float
    note: str
    kind: str = WORKDAY


@dataclass(frozen=True)
class Deadline:
    """When an answer is due, and why (``reasons`` are Russian sentences)."""

    received: datetime  # aware, as given (a naive input gets the school's zone)
    starts: datetime    # when the clock starts; aware, school-local
    due: datetime       # aware, UTC
    reasons: tuple[str, ...]


# --- The calendar -------------------------------------------------------------------


def _elapsed(a: datetime, b: datetime) -> timedelta:
    """b - a as real elapsed time (aware datetimes of one zone subtract as wall time)."""
    return b.astimezone(timezone.utc) - a.astimezone(timezone.utc)


class WorkCalendar:
    """Working days and working time of a school (see the module docstring)."""

    def __init__(self, hours: SchoolHours = SchoolHours()) -> None:
        self.hours = hours
        self._tz = ZoneInfo(hours.timezone)
        self._days: dict[date, DayInfo] = {}

    # -- days --

    def day_info(self, d: date) -> DayInfo:
        if isinstance(d, datetime):
            d = d.date()
        info = self._days.get(d)
        if info is None:
            info = self._days[d] = self._make_day_info(d)
        return info

    def _make_day_info(self, d: date) -> DayInfo:
        school = self.hours
        if d in school.extra_days_off:
            note = school.extra_days_off[d]
            return DayInfo(d, False, False, 0.0, _school_note("Выходной день школы", note), SCHOOL_DAY_OFF)
        kind, note = _official_status(d, school.six_day_week)
        if d in school.extra_working_days and kind not in (WORKDAY, MOVED_WORKDAY):
            kind, note = SCHOOL_WORKDAY, _school_note("Рабочий день школы", school.extra_working_days[d])
        if kind not in (WORKDAY, MOVED_WORKDAY, SCHOOL_WORKDAY):
            return DayInfo(d, False, False, 0.0, note, kind)
        shortened = _is_pre_holiday(d)
        if shortened:
            short_note = "Предпраздничный день: на час короче"
            note = short_note if kind == WORKDAY else f"{note}. {short_note}"
        length = datetime.combine(d, school.end) - datetime.combine(d, school.start)
        hours = (length - (ONE_HOUR if shortened else timedelta())) / ONE_HOUR
        return DayInfo(d, True, shortened, hours, note, kind)

    def is_working_day(self, d: date) -> bool:
        return self.day_info(d).working

    def working_window(self, d: date) -> tuple[datetime, datetime] | None:
        """The day's working time as aware local datetimes, or None on a day off."""
        info = self.day_info(d)
        if not info.working:
            return None
        start = datetime.combine(info.date, self.hours.start, tzinfo=self._tz)
        end = datetime.combine(info.date, self.hours.end, tzinfo=self._tz)
        if info.shortened:
            end = (end.astimezone(timezone.utc) - ONE_HOUR).astimezone(self._tz)
        return start, end

    def next_working_day(self, d: date) -> date:
        """The first working day strictly after ``d``."""
        for step in range(1, _MAX_SEARCH_DAYS):
            candidate = d + step * ONE_DAY
            if self.is_working_day(candidate):
                return candidate
        raise ValueError(f"no working day within {_MAX_SEARCH_DAYS} days after {d}")

    # -- moments --

    def localize(self, moment: datetime) -> datetime:
        """An aware school-local datetime; a naive one is taken as school-local."""
        if moment.tzinfo is None:
            return moment.replace(tzinfo=self._tz)
        return moment.astimezone(self._tz)

    def clock_start(self, moment: datetime) -> datetime:
        """The first moment of working time at or after ``moment`` (school-local)."""
        local = self.localize(moment)
        window = self.working_window(local.date())
        if window is not None and local < window[1]:
            return max(local, window[0])
        return self._window_or_fail(self.next_working_day(local.date()))[0]

    def _window_or_fail(self, d: date) -> tuple[datetime, datetime]:
        window = self.working_window(d)
        if window is None:
            raise ValueError(f"{d} is not a working day")
        return window

    def _same_time_next_working_day(self, moment: datetime) -> datetime:
        """One working day after a moment inside working time (see ``deadline``)."""
        day = self.next_working_day(moment.date())
        start, end = self._window_or_fail(day)
        target = datetime.combine(day, moment.timetz().replace(tzinfo=None), tzinfo=self._tz)
        return min(max(target, start), end)

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Working time between two moments, in hours; negative when b < a.

        Used for "how late" (due -> answered) and answer-time statistics.
        """
        a, b = self.localize(a), self.localize(b)
        if b < a:
            return -self.working_hours_between(b, a)
        total = timedelta()
        day = a.date()
        while day <= b.date():
            window = self.working_window(day)
            if window is not None:
                lo, hi = max(a, window[0]), min(b, window[1])
                if lo < hi:
                    total += _elapsed(lo, hi)
            day += ONE_DAY
        return total / ONE_HOUR

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The earliest moment when ``hours`` of working time have passed since ``start``.

        Returns an aware school-local datetime; 0 hours returns ``start`` itself.
        Time ending exactly at the close of a working day gives that close, not
        the next morning.
        """
        if hours < 0 or math.isnan(hours):
            raise ValueError(f"hours must be non-negative, got {hours}")
        moment = self.localize(start)
        remaining = timedelta(hours=hours)
        if not remaining:
            return moment
        day = moment.date()
        for _ in range(_MAX_SEARCH_DAYS * 50):
            window = self.working_window(day)
            if window is not None and moment < window[1]:
                begin = max(moment, window[0])
                available = _elapsed(begin, window[1])
                if remaining <= available:
                    return (begin.astimezone(timezone.utc) + remaining).astimezone(self._tz)
                remaining -= available
            day += ONE_DAY
            moment = datetime.combine(day, time(0), tzinfo=self._tz)
        raise ValueError("working time search ran too far; check the school calendar")

    # -- deadlines --

    def deadline(self, received: datetime, working_days: float = 1.0) -> Deadline:
        """When an answer to a letter received at ``received`` is due.

        Definitions:

        * The clock starts at ``received`` if that is inside working time,
          otherwise at the start of the next working time (a letter of Saturday
          starts the clock on Monday at 08:00; one of 18:00 on the next working
          morning).
        * "One working day" is the length of the working day at the start: the
          answer is due at the same clock time on the next working day
          (Tuesday 15:00 -> Wednesday 15:00, Friday 16:00 -> Monday 16:00, a
          clock started on Monday 08:00 -> Tuesday 08:00). Should that day be
          shorter (a pre-holiday day ends an hour earlier), the time is clamped
          into its working window, so the answer is due when it closes.
        * N whole working days repeat that step N times.
        * A fraction ``f`` of a working day (0.5 of a day, or a reminder at 0.75)
          is that share of the working time of the day it falls in: from the
          point T reached after the whole days, ``add_working_hours(T, f * h)``
          where ``h`` is the working time from T to one working day after T. So
          1.0 gives exactly the whole-day answer and smaller fractions are
          strictly earlier.

        ``due`` is returned in UTC; ``starts`` in school-local time.
        """
        if working_days < 0 or math.isnan(working_days):
            raise ValueError(f"working_days must be non-negative, got {working_days}")
        received_aware = self.localize(received) if received.tzinfo is None else received
        local = self.localize(received)
        starts = self.clock_start(local)
        due = starts
        for _ in range(int(working_days)):
            due = self._same_time_next_working_day(due)
        fraction = working_days - int(working_days)
        if fraction:
            next_step = self._same_time_next_working_day(due)
            due = self.add_working_hours(due, fraction * self.working_hours_between(due, next_step))
        reasons = self._reasons(local, starts, due, working_days)
        return Deadline(received_aware, starts, due.astimezone(timezone.utc), reasons)

    def _reasons(self, local: datetime, starts: datetime, due: datetime, n: float) -> tuple[str, ...]:
        year = local.year
        reasons = [self._receipt_reason(local, starts)]
        gaps = list(self._days_off_between(starts.date(), due.date()))
        if gaps:
            ranges = ", ".join(_date_range(first, last) for first, last in gaps)
            single = len(gaps) == 1 and gaps[0][0] == gaps[0][1]
            reasons.append(
                f"Нерабочий день {ranges} в срок не входит." if single
                else f"Нерабочие дни {ranges} в срок не входят."
            )
        info = self.day_info(due.date())
        if info.shortened and due.date() != starts.date():
            reasons.append(
                f"{WEEKDAY_NAMES[due.weekday()].capitalize()} {_day_month(due.date(), year)} — "
                f"предпраздничный день, работа заканчивается на час раньше, в "
                f"{_hhmm(self._window_or_fail(due.date())[1])}."
            )
        reasons.append(
            f"Срок — {_working_days_phrase(n)}: {_until_day(due.date(), year)}, "
            f"{_hhmm(due)} (по местному времени)."
        )
        return tuple(reasons)

    def _receipt_reason(self, local: datetime, starts: datetime) -> str:
        year = local.year
        info = self.day_info(local.date())
        head = f"Письмо пришло {_on_day(local.date())}"
        start_at = f"{_on_day(starts.date(), year)} в {_hhmm(starts)}"
        if not info.working:
            return f"{head} — {_day_off_phrase(info)}; отсчёт начинается {start_at}."
        head += f" в {_hhmm(local)}"
        if starts == local:
            return f"{head} — в рабочее время; отсчёт начинается сразу."
        window = self._window_or_fail(local.date())
        if local < window[0]:
            return f"{head} — до начала рабочего дня; отсчёт начинается {start_at}."
        return (
            f"{head} — после окончания рабочего дня ({_hhmm(window[1])}); "
            f"отсчёт начинается {start_at}."
        )

    def _days_off_between(self, first: date, last: date) -> Iterator[tuple[date, date]]:
        """Runs of non-working days strictly between two dates, as (first, last)."""
        run_start: date | None = None
        day = first + ONE_DAY
        while day < last:
            if not self.is_working_day(day):
                run_start = run_start or day
            elif run_start is not None:
                yield run_start, day - ONE_DAY
                run_start = None
            day += ONE_DAY
        if run_start is not None:
            yield run_start, last - ONE_DAY

    # -- production calendar --

    def production_calendar(self, year: int) -> dict:
        """The official production calendar of a year, as plain JSON-ready values.

        ``{"year", "working_days", "working_hours", "months": [{"month",
        "working_days", "working_hours", "days_off", "shortened"}, ...]}``.

        The official calendar ignores the school's hours and its extra days; only
        ``six_day_week`` is honoured:

        * five-day week: days as published; hours are the norm for a 40-hour week,
          8 a day and 7 on a shortened day;
        * six-day week: working days, days off and shortened days are counted on
          the six-day schedule (Sunday the only weekly rest day, see
          ``_official_status``), while hours stay the 40-hour norm, because the
          norm is by law computed on the five-day schedule whatever the actual
          week (Order No. 588n) -- so they equal the five-day figure.
        """
        months = [self._production_month(year, month) for month in range(1, 13)]
        return {
            "year": year,
            "working_days": sum(m["working_days"] for m in months),
            "working_hours": sum(m["working_hours"] for m in months),
            "months": months,
        }

    def _production_month(self, year: int, month: int) -> dict:
        days_off: list[str] = []
        shortened: list[str] = []
        working = 0
        norm_hours = 0
        day = date(year, month, 1)
        while day.month == month:
            kind, _ = _official_status(day, self.hours.six_day_week)
            if kind in (WORKDAY, MOVED_WORKDAY):
                working += 1
                if _is_pre_holiday(day):
                    shortened.append(day.isoformat())
            else:
                days_off.append(day.isoformat())
            five_day_kind, _ = _official_status(day, False)
            if five_day_kind in (WORKDAY, MOVED_WORKDAY):
                norm_hours += NORM_SHORT_DAY_HOURS if _is_pre_holiday(day) else NORM_DAY_HOURS
            day += ONE_DAY
        return {
            "month": month,
            "working_days": working,
            "working_hours": norm_hours,
            "days_off": days_off,
            "shortened": shortened,
        }


def _school_note(prefix: str, note: str) -> str:
    return f"{prefix}: {note}" if note else prefix


def _day_off_phrase(info: DayInfo) -> str:
    """How a day off is named after "Письмо пришло ... —"."""
    if info.kind == HOLIDAY:
        return f"нерабочий праздничный день ({info.note})"
    if info.kind == MOVED_DAY_OFF:
        return info.note[0].lower() + info.note[1:]
    if info.kind == SCHOOL_DAY_OFF:
        return info.note[0].lower() + info.note[1:]
    return "выходной"
