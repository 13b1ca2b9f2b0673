"""The ingest runner: new letters from the mailbox into the ``letter`` table.

getmail-style bookkeeping: a letter's identity is (mailbox, UIDVALIDITY, UID),
and the high-water mark moves only in the transaction that stores the letter,
so a crash between fetch and store just fetches it again. A copy of a stored
letter (the same Message-ID and content, or the same content for a letter
without a Message-ID) is a no-op, which also covers a UIDVALIDITY reset, a
letter delivered twice and a letter copied into the folder again.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr
from typing import Callable

from ..store.db import commit_without_flush
from ..store.models import Event, Letter, MailboxState, database, to_utc_naive, utcnow
from ..understand.parse import decode_header_value
from .imap import FetchedLetter, Mailbox

log = logging.getLogger("helpdesk.ingest")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_MSGID = re.compile(r"<([^<>]+)>")


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    uidvalidity_changed: bool = False
    stopped: bool = False  # a stop was requested before every new letter was taken in


# The header fields the sender's program wrote and every server passes on as
# they are. A letter's content hash covers these and the body, and nothing that
# servers add on the way (Received, Delivered-To, spam scores, ...).
AUTHORED_FIELDS = ("from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id",
                   "in-reply-to", "references", "content-type")


def _headers(raw: bytes):
    return BytesHeaderParser(policy=compat32).parsebytes(raw, headersonly=True)


def _message_id(headers) -> str | None:
    """The Message-ID header as '<...>', the way the parser reads it (whitespace
    and control characters removed: a database column must be able to hold it)."""
    value = _CONTROL.sub("", str(headers.get("Message-ID") or ""))
    found = _MSGID.search(value)
    inner = found.group(1) if found else (value.split() or [""])[0]
    inner = "".join(inner.split())
    return f"<{inner}>"[:998] if inner else None


def _text(headers, name: str, limit: int) -> str:
    """A header as readable one-line text for listings (RFC 2047 and 8-bit decoded)."""
    raw = next((str(v) for k, v in headers.raw_items() if k.strip().lower() == name.lower()), None)
    if raw is None:
        return ""
    try:
        text = decode_header_value(raw)
    except Exception:  # noqa: BLE001 - a display value is never worth losing a letter
        text = raw
    return _CONTROL.sub(" ", text).strip()[:limit]


def _sender(headers) -> str:
    name_and_address = _text(headers, "From", 998)
    address = parseaddr(name_and_address)[1]
    return (address or name_and_address)[:254]


def content_hash(raw: bytes) -> str:
    """A fingerprint of what the sender wrote.

    The ``AUTHORED_FIELDS`` of the header and the body, line ends and blanks
    normalised: two deliveries of one letter, or a copy made in the folder,
    hash the same; two different letters do not.
    """
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    head, sep, body = text.partition(b"\n\n")
    if not sep:  # no header/body boundary: not a letter we can take apart
        return hashlib.sha256(text.rstrip()).hexdigest()
    digest = hashlib.sha256()
    for name, value in _fields(head):
        if name in AUTHORED_FIELDS:
            digest.update(name.encode() + b":" + b" ".join(value.split()) + b"\n")
    digest.update(b"\n")
    digest.update(b"\n".join(line.rstrip() for line in body.rstrip().split(b"\n")))
    return digest.hexdigest()


def _fields(head: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, value) of each header field, continuation lines joined."""
    lines: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b" " + line.strip()
        else:
            lines.append(line)
    fields = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if colon:
            fields.append((name.strip().lower().decode("ascii", "replace"), value.strip()))
    return fields


def _state(key: str) -> MailboxState:
    state, _ = MailboxState.get_or_create(mailbox=key)
    return state


def _stored_without_id(digest: str) -> bool:
    """Whether a letter with no Message-ID and this content is stored already."""
    return (Letter.select(Letter.id)
            .where(Letter.message_id.is_null() & (Letter.content_hash == digest)).exists())


def _duplicate(uid: int, how: str) -> bool:
    Event.create(kind="duplicate", message=f"Письмо UID {uid} уже было получено раньше ({how}): "
                 "повторно не обрабатывается.")
    return False


