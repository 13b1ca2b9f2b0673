"""Reminder and escalation letters: fired steps -> one letter per person (pure).

Every person gets at most one letter per sweep, listing everything the sweep
has for them in three parts:

* ``reminders``: appeals whose deadline is near (their own, as a rule);
* ``supervised``: overdue appeals of others, as the deputy head, the director
  or a copied colleague sees them;
* ``own``: their own overdue appeals, with who has been told.

A letter with only reminders uses the ``reminder`` template, any other the
``escalation`` template. Letters name no appeal with a ``[№ N]`` tag in the
subject and are not tied to one appeal: a reply to a reminder must never be
taken for the teacher's answer to the student.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Sequence

from ..compose import CATEGORY_NAMES, ROLE_NAMES, Composer, Rendered, format_local, greeting_name
from ..domain import Roster
from ..store.models import Appeal, as_aware
from .calendar import WorkCalendar
from .ladder import ASSIGNEE, REMINDER, WHO_NAMES, Level, resolve

MAX_NUMBERS_IN_SUBJECT = 6


@dataclass(frozen=True)
class Fired:
    """A step that fires in this sweep."""

    step_id: int
    appeal: Appeal
    index: int  # the level's position in the ladder
    level: Level


@dataclass(frozen=True)
class Item:
    """One appeal as a notice shows it."""

    number: int
    topic: str  # "7В, алгебра" or the category
    title: str
    student: str | None  # "Кузьмин Лев Сергеевич"
    author: str | None  # who wrote, when not the student: "Кузьмина Анна Петровна (родитель)"
    assignee: str  # the assignee's name
    assignee_email: str
    due_text: str
    late_text: str | None  # "2 ч 30 мин" of working time past the deadline; None when not late
    notified: tuple[str, ...] = ()  # "Ковалевская Нина Аркадьевна (заместитель директора)"


@dataclass
class Notice:
    """One letter to one person."""

    recipient: str
    name: str
    reminders: dict[int, Item] = field(default_factory=dict)
    supervised: dict[int, Item] = field(default_factory=dict)
    own: dict[int, Item] = field(default_factory=dict)
    step_ids: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "escalation" if self.supervised or self.own else "reminder"

    @property
    def numbers(self) -> list[int]:
        return sorted({*self.reminders, *self.supervised, *self.own})

    def subject(self) -> str:
        if self.kind == "reminder":
            items = list(self.reminders.values())
            if len(items) == 1:
                return f"Напоминание: срок ответа на обращение № {items[0].number} — {items[0].due_text}"
            return f"Напоминание: подходит срок ответа на обращения {_numbers(self.reminders)}"
        overdue = {**self.supervised, **self.own}
        if len(overdue) == 1:
            item = next(iter(overdue.values()))
            return f"Просрочено обращение № {item.number} ({item.topic})"
        return f"Просрочены обращения {_numbers(overdue)}"

    def context(self) -> dict:
        return {
            "greeting": greeting_name(self.name, "staff") if self.name != self.recipient else "",
            "reminders": sorted(self.reminders.values(), key=lambda i: i.number),
            "supervised": sorted(self.supervised.values(), key=lambda i: i.number),
            "own": sorted(self.own.values(), key=lambda i: i.number),
            "recipient": self.recipient,
        }


def _numbers(items: dict[int, Item]) -> str:
    numbers = sorted(items)
    if len(numbers) > MAX_NUMBERS_IN_SUBJECT:
        shown = ", ".join(str(n) for n in numbers[:MAX_NUMBERS_IN_SUBJECT])
        return f"№ {shown} и ещё {len(numbers) - MAX_NUMBERS_IN_SUBJECT}"
    return "№ " + ", ".join(str(n) for n in numbers)


def late_text(hours: float) -> str | None:
    """Working time past the deadline as "2 ч 30 мин"; None under a minute."""
    minutes = int(round(hours * 60))
    if minutes < 1:
        return None
    h, m = divmod(minutes, 60)
    return " ".join(part for part in (f"{h} ч" if h else "", f"{m} мин" if m else "") if part)


class ItemMaker:
    """Builds ``Item``s for one sweep (one roster, one clock)."""

    def __init__(self, roster: Roster, calendar: WorkCalendar, now: datetime) -> None:
        self.roster = roster
        self.calendar = calendar
        self.now = now
        self.tz = calendar.hours.timezone

    def __call__(self, appeal: Appeal, notified: Sequence[str] = ()) -> Item:
        due = as_aware(appeal.due_at)
        late = self.calendar.working_hours_between(due, self.now) if due < self.now else 0.0
        name = self.roster.name_of
        student = None
        if appeal.student:
            student = name(appeal.student)
        author = None
        if appeal.sender_role != "student" or not appeal.student:
            who = name(appeal.sender)
            if who == appeal.sender and appeal.sender_name:
                who = f"{appeal.sender_name} <{appeal.sender}>"
            author = f"{who} ({ROLE_NAMES.get(appeal.sender_role, appeal.sender_role)})"
        topic = ", ".join(p for p in (appeal.class_name, appeal.subject) if p)
        return Item(
            number=appeal.number,
            topic=topic or CATEGORY_NAMES.get(appeal.category, appeal.category),
            title=appeal.title or "(без темы)",
            student=student,
            author=author,
            assignee=name(appeal.assignee),
            assignee_email=appeal.assignee,
            due_text=format_local(due, self.tz),
            late_text=late_text(late),
            notified=tuple(notified),
        )


def batch(fired: Sequence[Fired], roster: Roster, make_item: Callable[..., Item]) -> tuple[list[Notice], list[int]]:
    """Per-person notices for the fired steps, in order of first appearance, and
    the ids of steps nobody could be found for (a role missing from the roster)."""
    notices: dict[str, Notice] = {}
    orphans: list[int] = []

    def notice(address: str) -> Notice:
        if address not in notices:
            notices[address] = Notice(address, roster.name_of(address))
        return notices[address]

    for f in fired:
        appeal, level = f.appeal, f.level

        def who(names: Sequence[str]) -> list[tuple[str, str]]:
            found: dict[str, str] = {}
            for spec in names:
                for address in resolve(spec, assignee=appeal.assignee, class_name=appeal.class_name,
                                       roster=roster):
                    found.setdefault(address, spec)
            return list(found.items())

        targets = who(level.to)
        if not targets:
            orphans.append(f.step_id)
            continue
        if level.kind == REMINDER:
            for address, _ in targets:
                n = notice(address)
                n.reminders[appeal.number] = make_item(appeal)
                n.step_ids.append(f.step_id)
            continue
        target_set = {a for a, _ in targets}
        copies = [(a, s) for a, s in who(level.copy) if a not in target_set]
        for address, _spec in targets + copies:
            told = [
                _label(roster, a, s) for a, s in targets if a != address
            ]
            n = notice(address)
            section = n.own if address == appeal.assignee else n.supervised
            before = section.get(appeal.number)
            merged = tuple(dict.fromkeys([*(before.notified if before else ()), *told]))
            section[appeal.number] = make_item(appeal, merged)
            n.step_ids.append(f.step_id)
    return list(notices.values()), orphans


def _label(roster: Roster, address: str, spec: str) -> str:
    """"Ковалевская Нина Аркадьевна (заместитель директора)"."""
    role = None if spec == ASSIGNEE else WHO_NAMES.get(spec)
    name = roster.name_of(address)
    return f"{name} ({role})" if role else name


def render(notice: Notice, composer: Composer) -> Rendered:
    numbers = notice.numbers
    return composer.build(
        notice.kind,
        notice.context(),
        to=[notice.recipient],
        subject=notice.subject(),
        number=numbers[0] if len(numbers) == 1 else None,
    )
