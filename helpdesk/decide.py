"""What a letter is and what to do with it: one pure function over plain values.

``decide`` is shared by the daemon and ``helpdesk explain``, so an explanation is
never a re-telling of the decision but the decision itself. The only outside
knowledge it needs, "which appeal does this letter continue?", comes in as a
callable so that tests and ``explain`` can pass their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Callable

from .compose import ROLE_NAMES, tag_number
from .domain import Absence, Classification, Decision, ParsedLetter, Roster
from .routing.router import route
from .understand.classify import classify
from .understand.kinds import machine_kind
from .understand.trust import reply_problem


@dataclass(frozen=True)
class ThreadInfo:
    """The appeal a letter belongs to, as far as the decision needs it."""

    number: int
    sender: str  # who opened the appeal
    student: str | None
    assignee: str
    status: str
    how: str  # how the thread was recognised, in Russian
    # Addresses the referenced letters of this appeal were sent to: the holders of
    # the unguessable Message-ID tokens this letter answers.
    token_holders: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Verdict:
    kind: str  # appeal|followup|teacher_reply|auto_reply|bounce|bulk
    sender_role: str
    reasons: tuple[str, ...]
    classification: Classification | None = None
    decision: Decision | None = None
    thread: ThreadInfo | None = None
    extra: dict = field(default_factory=dict)

    @property
    def assignee(self) -> str | None:
        if self.decision:
            return self.decision.assignee
        if self.thread and self.kind in ("followup", "teacher_reply"):
            return self.thread.assignee
        return None


SERVICE_NAMES = {
    "reminder": "напоминание о сроке",
    "escalation": "письмо о просроченных обращениях",
    "suspicious_reply": "сообщение о подозрительном письме",
    "teacher_away": "сообщение об автоответе учителя",
    "command_help": "подсказка по командам",
}

ThreadFinder = Callable[[ParsedLetter], "ThreadInfo | None"]


def no_thread(_: ParsedLetter) -> None:
    return None


def sender_role(roster: Roster, address: str) -> str:
    if roster.student(address):
        return "student"
    if roster.children_of(address):
        return "parent"
    if roster.staff_member(address):
        return "staff"
    return "unknown"


def thread_references(letter: ParsedLetter) -> tuple[tuple[str, ...], int | None]:
    """Message-IDs this letter answers (nearest first) and the ``[№ N]`` tag, if any."""
    ids: list[str] = []
    if letter.in_reply_to:
        ids.append(letter.in_reply_to)
    ids.extend(reversed(letter.references))
    return tuple(dict.fromkeys(ids)), tag_number(letter.subject)


def _belongs_to_appeal(roster: Roster, address: str, thread: ThreadInfo) -> bool:
    if address in (thread.sender, thread.student):
        return True
    student = roster.student(thread.student or thread.sender)
    return bool(student and address in student.parent_emails)


def _staff_reply(letter: ParsedLetter, roster: Roster, thread: ThreadInfo) -> Verdict:
    who = roster.name_of(letter.from_addr)
    reasons = [thread.how]
    problem = reply_problem(
        letter, roster, number=thread.number, assignee=thread.assignee,
        token_holders=thread.token_holders,
    )
    if problem:
        reasons.append(f"Письмо от {who} по обращению № {thread.number} не пересылается ученику: "
                       f"{problem}. Оно передано заместителю директора для проверки.")
        return Verdict("teacher_reply", "staff", tuple(reasons), thread=thread,
                       extra={"suspicious": problem})
    reasons.append(f"Письмо от сотрудника школы ({who}) — это ответ по обращению № {thread.number}: "
                   "новый текст (без цитаты и подписи) будет переслан автору обращения; строки с "
                   "командами (#закрыть, #передать, #консультация, #ждём) выполняются.")
    return Verdict("teacher_reply", "staff", tuple(reasons), thread=thread)


def decide(
    letter: ParsedLetter,
    roster: Roster,
    find_thread: ThreadFinder = no_thread,
    *,
    school_address: str = "",
    absences: tuple[Absence, ...] = (),
    today: date | None = None,
    find_service: Callable[[ParsedLetter], str | None] | None = None,
) -> Verdict:
    """``absences``: staff away (the router gives their new appeals to others) on
    ``today``, the school's calendar day of the decision (default: the machine's date)."""
    role = sender_role(roster, letter.from_addr)
    # A teacher may also be a parent at the school: in a thread, staff membership
    # decides (their reply is a teacher's reply, not a parent's new appeal).
    is_staff = roster.staff_member(letter.from_addr) is not None
    if school_address and letter.from_addr == school_address.lower():
        return Verdict(
            "auto_reply", role,
            ("Письмо отправлено с адреса самой школы (служба обращений): на него не отвечаем, "
             "чтобы не было петли.",),
        )
    kind, why = machine_kind(letter)
    if kind:
        reasons = [why, "На такие письма служба обращений не отвечает."]
        thread = find_thread(letter) if kind == "auto_reply" and is_staff else None
        if thread is not None:
            reasons.append(
                f"Это автоответ сотрудника ({roster.name_of(letter.from_addr)}) на письмо по обращению "
                f"№ {thread.number}: ученику он не пересылается, заместителю директора сообщается, "
                "что учитель, возможно, отсутствует."
            )
            return Verdict(kind, role, tuple(reasons), thread=thread, extra={"teacher_away": True})
        return Verdict(kind, role, tuple(reasons))

    thread = find_thread(letter)
    if thread is not None:
        if is_staff:
            return _staff_reply(letter, roster, thread)
        if _belongs_to_appeal(roster, letter.from_addr, thread):
            reasons = [thread.how, f"Автор обращения № {thread.number} написал ещё раз — это "
                       "дополнение к тому же обращению, а не новое."]
            if thread.status != "open":
                reasons.append("Обращение снова открыто, срок ответа считается заново.")
            return Verdict("followup", role, tuple(reasons), thread=thread)
    elif is_staff and find_service is not None:
        service = find_service(letter)
        if service:
            return Verdict(
                "teacher_reply", role,
                (f"Письмо — ответ сотрудника на служебное письмо helpdesk "
                 f"({SERVICE_NAMES.get(service, service)}), а не на письмо с обращением: ученику "
                 "ничего не пересылается, сотруднику отправлена подсказка, как ответить.",),
                extra={"service_reply": service},
            )

    classification = classify(letter, roster)
    decision = route(classification, roster, absences=absences,
                     on=today or (date.today() if absences else None))
    reasons = list(classification.reasons) + list(decision.reasons)
    if thread is not None:
        reasons.insert(0, f"Письмо похоже на ответ в переписке по обращению № {thread.number}, "
                          f"но отправитель ({ROLE_NAMES.get(role, role)}) не участвует в нём: "
                          "регистрируем новое обращение.")
    return Verdict(
        "appeal", classification.sender_role, tuple(reasons),
        classification=classification, decision=decision,
    )
