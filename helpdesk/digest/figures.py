"""The figures of a digest: database rows in, plain dataclasses out.

``compute(calendar, roster, start, end)`` reads the appeals (and the manual
reassignments) that matter for the period ``[start, end)`` and counts in Python.
The state "now" is taken at ``end``, so a digest for a past day shows that day as
it was: an appeal is *unanswered* at moment T when it was received before T and
neither answered nor closed before T; *overdue* when, in addition, its deadline
was before T.

Definitions (they are what the letter says):

- received: ``received_at`` in the period;
- answered: ``answered_at`` in the period; *in time*: ``answered_at <= due_at``;
- median answer time: working hours from receipt to answer, over the appeals
  answered in the period;
- the chart: for each of the last 14 working days before ``end``, the appeals
  received that day and how many of them were answered in time (by ``end``).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Iterable

from ..compose import CATEGORY_NAMES
from ..domain import Roster
from ..routing.models import RoutingCorrection
from ..sla.calendar import WorkCalendar
from ..sla.notices import late_text
from ..store.models import Appeal, as_aware, to_utc_naive

CHART_DAYS = 14


@dataclass(frozen=True)
class OverdueRow:
    number: int
    class_name: str
    subject: str
    title: str
    student: str  # "Кузьмин Лев Сергеевич, 7В" or ""
    teacher: str
    teacher_email: str
    hours_late: float
    late: str  # "2 ч 30 мин"


@dataclass
class GroupRow:
    """One line of a per-teacher, per-class or per-subject table."""

    name: str
    received: int = 0  # in the period
    answered: int = 0  # in the period
    in_time: int = 0  # of those answered, in time
    open: int = 0  # unanswered at the end of the period
    late: int = 0  # of those unanswered, overdue


@dataclass(frozen=True)
class TriageRow:
    number: int
    title: str
    sender: str
    assignee: str
    category: str


@dataclass(frozen=True)
class CorrectionRow:
    number: int
    old: str
    new: str
    who: str
    note: str


@dataclass(frozen=True)
class DayBar:
    day: date
    label: str  # "пн 30.11"
    received: int
    in_time: int
    received_pct: int  # bar lengths, % of the busiest day
    in_time_pct: int
    text_bar: str = ""  # "####--": in time, then the rest (one mark per appeal up to 20 a day)


@dataclass
class Figures:
    start: datetime  # aware
    end: datetime  # aware
    received: int = 0
    answered: int = 0
    answered_in_time: int = 0
    overdue_now: int = 0
    open_now: int = 0
    median_hours: float | None = None
    overdue: list[OverdueRow] = field(default_factory=list)
    teachers: list[GroupRow] = field(default_factory=list)
    classes: list[GroupRow] = field(default_factory=list)
    subjects: list[GroupRow] = field(default_factory=list)
    triage: list[TriageRow] = field(default_factory=list)
    corrections: list[CorrectionRow] = field(default_factory=list)
    days: list[DayBar] = field(default_factory=list)

    @property
    def in_time_pct(self) -> int | None:
        if not self.answered:
            return None
        return round(100 * self.answered_in_time / self.answered)


_WEEKDAY_SHORT = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")


def chart_days(calendar: WorkCalendar, end: datetime, n: int = CHART_DAYS) -> list[date]:
    """The last ``n`` working days strictly before the local date of ``end``, oldest first."""
    d = calendar.localize(end).date()
    days: list[date] = []
    for _ in range(3 * 366):
        d -= timedelta(days=1)
        if calendar.is_working_day(d):
            days.append(d)
            if len(days) == n:
                break
    return days[::-1]


def _relevant(lo: datetime, start: datetime, end: datetime) -> Iterable[Appeal]:
    """Appeals received before ``end`` that the period, the chart or the state at ``end`` needs."""
    lo_n, start_n, end_n = to_utc_naive(lo), to_utc_naive(start), to_utc_naive(end)
    return (
        Appeal.select()
        .where(
            (Appeal.received_at < end_n)
            & (
                (Appeal.received_at >= lo_n)
                | (Appeal.answered_at >= start_n)
                | (Appeal.closed_at >= end_n)
                | (Appeal.answered_at.is_null() & Appeal.closed_at.is_null())
            )
        )
        .order_by(Appeal.number)
    )


def _student_label(roster: Roster, appeal: Appeal) -> str:
    if not appeal.student:
        return ""
    student = roster.student(appeal.student)
    name = student.full_name if student else appeal.student
    cls = (student.class_name if student else None) or appeal.class_name
    return f"{name}, {cls}" if cls else name


def compute(calendar: WorkCalendar, roster: Roster, start: datetime, end: datetime) -> Figures:
    """The figures of ``[start, end)`` (aware datetimes); the state "now" is at ``end``."""
    fig = Figures(start=start, end=end)
    days = chart_days(calendar, end)
    lo = min(start, datetime.combine(days[0], datetime.min.time(), tzinfo=calendar.hours.tz)) if days else start
    by_day = {d: [0, 0] for d in days}
    teachers: dict[str, GroupRow] = {}
    classes: dict[str, GroupRow] = {}
    subjects: dict[str, GroupRow] = {}
    answer_hours: list[float] = []

    def groups(a: Appeal) -> list[GroupRow]:
        rows = [teachers.setdefault(a.assignee, GroupRow(roster.name_of(a.assignee)))]
        cls = a.class_name or "без класса"
        rows.append(classes.setdefault(cls, GroupRow(cls)))
        subj = a.subject or CATEGORY_NAMES.get(a.category, a.category)
        if not a.subject:
            subj = f"без предмета ({subj})"
        rows.append(subjects.setdefault(subj, GroupRow(subj)))
        return rows

    for a in _relevant(lo, start, end):
        received = as_aware(a.received_at)
        due = as_aware(a.due_at)
        answered = as_aware(a.answered_at)
        closed = as_aware(a.closed_at)
        in_time = answered is not None and due is not None and answered <= due
        local_day = calendar.localize(received).date()
        if local_day in by_day:
            by_day[local_day][0] += 1
            if in_time and answered < end:
                by_day[local_day][1] += 1
        in_period = start <= received < end
        answered_in_period = answered is not None and start <= answered < end
        unanswered = (answered is None or answered >= end) and (closed is None or closed >= end)
        overdue = unanswered and due is not None and due < end
        if not (in_period or answered_in_period or unanswered):
            continue  # only needed for the chart
        rows = groups(a)
        if in_period:
            fig.received += 1
            for r in rows:
                r.received += 1
            if a.triage:
                fig.triage.append(TriageRow(
                    a.number, a.title or "(без темы)",
                    _sender_label(roster, a), roster.name_of(a.assignee),
                    CATEGORY_NAMES.get(a.category, a.category),
                ))
        if answered_in_period:
            fig.answered += 1
            fig.answered_in_time += in_time
            answer_hours.append(calendar.working_hours_between(received, answered))
            for r in rows:
                r.answered += 1
                r.in_time += in_time
        if unanswered:
            fig.open_now += 1
            for r in rows:
                r.open += 1
        if overdue:
            fig.overdue_now += 1
            for r in rows:
                r.late += 1
            hours = calendar.working_hours_between(due, end)
            fig.overdue.append(OverdueRow(
                number=a.number, class_name=a.class_name or "", subject=a.subject or "",
                title=a.title or "(без темы)", student=_student_label(roster, a),
                teacher=roster.name_of(a.assignee), teacher_email=a.assignee,
                hours_late=hours, late=late_text(hours) or "меньше минуты",
            ))
    fig.median_hours = statistics.median(answer_hours) if answer_hours else None
    fig.overdue.sort(key=lambda r: (-r.hours_late, r.number))
    order = lambda r: (-r.late, -r.open, -r.received, r.name)  # noqa: E731
    fig.teachers = sorted(teachers.values(), key=order)
    fig.classes = sorted(classes.values(), key=_class_order)
    fig.subjects = sorted(subjects.values(), key=order)
    top = max((v[0] for v in by_day.values()), default=0) or 1
    per_mark = max(1, -(-top // 20))
    fig.days = [
        DayBar(d, f"{_WEEKDAY_SHORT[d.weekday()]} {d:%d.%m}", r, t,
               round(100 * r / top), round(100 * t / top),
               "#" * round(t / per_mark) + "-" * (round(r / per_mark) - round(t / per_mark)))
        for d, (r, t) in by_day.items()
    ]
    fig.corrections = [
        CorrectionRow(c.appeal_id, roster.name_of(c.old_assignee), roster.name_of(c.new_assignee),
                      roster.name_of(c.who) if c.who else "", c.note or "")
        for c in RoutingCorrection.select()
        .where((RoutingCorrection.at >= to_utc_naive(start)) & (RoutingCorrection.at < to_utc_naive(end)))
        .order_by(RoutingCorrection.at, RoutingCorrection.id)
    ]
    return fig


def _class_order(row: GroupRow) -> tuple:
    digits = "".join(ch for ch in row.name if ch.isdigit())
    return (0 if digits else 1, int(digits) if digits else 0, row.name)


def _sender_label(roster: Roster, a: Appeal) -> str:
    who = roster.name_of(a.sender)
    if who == a.sender and a.sender_name:
        who = f"{a.sender_name} <{a.sender}>"
    return who


def hours_text(hours: float | None) -> str:
    """Working hours as "3 ч 15 мин", "0 мин"; "—" for None."""
    if hours is None:
        return "—"
    return late_text(hours) or "0 мин"
