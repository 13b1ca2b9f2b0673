"""The processing runner: stored letters -> appeals, events and queued letters.

One letter is disposed of in one transaction: the appeal, its events, the
outgoing letters and the letter's own status are written together or not at
all, so a crash in the middle leaves the letter ``new`` and the next start
processes it again from the start. A letter that cannot be understood is
quarantined with its reason; the runner goes on with the next one.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator
from zoneinfo import ZoneInfo

from peewee import fn

from .compose import (
    CATEGORY_NAMES,
    ROLE_NAMES,
    Composer,
    appeal_tag,
    format_local,
    greeting_name,
    is_female,
    reply_subject,
    short_title,
)
from .decide import Verdict, decide
from .domain import Classification, Decision, ParsedLetter, Roster
from .routing.router import router_for
from .routing.store import record_correction
from .sla.calendar import WorkCalendar
from .sla.ladder import DEFAULT_LADDER, Ladder
from .sla.plan import cancel_steps, plan_new_appeal, schedule_steps
from .store.db import commit_without_flush
from .store.models import Appeal, Event, Letter, Outgoing, as_aware, database, to_utc_naive, utcnow
from .store.threads import find_service_letter, find_thread
from .invite import consultation_ics
from .understand.commands import HELP, parse_reply
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


PENDING_BATCH = 200  # stored letters selected per query by ``pending_letter_ids``


def pending_letter_ids(batch: int = PENDING_BATCH) -> Iterator[int]:
    """Ids of the stored letters still to process (status ``new``), in order, read
    ``batch`` at a time (keyset paging): a backlog is never read into memory whole.
    A letter is yielded when it was ``new`` at its page's query; a caller that
    shares the database with other daemons claims it before processing."""
    last = 0
    while True:
        page = [i for (i,) in Letter.select(Letter.id)
                .where((Letter.status == "new") & (Letter.id > last))
                .order_by(Letter.id).limit(batch).tuples()]
        yield from page
        if len(page) < batch:
            return
        last = page[-1]


class Processor:
    def __init__(
        self,
        roster: Roster,
        composer: Composer,
        calendar: WorkCalendar,
        *,
        window_days: float = 1.0,
        absences: tuple = (),
        today=None,
        absences_now=None,
        ladder: Ladder = DEFAULT_LADDER,
        ack_limit: int = 10,
    ) -> None:
        self.roster = roster
        self.ack_limit = ack_limit  # acknowledgements per address per hour; 0 = no limit
        self.ladder = ladder
        self.composer = composer
        self.calendar = calendar
        self.window_days = window_days
        self.school = composer.school
        # Staff away on ``today``: the router gives their new appeals to others. With
        # ``absences_now`` (a callable returning (absences, today), see app.processor)
        # they are read afresh for every letter, so a long-lived processor stays current;
        # without it, the fixed ``absences`` and ``today`` given here apply.
        fixed = (tuple(absences), today)
        self.absences_now = absences_now or (lambda: fixed)
        self.last: tuple[int | None, int | None] = (None, None)

    # --- the runner loop -------------------------------------------------------

    def process_pending(self, limit: int | None = None) -> ProcessResult:
        result = ProcessResult()
        for n, letter_id in enumerate(pending_letter_ids(), start=1):
            result.add(self.process_one(letter_id))
            if limit and n >= limit:
                break
        return result

    def process_one(self, letter_id: int) -> str:
        row = Letter.get_by_id(letter_id)
        self.last = (row.uid, None)  # (UID, appeal number) of the letter in hand, for the log
        with database.atomic():  # the poison-letter count, committed before the work
            commit_without_flush()  # losing it in a database-server crash costs one more try
            Letter.update(attempts=Letter.attempts + 1).where(Letter.id == letter_id).execute()
        if row.attempts + 1 > MAX_ATTEMPTS:
            return self._quarantine(row, "обработка письма несколько раз завершилась ошибкой")
        try:
            parsed = parse_letter(bytes(row.raw))
        except UnparseableLetter as exc:
            return self._quarantine(row, f"письмо не удалось разобрать: {exc.reason}")
        try:
            absences, today = self.absences_now()
            verdict = decide(parsed, self.roster, find_thread, school_address=self.school.address,
                             find_service=find_service_letter,
                             absences=absences, today=today)
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
        if verdict.extra.get("teacher_away") and verdict.thread is not None:
            appeal = Appeal.get_by_id(verdict.thread.number)
            self._to_deputy(
                row, appeal, parsed,
                headline=f"Учитель, возможно, отсутствует: автоответ по обращению № {appeal.number}.",
                lines=[f"{self.roster.name_of(parsed.from_addr)} <{parsed.from_addr}> прислал(а) "
                       "автоматический ответ на письмо с обращением; ученику он не переслан.",
                       "Чтобы обращение не ждало, отметьте отсутствие или передайте обращение коллеге."],
                event="teacher_away",
            )
        record("ignored", f"Письмо от {parsed.from_addr} не требует ответа: {reason}", letter=row.id,
               letter_kind=verdict.kind)
        return verdict.kind

    def _mark(self, row: Letter, kind: str, appeal: Appeal, reasons) -> None:
        self.last = (row.uid, appeal.number)
        Letter.update(
            status="processed", kind=kind, appeal=appeal.number, reason=" ".join(reasons)
        ).where(Letter.id == row.id).execute()

    def _queue(self, rendered, kind: str, appeal: Appeal | None, row: Letter | None) -> None:
        self._queue_all([(rendered, kind)], appeal, row)

    def _queue_all(self, letters, appeal: Appeal | None, row: Letter | None) -> None:
        """Queue rendered letters, (rendered, kind) pairs, in this order, with one INSERT."""
        if letters:
            Outgoing.insert_many([
                {"appeal": appeal.number if appeal else None,
                 "letter": row.id if row else None,
                 "kind": kind,
                 "mail_from": self.school.address,
                 "recipients": json.dumps(list(rendered.recipients)),
                 "message_id": rendered.message_id,
                 "raw": rendered.raw}
                for rendered, kind in letters
            ]).execute()

    def _deadline(self, received: datetime) -> tuple[datetime, tuple[str, ...]]:
        deadline = self.calendar.deadline(received, self.window_days)
        return deadline.due, tuple(deadline.reasons)

    def _sender_line(self, appeal: Appeal) -> str:
        name = self.roster.name_of(appeal.sender)
        if name == appeal.sender:
            name = appeal.sender_name or ""
        role = ROLE_NAMES.get(appeal.sender_role, appeal.sender_role)
        if appeal.sender_role == "student" and is_female(name):
            role = "ученица"
        parts = [p for p in (name, f"<{appeal.sender}>", f"({role})") if p]
        line = " ".join(parts)
        if appeal.sender_role == "parent" and appeal.student:
            child = self.roster.student(appeal.student)
            line += f"; ребёнок — {self.roster.name_of(appeal.student)}" + (
                f", {child.class_name}" if child else "")
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
        plan_new_appeal(appeal, self.calendar, self.ladder, window_days=self.window_days, start=received)
        self._mark(row, "appeal", appeal, verdict.reasons)
        record(
            "appeal_created",
            f"Зарегистрировано обращение № {appeal.number} от {parsed.from_addr}; "
            f"назначено: {self.roster.name_of(d.assignee)} <{d.assignee}>. "
            + " ".join(reasons),
            appeal=appeal.number, letter=row.id,
        )
        due_text = format_local(due, self.school.timezone)
        greeting = greeting_name(self.roster.name_of(parsed.from_addr), c.sender_role)
        context = {
            "appeal": appeal,
            "assignee_name": self.roster.name_of(d.assignee),
            "assignee_role": self._role_text(d.assignee),
            "due_text": due_text,
            "greeting_name": greeting,
            "too_big": self._split_attachments(parsed)[1],
            "limit_mb": f"{self.school.attachment_limit_mb:g}",
        }
        letters = []
        if not self._ack_allowed(parsed.from_addr):
            record("ack_limited",
                   f"Подтверждение для {parsed.from_addr} не отправлено: за последний час этому адресу "
                   f"уже отправлено {self.ack_limit} подтверждений (защита от почтовых петель). "
                   "Обращение зарегистрировано и передано исполнителю.",
                   appeal=appeal.number, letter=row.id)
        else:
            letters.append((self.composer.build(
                "ack", context,
                to=[parsed.from_addr],
                subject=reply_subject(parsed.subject, appeal.number),
                number=appeal.number,
                in_reply_to=parsed.message_id,
                references=list(parsed.references) + [parsed.message_id or ""],
            ), "ack"))
        letters.append((self._assignee_letter(appeal, d.assignee, reasons, parsed), "to_assignee"))
        self._queue_all(letters, appeal, row)
        return "appeal"

    def _split_attachments(self, parsed: ParsedLetter | None) -> tuple[list, list[str]]:
        """(attachments to forward, descriptions of those left out): files are forwarded in
        order while the letter's total stays within the school's limit; the rest stay in
        the stored letter and are named to the sender and the teacher."""
        limit = self.school.attachment_limit_mb * 1024 * 1024
        kept, left_out, total = [], [], 0
        for att in (parsed.attachments if parsed else ()):
            if total + att.size > limit:
                left_out.append(f"«{att.filename}» ({att.size / 1024 / 1024:.1f} МБ)")
            else:
                kept.append(att)
                total += att.size
        return kept, left_out

    def _ack_allowed(self, address: str) -> bool:
        """Loop guard: at most ``ack_limit`` acknowledgements to one address per hour."""
        if not self.ack_limit:
            return True
        since = utcnow() - timedelta(hours=1)
        # An acknowledgement goes to the sender of its appeal only: counted through the
        # indexed appeal.sender and outgoing.appeal, not by scanning the whole outbox.
        sent = (Outgoing.select()
                .join(Appeal, on=(Outgoing.appeal == Appeal.number))
                .where((Appeal.sender == address) & (Outgoing.kind == "ack")
                       & (Outgoing.created_at >= since))
                .count())
        return sent < self.ack_limit

    def _role_text(self, email: str) -> str:
        """The staff member's roles beyond "teacher", for letters ("заместитель директора")."""
        member = self.roster.staff_member(email)
        roles = sorted(member.roles) if member else []
        return ", ".join(ROLE_NAMES[r] for r in roles if r != "teacher" and r in ROLE_NAMES)

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
        if "status" in changes:  # reopened: the ladder starts again from the new deadline
            appeal = Appeal.get_by_id(appeal.number)
            schedule_steps(appeal, self.calendar, self.ladder, window_days=self.window_days,
                           start=received)
        self._mark(row, "followup", appeal, verdict.reasons)
        record("followup", f"Дополнение к обращению № {appeal.number} от {parsed.from_addr}. "
               + " ".join(verdict.reasons), appeal=appeal.number, letter=row.id)
        self._cover_absence(appeal, row)
        body = extract_reply(parsed.text, parsed.html).strip() or "(письмо без текста)"
        attachments, left_out = self._split_attachments(parsed)
        rendered = self.composer.build(
            "followup",
            {
                "appeal": appeal,
                "assignee_name": self.roster.name_of(appeal.assignee),
                "sender_line": self._sender_line(appeal),
                "body": body,
                "attachments": [a.filename for a in attachments]
                + [f"{name} — слишком большой, не переслан" for name in left_out],
                "due_text": format_local(as_aware(appeal.due_at), self.school.timezone),
            },
            to=[appeal.assignee],
            subject=f"{appeal_tag(appeal.number)} Дополнение: {self._topic(appeal)}",
            number=appeal.number,
            reply_to=self.school.address,
            attachments=attachments,
        )
        self._queue(rendered, "followup", appeal, row)
        return "followup"

    def _cover_absence(self, appeal: Appeal, row) -> None:
        """A follow-up to an appeal whose assignee is away today goes to whoever stands in
        (the same rules as for new appeals); they get the whole appeal first."""
        absences, today = self.absences_now()
        if not absences:
            return
        c = Classification(appeal.sender_role, None, appeal.class_name, appeal.subject, appeal.category)
        d = Decision(appeal.assignee, appeal.subject, appeal.triage)
        covered = router_for(self.roster).cover(c, d, absences, today or datetime.now().date())
        if covered.assignee == appeal.assignee:
            return
        reason = covered.reasons[-1]
        Appeal.update(assignee=covered.assignee, updated_at=utcnow()).where(
            Appeal.number == appeal.number).execute()
        record("reassigned", f"Обращение № {appeal.number}: {reason}", appeal=appeal.number,
               letter=row.id, old=appeal.assignee, new=covered.assignee, source="absence")
        appeal.assignee = covered.assignee
        self._forward(appeal, covered.assignee, reason, row)

    def _service_reply(self, row, parsed: ParsedLetter, verdict: Verdict) -> str:
        Letter.update(status="processed", kind="teacher_reply", reason=" ".join(verdict.reasons)).where(
            Letter.id == row.id).execute()
        record("service_reply", f"{self.roster.name_of(parsed.from_addr)} ответил(а) на служебное "
               "письмо, а не на письмо с обращением; отправлена подсказка.", letter=row.id)
        self._notice(
            row, None, parsed.from_addr, "command_help", "Как ответить ученику",
            "Ваше письмо не отправлено ученику: это ответ на служебное письмо, а не на письмо с обращением.",
            ["Чтобы ответить ученику, откройте письмо с номером обращения в теме (например, «[№ 12] 7Б, "
             "алгебра: …») и нажмите «Ответить».", "", *HELP.splitlines()],
        )
        return "teacher_reply"

    def _teacher_reply(self, row, parsed: ParsedLetter, verdict: Verdict, received: datetime) -> str:
        if verdict.extra.get("service_reply"):
            return self._service_reply(row, parsed, verdict)
        appeal = Appeal.get_by_id(verdict.thread.number)
        self._mark(row, "teacher_reply", appeal, verdict.reasons)
        if verdict.extra.get("suspicious"):
            self._to_deputy(
                row, appeal, parsed,
                headline=f"Подозрительное письмо по обращению № {appeal.number}: ученику не переслано.",
                lines=[f"От: {parsed.from_addr}", f"Причина: {verdict.extra['suspicious']}.",
                       "Если письмо настоящее, попросите назначенного учителя ответить на письмо "
                       "службы обращений или передать ему обращение командой #передать."],
                event="suspicious_reply",
            )
            return "teacher_reply"
        local_today = received.astimezone(ZoneInfo(self.school.timezone)).date()
        reply = parse_reply(extract_reply(parsed.text, parsed.html), local_today)
        teacher = self.roster.name_of(parsed.from_addr)
        problems = [c.error for c in reply.commands if c.error]
        if problems:
            self._help_to_teacher(row, appeal, parsed, problems)
            return "teacher_reply"
        digest = hashlib.sha256(reply.text.encode()).hexdigest()[:16]
        if reply.text and self._already_relayed(appeal, digest):
            record("reply_duplicate", f"Тот же ответ {teacher} по обращению № {appeal.number} пришёл "
                   "ещё раз: повторно ученику не отправлен.", appeal=appeal.number, letter=row.id)
            return "teacher_reply"
        names = {c.name for c in reply.commands}
        consultation = next((c for c in reply.commands if c.name == "consultation"), None)
        if "close" in names:
            note = next(c.argument for c in reply.commands if c.name == "close")
            self._set_status(appeal, "closed", received, answered=True)
            record("closed", f"{teacher} закрыл(а) обращение № {appeal.number} без ответа ученику"
                   + (f": {note}" if note else "") + ".", appeal=appeal.number, letter=row.id)
            return "teacher_reply"
        handed_over = False
        for command in reply.commands:
            if command.name == "reassign":
                if not self._reassign_by_mail(row, appeal, parsed, command.email):
                    return "teacher_reply"  # the teacher got help; nothing went to the student
                handed_over = True
        if not reply.text and not parsed.attachments and consultation is None:
            if not reply.commands:
                record("reply_empty", f"Ответ по обращению № {appeal.number} от {parsed.from_addr} "
                       "пуст (только цитата): ученику ничего не отправлено.",
                       appeal=appeal.number, letter=row.id)
            elif "wait" in names:
                self._set_status(appeal, "waiting", received, answered=False)
            return "teacher_reply"
        if "reassign" in names and not reply.text and consultation is None:
            return "teacher_reply"
        waiting = "wait" in names
        if handed_over:
            # Words sent along with a handover ("передал коллеге") are not the answer:
            # the appeal stays open, with its deadline, for the new assignee.
            Appeal.update(updated_at=utcnow()).where(Appeal.number == appeal.number).execute()
        else:
            self._set_status(appeal, "waiting" if waiting else "answered", received, answered=True)
        self._relay(row, appeal, parsed, teacher, reply.text, consultation, waiting)
        if handed_over:
            record("relayed", f"{teacher} передал(а) обращение № {appeal.number} и написал(а) "
                   f"{appeal.sender}; письмо переслано, обращение ждёт ответа нового исполнителя.",
                   appeal=appeal.number, letter=row.id)
            return "teacher_reply"
        record("answered", f"{teacher} ответил(а) на обращение № {appeal.number}; ответ переслан "
               f"{appeal.sender}." + (" Срок приостановлен: учитель ждёт ответа ученика." if waiting else "")
               + (" Назначена консультация." if consultation else "") + " " + " ".join(verdict.reasons),
               appeal=appeal.number, letter=row.id, text_hash=digest)
        return "teacher_reply"

    # --- teacher replies: the pieces ------------------------------------------------------

    def _set_status(self, appeal: Appeal, status: str, at: datetime, *, answered: bool) -> None:
        changes = {"status": status, "updated_at": utcnow()}
        if answered and appeal.answered_at is None:
            changes["answered_at"] = to_utc_naive(at)
        if status == "closed":
            changes["closed_at"] = to_utc_naive(at)
        Appeal.update(**changes).where(Appeal.number == appeal.number).execute()
        if status != "open":
            cancel_steps(appeal.number, {"answered": "на обращение ответили",
                                         "waiting": "учитель ждёт ответа ученика",
                                         "closed": "обращение закрыто"}[status])

    def _already_relayed(self, appeal: Appeal, digest: str) -> bool:
        """The same answer was relayed since the student last wrote (a client that sent
        it twice); the same words after a new question from the student are a new answer."""
        last_question = (Event.select(fn.MAX(Event.id))
                         .where((Event.appeal == appeal.number) & (Event.kind == "followup"))
                         .scalar() or 0)
        return (
            Event.select()
            .where((Event.appeal == appeal.number) & (Event.kind == "answered")
                   & (Event.id > last_question)
                   & Event.data.contains(f'"text_hash": "{digest}"'))
            .exists()
        )

    def _relay(self, row, appeal: Appeal, parsed: ParsedLetter, teacher: str, text: str,
               consultation, waiting: bool) -> None:
        refs = self._thread_ids(appeal)
        attachments, left_out = self._split_attachments(parsed)
        names = [a.filename for a in attachments] + [
            f"{name} — слишком большой для письма, попросите учителя прислать ссылку" for name in left_out]
        consultation_ctx = None
        if consultation is not None:
            start = consultation.when.replace(tzinfo=ZoneInfo(self.school.timezone))
            attachments.append(consultation_ics(
                number=appeal.number, start=start, place=consultation.place, subject=appeal.subject,
                teacher=teacher, organizer=self.school.address, domain=self.school.domain,
            ))
            consultation_ctx = {"when_text": format_local(start, self.school.timezone),
                                "place": consultation.place}
        rendered = self.composer.build(
            "relay",
            {
                "appeal": appeal,
                "teacher_name": teacher,
                "body": text or ("(ответ во вложении)" if parsed.attachments else ""),
                "attachments": names,
                "greeting_name": greeting_name(self.roster.name_of(appeal.sender), appeal.sender_role),
                "consultation": consultation_ctx,
                "waiting": waiting,
                "teacher_address": parsed.from_addr if self.school.show_teacher_address else "",
            },
            to=[appeal.sender],
            subject=reply_subject(appeal.title, appeal.number),
            number=appeal.number,
            from_name=f"{teacher} ({self.school.name})",
            in_reply_to=appeal.thread_root or (refs[-1] if refs else None),
            references=refs,
            attachments=attachments,
        )
        self._queue(rendered, "relay", appeal, row)

    def _notice(self, row, appeal: Appeal | None, to: str, kind: str, subject: str, headline: str,
                lines: list[str], body: str = "") -> None:
        rendered = self.composer.build(
            "notice",
            {"recipient_name": self.roster.name_of(to), "headline": headline, "lines": lines,
             "body": body},
            to=[to],
            subject=subject,
            number=appeal.number if appeal else None,
            reply_to=self.school.address,
        )
        self._queue(rendered, kind, appeal, row)

    def _deputy(self) -> str | None:
        deputies = self.roster.with_role("deputy") or self.roster.with_role("director")
        return deputies[0].email if deputies else None

    def _to_deputy(self, row, appeal: Appeal, parsed: ParsedLetter, *, headline: str,
                   lines: list[str], event: str) -> None:
        deputy = self._deputy()
        record(event, headline + " " + " ".join(lines), appeal=appeal.number, letter=row.id)
        if deputy:
            self._notice(row, appeal, deputy, event, f"{appeal_tag(appeal.number)} {headline}",
                         headline, lines, parsed.text.strip())

    def _help_to_teacher(self, row, appeal: Appeal, parsed: ParsedLetter, problems: list[str]) -> None:
        record("command_error", f"Команда в письме {parsed.from_addr} по обращению № {appeal.number} "
               f"не выполнена: {'; '.join(problems)}. Учителю отправлена подсказка.",
               appeal=appeal.number, letter=row.id)
        self._notice(
            row, appeal, parsed.from_addr, "command_help",
            f"{appeal_tag(appeal.number)} Команда не выполнена",
            f"Команда в вашем письме по обращению № {appeal.number} не выполнена: "
            + "; ".join(problems) + ". Ученику ничего не отправлено.",
            [*HELP.splitlines(), "", "Исправьте команду и ответьте ещё раз на письмо с обращением."],
        )

    def _reassign_by_mail(self, row, appeal: Appeal, parsed: ParsedLetter, email: str) -> bool:
        new = self.roster.staff_member(email)
        if new is None:
            self._help_to_teacher(row, appeal, parsed, [f"адрес {email} не найден среди сотрудников школы"])
            return False
        self.reassign(appeal, email, by=parsed.from_addr, source="mail", letter=row)
        return True

    def reassign(self, appeal: Appeal, email: str, *, by: str, source: str, note: str = "",
                 letter=None) -> None:
        """Hand an appeal to another staff member: the letter goes to them, the event log
        says who did it."""
        old = appeal.assignee
        record_correction(appeal, old, email, source=source, who=by, note=note)
        Appeal.update(assignee=email, updated_at=utcnow()).where(Appeal.number == appeal.number).execute()
        appeal.assignee = email
        how = {"mail": "командой в письме", "cli": "командой helpdesk appeals reassign"}.get(source, source)
        reason = (f"Обращение передано от {self.roster.name_of(old)} к {self.roster.name_of(email)} "
                  f"({how}, {self.roster.name_of(by)})" + (f": {note}" if note else "") + ".")
        record("reassigned", reason, appeal=appeal.number, letter=letter.id if letter else None,
               old=old, new=email, by=by, source=source)
        self._forward(appeal, email, reason, letter)

    def _forward(self, appeal: Appeal, email: str, reason: str, letter=None) -> None:
        """(Re)send the appeal with its first letter to ``email``."""
        first = (Letter.select().where((Letter.appeal == appeal.number) & (Letter.kind == "appeal"))
                 .order_by(Letter.id).first())
        parsed = parse_letter(bytes(first.raw)) if first else None
        self._send_to_assignee(appeal, email, [reason, *appeal.reason_list()], parsed, letter)

    def _send_to_assignee(self, appeal: Appeal, email: str, reasons: list[str],
                          parsed: ParsedLetter | None, letter) -> None:
        self._queue(self._assignee_letter(appeal, email, reasons, parsed), "to_assignee", appeal, letter)

    def _assignee_letter(self, appeal: Appeal, email: str, reasons: list[str],
                         parsed: ParsedLetter | None):
        """The appeal letter to its (new) assignee: who wrote, why it is theirs, the letter."""
        attachments, left_out = self._split_attachments(parsed)
        if left_out:
            reasons = [*reasons, "Слишком большие вложения не пересланы (они сохранены в письме, "
                       "автору сообщено): " + ", ".join(left_out) + "."]
        return self.composer.build(
            "to_assignee",
            {
                "appeal": appeal,
                "assignee_name": self.roster.name_of(email),
                "assignee_role": self._role_text(email),
                "due_text": format_local(as_aware(appeal.due_at), self.school.timezone),
                "sender_line": self._sender_line(appeal),
                "category_name": CATEGORY_NAMES.get(appeal.category, appeal.category),
                "received_text": format_local(as_aware(appeal.received_at), self.school.timezone),
                "reasons": reasons,
                "body": (parsed.text.strip() if parsed else "") or "(письмо без текста)",
                "attachments": [a.filename for a in attachments],
                "show_teacher_address": self.school.show_teacher_address,
            },
            to=[email],
            subject=f"{appeal_tag(appeal.number)} {self._topic(appeal)}: "
                    f"{short_title(appeal.title) or 'без темы'}",
            number=appeal.number,
            reply_to=self.school.address,
            attachments=attachments,
        )
