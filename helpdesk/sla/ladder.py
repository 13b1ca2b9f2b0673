"""The reminder and escalation ladder: who is told what, and when (pure, no I/O).

Default ladder (the school's regulation):

* level 0, a reminder to the assignee when 75% of the answer window has passed;
* level 1, at the deadline: the deputy head, with a copy to the assignee;
* level 2, one working day after the deadline: the director, with a copy to the
  assignee and the deputy head.

Config (``[sla]``, all optional; read with ``ladder_from_config``)::

    reminder_at = 0.75                    # share of the window; 0 = no reminder
    escalate_to = ["deputy", "director"]  # one level each: the first at the
                                          # deadline, then every `escalation_interval`
    escalation_interval = 1.0             # working days between escalation levels
    escalation_copy = ["assignee"]        # copied on every escalation letter; later
                                          # levels also copy earlier levels' people

Who: ``assignee``, ``class_teacher`` (of the appeal's class), a staff role of the
roster (``deputy``, ``director``, ``it``, ``teacher``), or an e-mail address.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from ..domain import Roster
from .calendar import WorkCalendar

REMINDER = "reminder"
ESCALATION = "escalation"

ASSIGNEE = "assignee"
CLASS_TEACHER = "class_teacher"
STAFF_ROLES = ("teacher", "deputy", "director", "it")

DEFAULT_REMINDER_AT = 0.75
DEFAULT_ESCALATE_TO = ("deputy", "director")
DEFAULT_ESCALATION_INTERVAL = 1.0
DEFAULT_ESCALATION_COPY = (ASSIGNEE,)

# Russian names of the recipients, for "Сообщено: ..." lines.
WHO_NAMES = {
    ASSIGNEE: "ответственный",
    CLASS_TEACHER: "классный руководитель",
    "teacher": "учитель",
    "deputy": "заместитель директора",
    "director": "директор",
    "it": "технический специалист",
}


@dataclass(frozen=True)
class Level:
    """One rung of the ladder.

    A reminder fires when ``share`` of the answer window has passed since the
    clock started; an escalation ``after_due`` working days after the deadline.
    ``to`` and ``copy`` name recipients (see the module docstring).
    """

    kind: str
    to: tuple[str, ...]
    copy: tuple[str, ...] = ()
    share: float | None = None
    after_due: float | None = None

    def __post_init__(self) -> None:
        if self.kind == REMINDER:
            if self.share is None or not 0 < self.share < 1:
                raise ValueError(f"a reminder fires at a share of the window between 0 and 1, got {self.share}")
        elif self.kind == ESCALATION:
            if self.after_due is None or self.after_due < 0 or math.isnan(self.after_due):
                raise ValueError(f"an escalation fires 0 or more working days after the deadline, got {self.after_due}")
        else:
            raise ValueError(f"unknown ladder level kind {self.kind!r}")
        for who in (*self.to, *self.copy):
            check_who(who)
        if not self.to:
            raise ValueError("a ladder level must name at least one recipient")


@dataclass(frozen=True)
class Ladder:
    levels: tuple[Level, ...]

    def level(self, index: int) -> Level | None:
        return self.levels[index] if 0 <= index < len(self.levels) else None


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def check_who(who: str) -> str:
    if who in (ASSIGNEE, CLASS_TEACHER) or who in STAFF_ROLES or "@" in who:
        return who
    known = ", ".join((ASSIGNEE, CLASS_TEACHER, *STAFF_ROLES))
    raise ValueError(f"unknown recipient {who!r}: use one of {known} or an e-mail address")


def build_ladder(
    reminder_at: float | None = DEFAULT_REMINDER_AT,
    escalate_to: Sequence[str | Sequence[str]] = DEFAULT_ESCALATE_TO,
    escalation_interval: float = DEFAULT_ESCALATION_INTERVAL,
    escalation_copy: Sequence[str] = DEFAULT_ESCALATION_COPY,
) -> Ladder:
    """A ladder from the four config settings (see the module docstring).

    An item of ``escalate_to`` may itself be a list: several recipients on one level.
    """
    levels: list[Level] = []
    if reminder_at:
        levels.append(Level(REMINDER, (ASSIGNEE,), share=float(reminder_at)))
    if escalation_interval <= 0 and len(escalate_to) > 1:
        raise ValueError("escalation_interval must be greater than 0 when there are several levels")
    earlier: list[str] = []
    for i, item in enumerate(escalate_to):
        to = (item,) if isinstance(item, str) else tuple(item)
        copy = _unique(w for w in (*escalation_copy, *earlier) if w not in to)
        levels.append(Level(ESCALATION, to, copy, after_due=i * float(escalation_interval)))
        earlier.extend(to)
    return Ladder(tuple(levels))


DEFAULT_LADDER = build_ladder()


def ladder_from_config(config: Any) -> Ladder:
    """The ladder from ``config.sla`` (missing settings take the defaults above)."""
    sla = getattr(config, "sla", None)
    return build_ladder(
        reminder_at=getattr(sla, "reminder_at", DEFAULT_REMINDER_AT),
        escalate_to=tuple(getattr(sla, "escalate_to", DEFAULT_ESCALATE_TO)),
        escalation_interval=float(getattr(sla, "escalation_interval", DEFAULT_ESCALATION_INTERVAL)),
        escalation_copy=tuple(getattr(sla, "escalation_copy", DEFAULT_ESCALATION_COPY)),
    )


def window_days_from_config(config: Any) -> float:
    return float(getattr(getattr(config, "sla", None), "window_days", 1.0))


def level_times(
    ladder: Ladder, calendar: WorkCalendar, start: datetime, due: datetime, window_days: float
) -> list[tuple[int, Level, datetime]]:
    """(level index, level, when it fires in UTC) for a window started at ``start``
    and ending at ``due``. A reminder that would not come before the deadline is left out."""
    due = due.astimezone(timezone.utc)
    out: list[tuple[int, Level, datetime]] = []
    for index, level in enumerate(ladder.levels):
        if level.kind == REMINDER:
            assert level.share is not None
            at = calendar.deadline(start, level.share * window_days).due
            if at >= due:
                continue
        else:
            assert level.after_due is not None
            at = due if not level.after_due else calendar.deadline(due, level.after_due).due
        out.append((index, level, at.astimezone(timezone.utc)))
    return out


def resolve(who: str, *, assignee: str, class_name: str | None, roster: Roster) -> list[str]:
    """E-mail addresses meant by one recipient name, for one appeal."""
    if who == ASSIGNEE:
        return [assignee] if assignee else []
    if who == CLASS_TEACHER:
        teacher = roster.class_teacher(class_name) if class_name else None
        return [teacher] if teacher else []
    if "@" in who:
        return [who.strip().lower()]
    return [member.email for member in roster.with_role(who)]
