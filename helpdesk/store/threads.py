"""Finding the appeal a letter continues, from what is stored (read-only)."""
from __future__ import annotations

from ..decide import ThreadInfo, thread_references
from ..domain import ParsedLetter
from .models import Appeal, Letter, Outgoing


def _info(appeal: Appeal, how: str) -> ThreadInfo:
    return ThreadInfo(
        number=appeal.number,
        sender=appeal.sender,
        student=appeal.student,
        assignee=appeal.assignee,
        status=appeal.status,
        how=how,
    )


def find_thread(letter: ParsedLetter) -> ThreadInfo | None:
    ids, number = thread_references(letter)
    if ids:
        out = (
            Outgoing.select(Outgoing.appeal)
            .where(Outgoing.message_id.in_(ids) & Outgoing.appeal.is_null(False))
            .first()
        )
        if out is not None:
            return _info(
                out.appeal,
                f"Письмо — ответ на письмо службы обращений по обращению № {out.appeal_id} "
                "(по заголовкам In-Reply-To/References).",
            )
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
