"""The processing runner: stored letters -> appeals, events and queued letters.

One letter is disposed of in one transaction: the appeal, its events, the
outgoing letters and the letter's own status are written together or not at
all, so a crash in the middle leaves the letter ``new`` and the next start
processes it again from the start. A letter that cannot be understood is
quarantined with its reason; the runner goes on with the next one.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .compose import (
    CATEGORY_NAMES,
    ROLE_NAMES,
    Composer,
    appeal_tag,
    format_local,
    greeting_name,
    reply_subject,
)
from .decide import Verdict, decide
from .domain import ParsedLetter, Roster
from .sla.calendar import WorkCalendar
from .store.models import Appeal, Event, Letter, Outgoing, as_aware, database, to_utc_naive, utcnow
from .store.threads import find_thread
from .understand.parse import UnparseableLetter, parse_letter
from .understand.replytext import extract_reply

log = logging.getLogger("helpdesk.process")

MAX_ATTEMPTS = 3  # a letter whose processing crashes this often is quarantined


@dataclass
class ProcessResult:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def record(kind: str, message: str, *, appeal=None, letter=None, **data) -> Event:
    return Event.create(
        kind=kind, message=message, appeal=appeal, letter=letter,
        data=json.dumps(data, ensure_ascii=False, default=str),
    )


class Processor:
    def __init__(
        self,
        roster: Roster,
        composer: Composer,
        calendar: WorkCalendar,
        *,
        window_days: float = 1.0,
    ) -> None:
        self.roster = roster
        self.composer = composer
        self.calendar = calendar
        self.window_days = window_days
        self.school = composer.school

    # --- the runner loop -------------------------------------------------------

    def process_pending(self, limit: int | None = None) -> ProcessResult:
        result = ProcessResult()
        query = Letter.select(Letter.id).where(Letter.status == "new").order_by(Letter.id)
        if limit:
            query = query.limit(limit)
        for (letter_id,) in query.tuples():
            result.add(self.process_one(letter_id))
        return result

    def process_one(self, letter_id: int) -> str:
        row = Letter.get_by_id(letter_id)
        Letter.update(attempts=Letter.attempts + 1).where(Letter.id == letter_id).execute()
        if row.attempts + 1 > MAX_ATTEMPTS:
            return self._quarantine(row, "обработка письма несколько раз завершилась ошибкой")
        try:
            parsed = parse_letter(bytes(row.raw))
        except UnparseableLetter as exc:
            return self._quarantine(row, f"письмо не удалось разобрать: {exc.reason}")
        try:
            verdict = decide(parsed, self.roster, find_thread, school_address=self.school.address)
            with database.atomic():
                outcome = self._apply(row, parsed, verdict)
        except Exception as exc:  # one bad letter must not stop the runner
            log.exception("letter %s: processing failed", letter_id)
            if row.attempts + 1 >= MAX_ATTEMPTS:
                return self._quarantine(row, f"ошибка при обработке: {type(exc).__name__}: {exc}")
            return "error"
        return outcome

    def _quarantine(self, row: Letter, reason: str) -> str:
        with database.atomic():
            Letter.update(status="quarantined", reason=reason).where(Letter.id == row.id).execute()
            record("quarantined", f"Письмо отложено в карантин: {reason}.", letter=row.id)
        log.warning("letter %s quarantined: %s", row.id, reason)
        return "quarantined"

    # --- applying a verdict -----------------------------------------------------

    def _apply(self, row: Letter, parsed: ParsedLetter, verdict: Verdict) -> str:
        received = as_aware(row.received_at) or datetime.now(timezone.utc)
        if verdict.kind == "appeal":
            return self._new_appeal(row, parsed, verdict, received)
        if verdict.kind == "followup":
            return self._followup(row, parsed, verdict, received)
        if verdict.kind == "teacher_reply":
            return self._teacher_reply(row, parsed, verdict, received)
        reason = " ".join(verdict.reasons)
        Letter.update(status="ignored", kind=verdict.kind, reason=reason).where(
            Letter.id == row.id
        ).execute()
        record("ignored", f"Письмо от {parsed.from_addr} не требует ответа: {reason}", letter=row.id,
               letter_kind=verdict.kind)
        return verdict.kind

    def _mark(self, row: Letter, kind: str, appeal: Appeal, reasons) -> None:
        Letter.update(
            status="processed", kind=kind, appeal=appeal.number, reason=" ".join(reasons)
        ).where(Letter.id == row.id).execute()

    def _queue(self, rendered, kind: str, appeal: Appeal, row: Letter) -> Outgoing:
        return Outgoing.create(
            appeal=appeal.number,
            letter=row.id,
            kind=kind,
            mail_from=self.school.address,
            recipients=json.dumps(list(rendered.recipients)),
            message_id=rendered.message_id,
            raw=rendered.raw,
        )

    def _deadline(self, received: datetime) -> tuple[datetime, tuple[str, ...]]:
        deadline = self.calendar.deadline(received, self.window_days)
        return deadline.due, tuple(deadline.reasons)

    def _sender_line(self, appeal: Appeal) -> str:
        role = ROLE_NAMES.get(appeal.sender_role, appeal.sender_role)
        name = self.roster.name_of(appeal.sender)
        if name == appeal.sender:
            name = appeal.sender_name or ""
        parts = [p for p in (name, f"<{appeal.sender}>", f"({role})") if p]
        line = " ".join(parts)
        if appeal.sender_role == "parent" and appeal.student:
            line += f", родитель ученика {self.roster.name_of(appeal.student)}"
        return line

    def _new_appeal(self, row, parsed: ParsedLetter, verdict: Verdict, received: datetime) -> str:
        c, d = verdict.classification, verdict.decision
        assert c is not None and d is not None
        due, due_reasons = self._deadline(received)
        reasons = list(verdict.reasons) + list(due_reasons)
        appeal = Appeal.create(
            sender=parsed.from_addr,
            sender_name=parsed.from_name or "",
            sender_role=c.sender_role,
            student=c.student.email if c.student else None,
            class_name=c.class_name,
            subject=d.subject,
            category=c.category,
            assignee=d.assignee,
            triage=d.triage,
            confidence=c.confidence,
            reasons=json.dumps(reasons, ensure_ascii=False),
            title=parsed.subject or "",
            thread_root=parsed.message_id,
            received_at=to_utc_naive(received),
            due_at=to_utc_naive(due),
        )
        self._mark(row, "appeal", appeal, verdict.reasons)
        record(
            "appeal_created",
            f"Зарегистрировано обращение № {appeal.number} от {parsed.from_addr}; "
            f"назначено: {self.roster.name_of(d.assignee)} <{d.assignee}>. "
            + " ".join(reasons),
            appeal=appeal.number, letter=row.id,
        )
        due_text = format_local(due, self.school.timezone)
        assignee = self.roster.staff_member(d.assignee)
        roles = sorted(assignee.roles) if assignee else []
        greeting = greeting_name(self.roster.name_of(parsed.from_addr), c.sender_role)
        context = {
            "appeal": appeal,
            "assignee_name": self.roster.name_of(d.assignee),
            "assignee_role": ", ".join(ROLE_NAMES[r] for r in roles if r != "teacher" and r in ROLE_NAMES),
            "due_text": due_text,
            "greeting_name": greeting,
        }
        ack = self.composer.build(
            "ack", context,
            to=[parsed.from_addr],
            subject=reply_subject(parsed.subject, appeal.number),
            number=appeal.number,
            in_reply_to=parsed.message_id,
            references=list(parsed.references) + [parsed.message_id or ""],
        )
        self._queue(ack, "ack", appeal, row)
        names = [a.filename for a in parsed.attachments]
        to_assignee = self.composer.build(
            "to_assignee",
            {
                **context,
                "sender_line": self._sender_line(appeal),
                "category_name": CATEGORY_NAMES.get(c.category, c.category),
                "received_text": format_local(received, self.school.timezone),
                "reasons": reasons,
                "body": parsed.text.strip() or "(письмо без текста)",
                "attachments": names,
                "show_teacher_address": self.school.show_teacher_address,
            },
            to=[d.assignee],
            subject=f"{appeal_tag(appeal.number)} {self._topic(appeal)}: {parsed.subject or 'без темы'}",
            number=appeal.number,
            reply_to=self.school.address,
            attachments=parsed.attachments,
        )
        self._queue(to_assignee, "to_assignee", appeal, row)
        return "appeal"

    def _topic(self, appeal: Appeal) -> str:
        parts = [p for p in (appeal.class_name, appeal.subject) if p]
        return ", ".join(parts) or CATEGORY_NAMES.get(appeal.category, appeal.category)

    def _thread_ids(self, appeal: Appeal) -> list[str]:
        """Message-IDs of the student-side thread: the first letter and what we sent them."""
        ids = [appeal.thread_root] if appeal.thread_root else []
        ids += [
            o.message_id
            for o in Outgoing.select(Outgoing.message_id)
            .where((Outgoing.appeal == appeal.number) & Outgoing.kind.in_(["ack", "relay"]))
            .order_by(Outgoing.id)
        ]
        return ids

    def _followup(self, row, parsed: ParsedLetter, verdict: Verdict, received: datetime) -> str:
        appeal = Appeal.get_by_id(verdict.thread.number)
        changes = {"updated_at": utcnow()}
        if appeal.status != "open":
            due, _ = self._deadline(received)
            changes.update(status="open", due_at=to_utc_naive(due), closed_at=None)
            appeal.due_at = to_utc_naive(due)
        Appeal.update(**changes).where(Appeal.number == appeal.number).execute()
        self._mark(row, "followup", appeal, verdict.reasons)
        record("followup", f"Дополнение к обращению № {appeal.number} от {parsed.from_addr}. "
               + " ".join(verdict.reasons), appeal=appeal.number, letter=row.id)
        body = extract_reply(parsed.text, parsed.html).strip() or "(письмо без текста)"
        rendered = self.composer.build(
            "followup",
            {
                "appeal": appeal,
                "assignee_name": self.roster.name_of(appeal.assignee),
                "sender_line": self._sender_line(appeal),
                "body": body,
                "attachments": [a.filename for a in parsed.attachments],
                "due_text": format_local(as_aware(appeal.due_at), self.school.timezone),
            },
            to=[appeal.assignee],
            subject=f"{appeal_tag(appeal.number)} Дополнение: {self._topic(appeal)}",
            number=appeal.number,
            reply_to=self.school.address,
            attachments=parsed.attachments,
        )
        self._queue(rendered, "followup", appeal, row)
        return "followup"

    def _teacher_reply(self, row, parsed: ParsedLetter, verdict: Verdict, received: datetime) -> str:
        appeal = Appeal.get_by_id(verdict.thread.number)
        body = extract_reply(parsed.text, parsed.html).strip()
        self._mark(row, "teacher_reply", appeal, verdict.reasons)
        if not body and not parsed.attachments:
            record("reply_empty", f"Ответ по обращению № {appeal.number} от {parsed.from_addr} "
                   "пуст (только цитата): ученику ничего не отправлено.",
                   appeal=appeal.number, letter=row.id)
            return "teacher_reply"
        now = to_utc_naive(received)
        Appeal.update(
            status="answered",
            answered_at=appeal.answered_at or now,
            updated_at=utcnow(),
        ).where(Appeal.number == appeal.number).execute()
        teacher = self.roster.name_of(parsed.from_addr)
        record("answered", f"{teacher} ответил(а) на обращение № {appeal.number}; ответ переслан "
               f"{appeal.sender}. " + " ".join(verdict.reasons), appeal=appeal.number, letter=row.id)
        refs = self._thread_ids(appeal)
        greeting = greeting_name(self.roster.name_of(appeal.sender), appeal.sender_role)
        rendered = self.composer.build(
            "relay",
            {
                "appeal": appeal,
                "teacher_name": teacher,
                "body": body or "(ответ во вложении)",
                "attachments": [a.filename for a in parsed.attachments],
                "greeting_name": greeting,
            },
            to=[appeal.sender],
            subject=reply_subject(appeal.title, appeal.number),
            number=appeal.number,
            from_name=f"{teacher} ({self.school.name})",
            in_reply_to=appeal.thread_root or (refs[-1] if refs else None),
            references=refs,
            attachments=parsed.attachments,
        )
        self._queue(rendered, "relay", appeal, row)
        return "teacher_reply"
