"""Reading and writing the routing state: staff absences and manual corrections.

The router itself stays pure: ``load_absences(on)`` turns the stored rows into
plain ``domain.Absence`` values that the caller passes to ``route``/``decide``.
Every change is also written to the event log in Russian.
"""
from __future__ import annotations

import json
from datetime import date

from ..domain import Absence, Roster
from ..store.models import Appeal, Event, database
from .models import RoutingCorrection, StaffAbsence
from .router import initials, russian_date


class RoutingStoreError(ValueError):
    """A request that cannot be carried out; the message says why (for the operator)."""


def _event(kind: str, message: str, *, appeal=None, **data) -> None:
    Event.create(kind=kind, message=message, appeal=appeal,
                 data=json.dumps(data, ensure_ascii=False, default=str))


def as_absence(row: StaffAbsence) -> Absence:
    return Absence(
        teacher=row.teacher,
        start=_as_date(row.start),
        end=_as_date(row.end),
        substitute=row.substitute or None,
        note=row.note or "",
    )


def _as_date(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


# --------------------------------------------------------------------------- absences


def load_absences(on: date) -> tuple[Absence, ...]:
    """The absences that cover the day ``on`` (the router needs no others)."""
    query = (StaffAbsence.select()
             .where((StaffAbsence.start <= on) & (StaffAbsence.end >= on))
             .order_by(StaffAbsence.id))
    return tuple(as_absence(row) for row in query)


def list_absences() -> list[StaffAbsence]:
    return list(StaffAbsence.select().order_by(StaffAbsence.start, StaffAbsence.id))


def absence_sentence(roster: Roster, a: Absence) -> str:
    """«Карпенко Д. А. отсутствует с 1 по 5 декабря (больничный); замещает Лисицына В. П.»."""
    who = initials(roster.name_of(a.teacher))
    if a.start == a.end:
        period = russian_date(a.start)
    elif (a.start.year, a.start.month) == (a.end.year, a.end.month):
        period = f"с {a.start.day} по {russian_date(a.end)}"
    else:
        period = f"с {russian_date(a.start, relative_to=a.end)} по {russian_date(a.end)}"
    text = f"{who} отсутствует {period}"
    if a.note:
        text += f" ({a.note})"
    if a.substitute:
        text += f"; новые обращения получает {initials(roster.name_of(a.substitute))}"
    else:
        text += ("; замены нет: новые обращения получат коллега по предмету, классный руководитель "
                 "или заместитель директора")
    return text if text.endswith(".") else text + "."


def add_absence(roster: Roster, teacher: str, start: date, end: date, *,
                substitute: str | None = None, note: str = "") -> StaffAbsence:
    teacher = teacher.strip().lower()
    substitute = substitute.strip().lower() if substitute else None
    if roster.staff_member(teacher) is None:
        raise RoutingStoreError(f"{teacher}: not a staff member in the roster")
    if substitute is not None:
        if roster.staff_member(substitute) is None:
            raise RoutingStoreError(f"--substitute {substitute}: not a staff member in the roster")
        if substitute == teacher:
            raise RoutingStoreError("--substitute: a teacher cannot substitute for themselves")
    if end < start:
        raise RoutingStoreError(f"--to {end.isoformat()} is before --from {start.isoformat()}")
    with database.atomic():
        row = StaffAbsence.create(teacher=teacher, start=start, end=end, substitute=substitute,
                                  note=(note or "").strip())
        _event("absence_added", "Отмечено отсутствие: " + absence_sentence(roster, as_absence(row)),
               absence=row.id, teacher=teacher, start=start, end=end, substitute=substitute)
    return row


def remove_absence(roster: Roster, absence_id: int) -> StaffAbsence:
    row = StaffAbsence.get_or_none(StaffAbsence.id == absence_id)
    if row is None:
        raise RoutingStoreError(f"no absence with id {absence_id}")
    with database.atomic():
        sentence = absence_sentence(roster, as_absence(row))
        row.delete_instance()
        _event("absence_removed", "Отметка об отсутствии снята: " + sentence, absence=absence_id,
               teacher=row.teacher)
    return row


# --------------------------------------------------------------------------- corrections


def record_correction(appeal: Appeal, old_assignee: str, new_assignee: str, *, source: str,
                      who: str = "", note: str = "") -> RoutingCorrection:
    """Write down that the rules' assignee of ``appeal`` was corrected by hand.

    ``appeal`` holds what the rules decided (category, class, subject, triage,
    confidence); call this in the transaction that reassigns it.
    """
    return RoutingCorrection.create(
        appeal=appeal.number,
        old_assignee=old_assignee,
        new_assignee=new_assignee,
        source=source,
        who=who,
        note=(note or "").strip(),
        category=appeal.category or "",
        class_name=appeal.class_name,
        subject=appeal.subject,
        triage=bool(appeal.triage),
        confidence=float(appeal.confidence if appeal.confidence is not None else 1.0),
    )


def list_corrections() -> list[RoutingCorrection]:
    return list(RoutingCorrection.select().order_by(RoutingCorrection.at, RoutingCorrection.id))
