"""Plain value types shared by the pure stages (understand, route, sla).

Nothing here touches IMAP, SMTP or the database: every stage takes and returns
these frozen dataclasses, so each one can be tested with no server.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Mapping

# Roles a staff member may have (staff.csv, column ``role``).
STAFF_ROLES = frozenset({"teacher", "deputy", "director", "it"})

# What a stored letter turned out to be.
KINDS = ("appeal", "followup", "teacher_reply", "auto_reply", "bounce", "bulk")

# The policy's seven categories (shared/spec/routing-policy.md).
CATEGORIES = (
    "subject_help",
    "consultation",
    "organizational",
    "paper_materials",
    "technical",
    "complaint",
    "other",
)

SENDER_ROLES = ("student", "parent", "staff", "unknown")

# Upper-case Latin letters that look like Cyrillic ones ("7B" typed on a Latin layout
# that the writer sees as 7В), and lower-case transliteration ("7b" = 7Б, "7v" = 7В).
_LOOKALIKE = str.maketrans("ABCEHKMOPTX", "АВСЕНКМОРТХ")
_TRANSLIT = str.maketrans("abvgdezijklmnoprstufhc", "АБВГДЕЗИЙКЛМНОПРСТУФХЦ")
_CLASS_RE = re.compile(r"^\s*(\d{1,2})\s*[-\s«\"'“„]*\s*([А-ЯЁA-Z])\s*[»\"'”]*\s*$", re.I)


def normalize_class(label: str) -> str | None:
    """Canonical class label: ``"7 «б»"``, ``"7-Б"``, ``"7b"`` -> ``"7Б"``.

    Upper-case Latin look-alikes (A, B, C, ...) are read as the Cyrillic letters
    they imitate, lower-case Latin letters as a transliteration (b = Б). Returns None when the text is not a class label.
    """
    m = _CLASS_RE.match(label or "")
    if not m:
        return None
    number = int(m.group(1))
    if not 1 <= number <= 11:
        return None
    letter = m.group(2)
    letter = letter.translate(_LOOKALIKE) if letter.isupper() else letter.translate(_TRANSLIT)
    letter = letter.upper()
    if not "А" <= letter <= "Я" and letter != "Ё":
        return None
    return f"{number}{letter}"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    payload: bytes = field(repr=False, default=b"")


@dataclass(frozen=True)
class ParsedLetter:
    """One incoming letter, decoded. Addresses are lower-case, bare (no name)."""

    message_id: str | None  # with angle brackets, e.g. "<abc@host>"
    in_reply_to: str | None
    references: tuple[str, ...]
    from_addr: str
    from_name: str
    to: tuple[str, ...]
    subject: str
    date: datetime | None  # aware if the Date header had an offset
    text: str  # readable body: text/plain preferred, HTML converted
    html: str | None  # the HTML part when there was one
    headers: Mapping[str, str]  # lower-case header name -> decoded value (first occurrence)
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = ()  # what was wrong but survivable (mislabelled charset, ...)


@dataclass(frozen=True)
class Student:
    email: str
    full_name: str
    class_name: str
    parent_emails: tuple[str, ...] = ()


@dataclass(frozen=True)
class StaffMember:
    email: str
    full_name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Assignment:
    class_name: str
    subject: str
    teacher_email: str


@dataclass(frozen=True)
class Roster:
    """A snapshot of the school: who is who, who teaches what where."""

    students: tuple[Student, ...] = ()
    staff: tuple[StaffMember, ...] = ()
    class_teachers: Mapping[str, str] = field(default_factory=dict)  # class -> email
    assignments: tuple[Assignment, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_students", {s.email: s for s in self.students})
        object.__setattr__(self, "_staff", {s.email: s for s in self.staff})
        children: dict[str, list[Student]] = {}
        for s in self.students:
            for p in s.parent_emails:
                children.setdefault(p, []).append(s)
        object.__setattr__(self, "_children", {k: tuple(v) for k, v in children.items()})

    def student(self, email: str) -> Student | None:
        return self._students.get(email.lower())  # type: ignore[attr-defined]

    def staff_member(self, email: str) -> StaffMember | None:
        return self._staff.get(email.lower())  # type: ignore[attr-defined]

    def children_of(self, parent_email: str) -> tuple[Student, ...]:
        return self._children.get(parent_email.lower(), ())  # type: ignore[attr-defined]

    def with_role(self, role: str) -> tuple[StaffMember, ...]:
        return tuple(s for s in self.staff if role in s.roles)

    def classes(self) -> tuple[str, ...]:
        names = set(self.class_teachers) | {s.class_name for s in self.students}
        names |= {a.class_name for a in self.assignments}
        return tuple(sorted(names, key=lambda c: (int(re.match(r"\d+", c).group()), c)))

    def class_teacher(self, class_name: str) -> str | None:
        return self.class_teachers.get(class_name)

    def subjects_of(self, class_name: str) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for a in self.assignments:
            if a.class_name == class_name:
                seen.setdefault(a.subject, None)
        return tuple(seen)

    def teachers_for(self, class_name: str, subject: str) -> tuple[str, ...]:
        return tuple(
            a.teacher_email
            for a in self.assignments
            if a.class_name == class_name and a.subject == subject
        )

    def name_of(self, email: str) -> str:
        person = self.staff_member(email) or self.student(email)
        return person.full_name if person else email


@dataclass(frozen=True)
class Classification:
    """What a letter is about, before routing. Reasons are Russian sentences."""

    sender_role: str  # student | parent | staff | unknown
    student: Student | None  # whom the appeal concerns, when known
    class_name: str | None
    subject: str | None  # canonical subject name as the sender meant it (e.g. "математика")
    category: str
    reasons: tuple[str, ...] = ()
    confidence: float = 1.0


@dataclass(frozen=True)
class Decision:
    """Where an appeal goes and why."""

    assignee: str  # staff e-mail; never empty (the deputy is the last fallback)
    subject: str | None  # subject after matching to the class's own assignments
    triage: bool  # True when the rules could not decide and a human must look
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Absence:
    """A staff member away from ``start`` to ``end`` (both days included).

    While away they get no new appeals: the substitute does, or, without one,
    whoever the router's fallback names (see ``helpdesk.routing.router``).
    """

    teacher: str  # staff e-mail
    start: date
    end: date
    substitute: str | None = None  # staff e-mail, or None
    note: str = ""  # e.g. "больничный", "курсы повышения квалификации"

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end
