"""Routing: from a Classification to the staff member who must answer.

Pure: no I/O. Implements the "goes to" table and the subject resolution of
shared/spec/routing-policy.md. ``Decision.reasons`` holds only the routing
sentences; the caller shows them after ``Classification.reasons``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from helpdesk.domain import Classification, Decision, Roster
from helpdesk.understand.lexicon import Lexicon, default_lexicon

SUBJECT_ROUTED = frozenset({"subject_help", "consultation"})
CLASS_TEACHER_ROUTED = frozenset({"organizational", "paper_materials"})


def _listing(names) -> str:
    return ", ".join(f"«{n}»" for n in names)


class RoutingError(ValueError):
    """The roster has nobody at all who could take a letter."""


@dataclass(frozen=True)
class SubjectMatch:
    subject: str | None  # the class's own subject name (or the asked one when not studied)
    studied: bool  # the class has this subject
    reason: str | None  # a Russian sentence when matching changed or failed something


class Router:
    """Routes classifications against one roster; build once, reuse."""

    def __init__(self, roster: Roster, lexicon: Lexicon | None = None):
        self.roster = roster
        self.lex = lexicon or default_lexicon()
        # class -> {canonical subject -> roster subject name (the first one written)}
        self._class_subjects: dict[str, dict[str, str]] = {}
        # (class, roster subject name) -> teachers in roster order, over every roster
        # name with the same meaning ("Английский язык (1 группа)", "... (2 группа)")
        self._teachers: dict[tuple[str, str], list[str]] = {}
        for a in roster.assignments:
            canon = self.lex.canonical(a.subject) or a.subject
            name = self._class_subjects.setdefault(a.class_name, {}).setdefault(canon, a.subject)
            teachers = self._teachers.setdefault((a.class_name, name), [])
            if a.teacher_email not in teachers:
                teachers.append(a.teacher_email)

    # ------------------------------------------------------------------ people
    def _name(self, email: str) -> str:
        return self.roster.name_of(email)

    def deputy(self) -> tuple[str, str]:
        """(email, how) of the last-resort assignee."""
        for role, how in (("deputy", "заместитель директора"), ("director", "директор (заместителя в списке нет)")):
            people = self.roster.with_role(role)
            if people:
                return people[0].email, how
        if self.roster.staff:
            return self.roster.staff[0].email, "первый сотрудник списка (нет ни заместителя, ни директора)"
        raise RoutingError("в списке сотрудников нет никого, кому можно назначить обращение")

    def _to_deputy(self, subject: str | None, triage: bool, *why: str) -> Decision:
        email, how = self.deputy()
        reasons = [*why, f"Назначено: {how} — {self._name(email)}."]
        return Decision(email, subject, triage, tuple(reasons))

    def _to_class_teacher(self, class_name: str, subject: str | None, *why: str) -> Decision:
        email = self.roster.class_teacher(class_name)
        if not email:
            return self._to_deputy(subject, True, *why,
                                   f"У класса {class_name} в списке нет классного руководителя — "
                                   f"нужен разбор вручную.")
        return Decision(email, subject, False,
                        (*why, f"Назначено: классный руководитель {class_name} — {self._name(email)}."))

    # ------------------------------------------------------------------ subjects
    def match_subject(self, class_name: str, subject: str | None) -> SubjectMatch:
        """The subject after matching to the class's own assignments (policy)."""
        if subject is None:
            return SubjectMatch(None, False, None)
        own = self._class_subjects.get(class_name, {})
        canon = self.lex.canonical(subject) or subject
        if canon in own:
            return SubjectMatch(own[canon], True, None)
        kids = [k for k in self.lex.children(canon) if k in own]
        if kids:
            info = self.lex.subjects.get(canon)
            if len(kids) == 1:
                return SubjectMatch(own[kids[0]], True,
                                    f"В {class_name} «{canon}» — это только «{own[kids[0]]}».")
            if info and info.default_child in kids:
                kid = info.default_child
                return SubjectMatch(own[kid], True,
                                    f"В {class_name} нет предмета «{canon}», есть {_listing(own[k] for k in kids)}; "
                                    f"без темы из другого раздела письмо относится к предмету «{own[kid]}».")
            return SubjectMatch(canon, False,
                                f"В {class_name} «{canon}» — это несколько предметов ({_listing(own[k] for k in kids)}), "
                                f"а из письма не понять, о каком речь.")
        parent = self.lex.parent(canon)
        if parent and parent in own:
            return SubjectMatch(own[parent], True,
                                f"В {class_name} нет отдельного предмета «{canon}» — это часть предмета "
                                f"«{own[parent]}».")
        return SubjectMatch(canon, False, f"Класс {class_name} не изучает предмет «{canon}».")

    def _teacher(self, class_name: str, subject: str) -> tuple[str, str | None]:
        teachers = self._teachers[(class_name, subject)]
        if len(teachers) > 1:
            names = ", ".join(self._name(t) for t in teachers)
            return teachers[0], (f"Предмет «{subject}» в {class_name} ведут несколько учителей (группы): {names}; "
                                 f"выбран первый по списку, при необходимости письмо передадут коллеге.")
        return teachers[0], None

    # ------------------------------------------------------------------ entry point
    def route(self, c: Classification) -> Decision:
        cat = c.category
        cls = c.class_name
        if cat == "technical":
            it = self.roster.with_role("it")
            if it:
                return Decision(it[0].email, self._subject_label(cls, c.subject), False,
                                (f"Техническую проблему решает сотрудник с ролью it — {self._name(it[0].email)}.",))
            return self._to_deputy(self._subject_label(cls, c.subject), False,
                                   "Техническая проблема, а сотрудника с ролью it в школе нет.")
        if cat == "complaint":
            return self._to_deputy(self._subject_label(cls, c.subject), False,
                                   "Жалобы рассматривает заместитель директора.")
        if cls is None:
            if cat == "other":
                return self._to_deputy(c.subject, False,
                                       "Вопрос не о конкретном классе — его разбирает заместитель директора.")
            return self._to_deputy(c.subject, True,
                                   "Класс, о котором письмо, не определён, а без класса не найти учителя — "
                                   "нужен разбор вручную.")
        if cat in SUBJECT_ROUTED:
            return self._route_subject(c, cls)
        subject = self._subject_label(cls, c.subject)
        if cat in CLASS_TEACHER_ROUTED:
            return self._to_class_teacher(cls, subject, "Такие вопросы решает классный руководитель.")
        return self._to_class_teacher(cls, subject, "Прочие вопросы о классе решает классный руководитель.")

    def _subject_label(self, cls: str | None, subject: str | None) -> str | None:
        if cls is None or subject is None:
            return subject
        return self.match_subject(cls, subject).subject

    def _route_subject(self, c: Classification, cls: str) -> Decision:
        m = self.match_subject(cls, c.subject)
        why = [m.reason] if m.reason else []
        if c.subject is None:
            lead = ("Консультация без предмета — её проводит классный руководитель."
                    if c.category == "consultation"
                    else "Вопрос по учёбе, но предмет не назван — его разберёт классный руководитель.")
            return self._to_class_teacher(cls, None, lead)
        if not m.studied:
            return self._to_class_teacher(cls, m.subject, *why)
        teacher, note = self._teacher(cls, m.subject)
        if note:
            why.append(note)
        return Decision(teacher, m.subject, False,
                        (*why, f"Назначено: учитель предмета «{m.subject}» в {cls} — {self._name(teacher)}."))


# ---------------------------------------------------------------------------- module API

_LOCK = threading.Lock()
_CACHE: dict[tuple[int, int], tuple[Roster, Lexicon | None, Router]] = {}
_CACHE_SIZE = 8


def router_for(roster: Roster, lexicon: Lexicon | None = None) -> Router:
    """The cached Router for this roster object and lexicon (None: the built-in one)."""
    key = (id(roster), id(lexicon))
    hit = _CACHE.get(key)
    if hit and hit[0] is roster and hit[1] is lexicon:
        return hit[2]
    r = Router(roster, lexicon)
    with _LOCK:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = (roster, lexicon, r)
    return r


def route(c: Classification, roster: Roster, lexicon: Lexicon | None = None) -> Decision:
    """Where the appeal goes and why (never an empty assignee)."""
    return router_for(roster, lexicon).route(c)