def store_letter(key: str, uidvalidity: int | None, fetched: FetchedLetter) -> bool:
    """Store one letter unless it is a copy of a stored one. Call inside a transaction.

    A copy is a letter with a stored Message-ID and the same content (or, with
    no Message-ID, the same content). A different letter under a Message-ID
    already taken (some mail programs reuse them) is kept as a letter of its
    own: losing it would be worse. Returns True when a new row was written."""
    headers = _headers(fetched.raw)
    message_id = _message_id(headers)
    digest = content_hash(fetched.raw)
    # One look-up in the usual case (a new letter with its own Message-ID): the stored
    # letter's content under that Message-ID tells a copy from a reused Message-ID.
    earlier = (Letter.select(Letter.content_hash).where(Letter.message_id == message_id).first()
               if message_id is not None else None)
    if earlier is not None and earlier.content_hash == digest:
        return _duplicate(fetched.uid, "тот же Message-ID")
    if earlier is not None:  # a different letter under a Message-ID already taken
        Event.create(
            kind="message_id_reused",
            message=f"Письмо UID {fetched.uid} пришло с Message-ID {message_id}, как у другого, "
            "уже полученного письма, но с другим содержанием: принято как отдельное письмо.",
        )
        log.warning("UID %s: Message-ID %s reused by a different letter; kept as a letter of its own",
                    fetched.uid, message_id)
        message_id = None
    if message_id is None and _stored_without_id(digest):
        return _duplicate(fetched.uid, "то же содержимое")
    Letter.create(
        mailbox=key,
        uidvalidity=uidvalidity,
        uid=fetched.uid,
        message_id=message_id,
        content_hash=digest,
        raw=fetched.raw,
        received_at=to_utc_naive(fetched.internaldate),
        sender=_sender(headers),
        title=_text(headers, "Subject", 500),
    )
    return True


def _never() -> bool:
    return False


def _reset_for_new_uidvalidity(key: str, state: MailboxState, mailbox: Mailbox,
                               result: IngestResult) -> None:
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
    state.uidvalidity, state.last_uid = mailbox.uidvalidity, 0


def _take_in(key: str, mailbox: Mailbox, state: MailboxState, letters: list[FetchedLetter],
             result: IngestResult) -> None:
    """Store a fetched batch and move the mark past it, in one transaction.

    The commit does not wait for the database's disk flush: were the database
    server to crash and forget it, the letters and the mark would be forgotten
    together, and the letters fetched again -- nothing is lost."""
    if not letters:
        return
    with database.atomic():
        commit_without_flush()
        stored = sum(store_letter(key, mailbox.uidvalidity, fetched) for fetched in letters)
        MailboxState.update(last_uid=max(f.uid for f in letters), last_poll_at=utcnow()).where(
            MailboxState.id == state.id
        ).execute()
    result.stored += stored  # counted once committed
    result.duplicates += len(letters) - stored


def ingest(mailbox: Mailbox, limit: int | None = None,
           should_stop: Callable[[], bool] = _never) -> IngestResult:
    """Fetch every letter above the high-water mark and store it.

    Letters are flagged right after they are fetched and before they are
    stored: a crash in between leaves a flagged letter above the mark, which
    the next run fetches again, never a stored letter without the flag.

    A backlog is streamed: FETCH by FETCH (at most ``FETCH_BATCH`` letters and
    about ``FETCH_BYTES`` each), every batch stored before the next is fetched,
    so memory does not grow with the number of letters waiting.
    """
    key = mailbox.settings.mailbox_key
    result = IngestResult()
    state = _state(key)
    if state.uidvalidity != mailbox.uidvalidity:
        _reset_for_new_uidvalidity(key, state, mailbox, result)
    uids = mailbox.uids_after(state.last_uid)
    if limit:
        uids = uids[:limit]
    for chunk in mailbox.batches(uids):
        if should_stop():
            result.stopped = True
            break
        letters = list(mailbox.fetch(chunk, batch=len(chunk)))
        mailbox.mark_processed([letter.uid for letter in letters])
        _take_in(key, mailbox, state, letters, result)
    MailboxState.update(last_poll_at=utcnow()).where(MailboxState.id == state.id).execute()
    return result
