"""The ingest runner: new letters from the mailbox into the ``letter`` table.

getmail-style bookkeeping: a letter's identity is (mailbox, UIDVALIDITY, UID),
and the high-water mark moves only in the transaction that stores the letter,
so a crash between fetch and store just fetches it again. A Message-ID (or, for
a letter without one, a hash of its bytes) already stored makes a copy of the
same letter a no-op, which also covers a UIDVALIDITY reset.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from ..store.models import Event, Letter, MailboxState, database, to_utc_naive, utcnow
from .imap import FetchedLetter, Mailbox

log = logging.getLogger("helpdesk.ingest")

FLAG_BATCH = 200


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    uidvalidity_changed: bool = False


def _headers(raw: bytes):
    return BytesHeaderParser(policy=compat32).parsebytes(raw, headersonly=True)


def _message_id(headers) -> str | None:
    """The Message-ID header, normalised to '<...>'."""
    value = str(headers.get("Message-ID") or "").strip()
    if not value:
        return None
    value = value.split()[0]
    if not value.startswith("<"):
        value = f"<{value}>"
    return value[:998]


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _state(key: str) -> MailboxState:
    state, _ = MailboxState.get_or_create(mailbox=key)
    return state


def store_letter(key: str, uidvalidity: int | None, fetched: FetchedLetter) -> bool:
    """Store one letter unless it is a copy of a stored one. Call inside a transaction.

    Returns True when a new row was written."""
    headers = _headers(fetched.raw)
    message_id = _message_id(headers)
    digest = content_hash(fetched.raw)
    if message_id is not None:
        duplicate = Letter.select(Letter.id).where(Letter.message_id == message_id).exists()
    else:
        duplicate = (
            Letter.select(Letter.id)
            .where(Letter.message_id.is_null() & (Letter.content_hash == digest))
            .exists()
        )
    if duplicate:
        Event.create(
            kind="duplicate",
            message=f"Письмо UID {fetched.uid} уже было получено раньше "
            f"({'тот же Message-ID' if message_id else 'то же содержимое'}): повторно не обрабатывается.",
        )
        return False
    Letter.create(
        mailbox=key,
        uidvalidity=uidvalidity,
        uid=fetched.uid,
        message_id=message_id,
        content_hash=digest,
        raw=fetched.raw,
        received_at=to_utc_naive(fetched.internaldate),
        sender=str(headers.get("From") or "")[:254],
        title=str(headers.get("Subject") or "")[:500],
    )
    return True


def ingest(mailbox: Mailbox, limit: int | None = None) -> IngestResult:
    """Fetch every letter above the high-water mark and store it."""
    key = mailbox.settings.mailbox_key
    result = IngestResult()
    state = _state(key)
    if state.uidvalidity != mailbox.uidvalidity:
        if state.uidvalidity is not None:
            result.uidvalidity_changed = True
            log.warning(
                "%s: UIDVALIDITY changed from %s to %s; rescanning the folder "
                "(already stored letters are recognised by Message-ID)",
                key, state.uidvalidity, mailbox.uidvalidity,
            )
            Event.create(
                kind="uidvalidity",
                message=f"Почтовый сервер сменил нумерацию писем в папке ({state.uidvalidity} → "
                f"{mailbox.uidvalidity}); папка просмотрена заново, повторы не обрабатываются.",
            )
        MailboxState.update(uidvalidity=mailbox.uidvalidity, last_uid=0).where(
            MailboxState.id == state.id
        ).execute()
        state.last_uid = 0
    uids = mailbox.uids_after(state.last_uid)
    if limit:
        uids = uids[:limit]
    done: list[int] = []
    for fetched in mailbox.fetch(uids):
        with database.atomic():
            if store_letter(key, mailbox.uidvalidity, fetched):
                result.stored += 1
            else:
                result.duplicates += 1
            MailboxState.update(last_uid=fetched.uid, last_poll_at=utcnow()).where(
                MailboxState.id == state.id
            ).execute()
        done.append(fetched.uid)
        if len(done) >= FLAG_BATCH:
            mailbox.mark_processed(done)
            done = []
    mailbox.mark_processed(done)
    MailboxState.update(last_poll_at=utcnow()).where(MailboxState.id == state.id).execute()
    return result
