"""Finding the appeal a letter continues, from what is stored (read-only)."""
from __future__ import annotations

from ..decide import ThreadInfo, thread_references
from ..domain import ParsedLetter
from .models import Appeal, Letter, Outgoing


# Letters whose Message-ID authorises the staff member they went to to answer the
# appeal (they carry the appeal itself); and the student-side letters of a thread.
TOKEN_KINDS = ("to_assignee", "followup")
STUDENT_KINDS = ("ack", "relay")
# Service letters about many appeals or about the service itself: a reply to one of
# them is not an answer to a student.
SERVICE_KINDS = ("reminder", "escalation", "suspicious_reply", "teacher_away", "command_help")


def find_service_letter(letter: ParsedLetter) -> str | None:
    """The kind of the helpdesk's service letter (reminder, escalation, ...) this answers."""
    ids, _ = thread_references(letter)
    if not ids:
        return None
    row = (Outgoing.select(Outgoing.kind)
           .where(Outgoing.message_id.in_(ids) & Outgoing.kind.in_(SERVICE_KINDS)).first())
    return row.kind if row else None


def _info(appeal: Appeal, how: str, holders: frozenset[str] = frozenset()) -> ThreadInfo:
    return ThreadInfo(
        number=appeal.number,
        sender=appeal.sender,
        student=appeal.student,
        assignee=appeal.assignee,
        status=appeal.status,
        how=how,
        token_holders=holders,
    )


def find_thread(letter: ParsedLetter) -> ThreadInfo | None:
    ids, number = thread_references(letter)
    if ids:
        answered = list(
            Outgoing.select(Outgoing.appeal, Outgoing.recipients, Outgoing.message_id, Outgoing.kind)
            .where(Outgoing.message_id.in_(ids) & Outgoing.appeal.is_null(False)
                   & Outgoing.kind.in_(TOKEN_KINDS + STUDENT_KINDS))
        )
        if answered:
            # The nearest referenced letter decides the appeal (In-Reply-To comes first).
            answered.sort(key=lambda o: ids.index(o.message_id))
            number = answered[0].appeal_id
            holders = frozenset(
                r for o in answered
                if o.appeal_id == number and o.kind in TOKEN_KINDS for r in o.recipient_list()
            )
            return _info(
                answered[0].appeal,
                f"Письмо — ответ на письмо службы обращений по обращению № {number} "
                "(по заголовкам In-Reply-To/References).",
                holders,
            )
        if find_service_letter(letter):
            # An answer to a reminder, an escalation or a notice (even one that names an
            # appeal in its subject) continues no appeal: the sender gets a hint instead.
            return None
        earlier = (
            Letter.select(Letter.appeal)
            .where(Letter.message_id.in_(ids) & Letter.appeal.is_null(False))
            .first()
        )
        if earlier is not None:
            return _info(
                earlier.appeal,
                f"Письмо — ответ в переписке по обращению № {earlier.appeal_id} "
                "(по заголовкам In-Reply-To/References).",
            )
    if number is not None:
        appeal = Appeal.get_or_none(Appeal.number == number)
        if appeal is not None:
            return _info(appeal, f"В теме письма указан номер обращения [№ {number}].")
    return None
