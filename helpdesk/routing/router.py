"""Routing: from a Classification to the staff member who must answer.

Pure: no I/O. Implements the "goes to" table and the subject resolution of
shared/spec/routing-policy.md. ``Decision.reasons`` holds only the routing
sentences; the caller shows them after ``Classification.reasons``.

Three steps, each leaving its sentence in the reasons:

1. the policy table (category, class, subject -> a staff member);
2. low confidence: when ``Classification.confidence`` is below
   ``TRIAGE_CONFIDENCE`` the rules' answer is not trusted; the letter goes to the
   class teacher (class known) or the deputy, who triage it (``Decision.triage``);
3. absences: a staff member away on the routing day (``absences``, ``on``) gets
   nothing new; the appeal goes to their substitute, else to a colleague teaching
   the same subject in the class (groups), else to the class teacher, else to the
   deputy (the director when the deputy is away too).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Iterable

from helpdesk.cache import RosterCache
from helpdesk.domain import Absence, Classification, Decision, Roster
from helpdesk.understand.lexicon import Lexicon, default_lexicon

SUBJECT_ROUTED = frozenset({"subject_help", "consultation"})
CLASS_TEACHER_ROUTED = frozenset({"organizational", "paper_materials"})
# Categories whose appeal records the subject it concerns. A platform or password
# problem, a request for paper tasks or an "other" question is not about a subject:
# a subject named on the way ("урок по истории не грузится") stays in the reasons only.
SUBJECT_KEPT = frozenset({"subject_help", "consultation", "organizational", "complaint"})

# Confidence (0..1, see ``Classification.confidence``) below which the rules' choice
# of a teacher is not trusted. The classifier multiplies the certainty of its parts:
# category (0.6 when two categories tie .. 1.0), subject (0.6 guessed from Latin words,
# 0.8 from topic words only, 0.85 from a typo, 1.0 named), sender (0.7 .. 1.0, x0.9
# when the class comes from the text). One weak part alone stays above 0.4 (e.g. a
# tie with a named subject: 0.6; a topic-only subject and no category cue: 0.48);
# below it at least two parts are very weak or three are weak at once, e.g. a tie
# with a subject guessed from Latin words (0.36), or an unknown sender's class from
# the text with a tie and a topic-only subject (0.39). Such a letter goes to the
# class teacher, or to the deputy when the class is unknown, marked as triage, with
# the reason in the letter they receive. A letter the rules already send to the
# class teacher, the deputy or the director is left as it is.
TRIAGE_CONFIDENCE = 0.4

_MONTHS_GENITIVE = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
                    "сентября", "октября", "ноября", "декабря")


def russian_date(day: date, *, relative_to: date | None = None) -> str:
    """«5 декабря», with the year when it is not the year of ``relative_to``."""
    text = f"{day.day} {_MONTHS_GENITIVE[day.month - 1]}"
    if relative_to is None or relative_to.year != day.year:
        text += f" {day.year} г."
    return text


def _decimal(x: float) -> str:
    return f"{x:.2f}".replace(".", ",")


def initials(full_name: str) -> str:
    """«Карпенко Дмитрий Анатольевич» -> «Карпенко Д. А.»."""
    parts = full_name.split()
    if len(parts) < 2 or "@" in full_name:
        return full_name
    return parts[0] + " " + " ".join(f"{p[0]}." for p in parts[1:3])


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
    def route(self, c: Classification, absences: Iterable[Absence] = (), on: date | None = None) -> Decision:
        """The decision for ``c``; ``absences`` are applied for the day ``on`` (ignored without it)."""
        d = self._by_policy(c)
        d = self._low_confidence(c, d)
        if on is not None:
            away = self._away(absences, on)
            if d.assignee in away:
                d = self._cover(c, d, away, on)
        return d

    def _by_policy(self, c: Classification) -> Decision:
        if c.category not in SUBJECT_KEPT and c.subject is not None:
            c = replace(c, subject=None)
        cat = c.category
        cls = c.class_name
        if cat == "technical":
            it = self.roster.with_role("it")
            if it:
                return Decision(it[0].email, None, False,
                                (f"Техническую проблему решает сотрудник с ролью it — {self._name(it[0].email)}.",))
            return self._to_deputy(None, False, "Техническая проблема, а сотрудника с ролью it в школе нет.")
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

    # ------------------------------------------------------------------ low confidence
    def _low_confidence(self, c: Classification, d: Decision) -> Decision:
        if c.confidence >= TRIAGE_CONFIDENCE or d.triage:
            return d
        class_teacher = self.roster.class_teacher(c.class_name) if c.class_name else None
        if class_teacher:
            target, who = class_teacher, f"классный руководитель {c.class_name}"
        else:
            target, who = self.deputy()
        heads = {m.email for m in self.roster.staff if m.roles & {"deputy", "director"}}
        if target == d.assignee or d.assignee in heads:
            return d  # already with the people who triage
        reason = (f"Уверенность разбора низкая ({_decimal(c.confidence)} при пороге "
                  f"{_decimal(TRIAGE_CONFIDENCE)}), поэтому письмо не отправлено сразу тому, кого выбрали "
                  f"правила ({self._name(d.assignee)}): сначала его посмотрит {who} — {self._name(target)} — "
                  f"и при необходимости передаст нужному учителю.")
        return Decision(target, d.subject, True, (*d.reasons, reason))

    # ------------------------------------------------------------------ absences
    @staticmethod
    def _away(absences: Iterable[Absence], on: date) -> dict[str, Absence]:
        """Who is away on ``on``: e-mail -> the absence (one with a substitute preferred)."""
        away: dict[str, Absence] = {}
        for a in absences:
            if not a.covers(on):
                continue
            key = a.teacher.lower()
            if key not in away or (a.substitute and not away[key].substitute):
                away[key] = a
        return away

    def _stand_ins(self, c: Classification, d: Decision, a: Absence) -> list[tuple[str, str]]:
        """Who may take the appeal instead of ``a.teacher``, best first: (email, to whom, dative)."""
        out: list[tuple[str, str]] = []
        if a.substitute:
            out.append((a.substitute.lower(), "замещающему сотруднику"))
        cls = c.class_name
        if c.category == "technical":
            out += [(m.email, "другому сотруднику с ролью it") for m in self.roster.with_role("it")]
        elif c.category != "complaint" and cls:
            if d.subject and not d.triage and (cls, d.subject) in self._teachers:
                out += [(t, f"другому учителю предмета «{d.subject}» в {cls}")
                        for t in self._teachers[(cls, d.subject)]]
            ct = self.roster.class_teacher(cls)
            if ct:
                out.append((ct, f"классному руководителю {cls}"))
        out += [(m.email, "заместителю директора") for m in self.roster.with_role("deputy")]
        out += [(m.email, "директору") for m in self.roster.with_role("director")]
        return out

    def cover(self, c: Classification, d: Decision, absences: Iterable[Absence], on: date) -> Decision:
        """``d`` with a stand-in when its assignee is away on ``on`` (for letters that
        reach an existing appeal, such as a follow-up); unchanged otherwise."""
        away = self._away(absences, on)
        return self._cover(c, d, away, on) if d.assignee.lower() in away else d

    def _cover(self, c: Classification, d: Decision, away: dict[str, Absence], on: date) -> Decision:
        absent = d.assignee
        a = away[absent]
        note = f" ({a.note})" if a.note else ""
        lead = f"{initials(self._name(absent))} отсутствует до {russian_date(a.end, relative_to=on)}{note}"
        skipped: list[str] = []
        for email, whom in self._stand_ins(c, d, a):
            if email == absent:
                continue
            if email in away:
                name = initials(self._name(email))
                if name not in skipped:
                    skipped.append(name)
                continue
            extra = f" ({', '.join(skipped)} тоже отсутству{'ет' if len(skipped) == 1 else 'ют'})" if skipped else ""
            reason = f"{lead}; обращение передано {whom} — {self._name(email)}{extra}."
            return replace(d, assignee=email, reasons=(*d.reasons, reason))
        reason = (f"{lead}, но все, кто мог бы его заменить, тоже отсутствуют — назначение оставлено "
                  f"без изменений.")
        return replace(d, reasons=(*d.reasons, reason))


# ---------------------------------------------------------------------------- module API

_ROUTERS: RosterCache[Router] = RosterCache(Router)


def router_for(roster: Roster, lexicon: Lexicon | None = None) -> Router:
    """The cached Router for this roster object and lexicon (None: the built-in one)."""
    return _ROUTERS.get(roster, lexicon)


def route(
    c: Classification,
    roster: Roster,
    lexicon: Lexicon | None = None,
    *,
    absences: Iterable[Absence] = (),
    on: date | None = None,
) -> Decision:
    """Where the appeal goes and why (never an empty assignee).

    ``absences`` (staff away, see ``helpdesk.domain.Absence``) are applied for the
    day ``on``; without ``on`` they are not consulted.
    """
    return router_for(roster, lexicon).route(c, absences, on)
