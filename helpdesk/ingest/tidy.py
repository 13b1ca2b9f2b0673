"""Mailbox hygiene: letters that were dealt with leave the inbox; nothing is deleted.

Runs after the process stage, on the selected folder:

* a quarantined letter is moved to ``quarantine_folder``; a ``mailbox_moved``
  event remembers that, so each one is looked for once;
* with ``processed_folder`` set, every other letter at or below the
  high-water mark (processed, ignored, or a copy of a stored letter) is moved
  there. What is still in the inbox is the to-do list: no memory is needed.

Letters still waiting to be processed stay where they are. A crash between a
MOVE and its event only means the letter is not found in the inbox the next
time, and the event says so.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from ..store.models import Event, Letter, MailboxState, database
from .imap import Mailbox

log = logging.getLogger("helpdesk.ingest")

MOVED = "mailbox_moved"  # Event.kind: a quarantined letter was filed away
CHUNK = 500  # UIDs per database query / MOVE command
DONE_STATUSES = ("processed", "ignored")
_WARNED: set[str] = set()  # mailboxes already reported as unable to move letters


@dataclass
class TidyResult:
    quarantined: int = 0  # letters moved to the quarantine folder
    processed: int = 0  # letters moved to the processed folder


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def tidy(mailbox: Mailbox) -> TidyResult:
    """Move dealt-with letters out of the inbox, as the settings ask."""
    s = mailbox.settings
    result = TidyResult()
    wanted = [f for f in (s.quarantine_folder, s.processed_folder) if f and f != s.folder]
    if not wanted:
        return result
    if not mailbox.can_move():
        if s.mailbox_key not in _WARNED:  # once per run, not once per cycle
            _WARNED.add(s.mailbox_key)
            log.warning("%s offers neither MOVE nor UIDPLUS: letters are not moved to %s",
                        s.host, " / ".join(wanted))
        return result
    if s.quarantine_folder and s.quarantine_folder != s.folder:
        result.quarantined = _file_quarantined(mailbox, s.quarantine_folder)
    if s.processed_folder and s.processed_folder != s.folder:
        result.processed = _file_processed(mailbox, s.processed_folder)
    return result


def _file_quarantined(mailbox: Mailbox, folder: str) -> int:
    key = mailbox.settings.mailbox_key
    already = Event.select(Event.letter).where((Event.kind == MOVED) & Event.letter.is_null(False))
    rows = list(
        Letter.select(Letter.id, Letter.uid)
        .where(
            (Letter.mailbox == key)
            & (Letter.uidvalidity == mailbox.uidvalidity)
            & (Letter.status == "quarantined")
            & Letter.id.not_in(already)
        )
        .order_by(Letter.id)
        .limit(CHUNK)
    )
    if not rows:
        return 0
    present = set(mailbox.existing(row.uid for row in rows if row.uid))
    mailbox.move(sorted(present), folder)
    inbox = mailbox.settings.folder
    with database.atomic():
        for row in rows:
            if row.uid in present:
                message = f"Письмо перенесено в папку «{folder}» почтового ящика: его нужно разобрать вручную."
            else:
                message = (f"Письма уже нет в папке «{inbox}» (перенесено раньше или вручную); "
                           f"в папку «{folder}» переносить нечего.")
            Event.create(kind=MOVED, letter=row.id, message=message,
                         data=json.dumps({"folder": folder, "moved": row.uid in present}))
    if present:
        log.info("moved %d quarantined letter(s) to %r", len(present), folder)
    return len(present)


def _file_processed(mailbox: Mailbox, folder: str) -> int:
    key = mailbox.settings.mailbox_key
    state = MailboxState.get_or_none(MailboxState.mailbox == key)
    if state is None or state.uidvalidity != mailbox.uidvalidity:
        return 0
    uids = mailbox.uids_up_to(state.last_uid)
    done: list[int] = []
    for chunk in _chunks(uids):
        statuses = dict(
            Letter.select(Letter.uid, Letter.status)
            .where(
                (Letter.mailbox == key)
                & (Letter.uidvalidity == mailbox.uidvalidity)
                & Letter.uid.in_(chunk)
            )
            .tuples()
        )
        # No row: the letter was a copy of one already stored (a duplicate).
        done += [uid for uid in chunk if statuses.get(uid, "duplicate") in DONE_STATUSES + ("duplicate",)]
    for chunk in _chunks(done):
        mailbox.move(chunk, folder)
    if done:
        log.debug("moved %d processed letter(s) to %r", len(done), folder)
    return len(done)
