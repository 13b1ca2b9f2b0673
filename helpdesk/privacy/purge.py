"""Retention: the bodies of letters of finished appeals are removed after ``[retention] bodies_days``.

What is removed (the row stays, its bytes become ``REMOVED_RAW``):

- incoming letters (with their attachments: they are inside the raw letter) of
  appeals answered or closed before the cut-off, and letters that belong to no
  appeal (ignored, bounces, teachers' service replies) received before it;
- the rendered bodies of *sent* outgoing letters of those appeals, and of sent
  letters that belong to no appeal (digests, notices) sent before it;
- the teacher's note kept in the text of a "closed" event of those appeals;
- whatever the appeal: outgoing letters given up (``failed``) created before the
  cut-off (a letter to a teacher carries the child's whole letter and its
  attachments), and quarantined incoming letters fetched before it.

Never removed: anything else of an appeal still open or waiting, a letter not yet
processed (``new``), a quarantined letter or a failed outgoing letter younger than
the cut-off (the operator may still look at it), an outgoing letter still to be
sent (queued, sending). The appeal rows and the other events are untouched (a
purged letter keeps its row and its status), so the digest and the report count
exactly as before.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from peewee import fn

from ..store.models import Appeal, Event, Letter, Outgoing, database, to_utc_naive
from . import REMOVED_RAW, flush_journal, overwrite_freed_space

FINISHED = ("answered", "closed")
TEXT_EVENTS = ("closed",)  # events whose message may carry words a person wrote
CLOSED_MARK = " без ответа ученику"


@dataclass
class PurgeResult:
    cutoff: datetime  # naive UTC: appeals finished before this were purged
    appeals: int = 0  # finished appeals whose letters were looked at
    letters: int = 0
    letter_bytes: int = 0
    outgoing: int = 0
    outgoing_bytes: int = 0
    events: int = 0
    dry_run: bool = False

    @property
    def total_bytes(self) -> int:
        return self.letter_bytes + self.outgoing_bytes

    def as_dict(self) -> dict:
        return {**asdict(self), "cutoff": self.cutoff.isoformat() + "Z", "total_bytes": self.total_bytes}

    def summary(self) -> str:
        verb = "would purge" if self.dry_run else "purged"
        return (f"{verb}: {self.letters} incoming letters ({_size(self.letter_bytes)}), "
                f"{self.outgoing} sent or failed letters ({_size(self.outgoing_bytes)}), {self.events} event texts; "
                f"appeals finished before {self.cutoff:%Y-%m-%d %H:%M} UTC: {self.appeals}")


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1048576:.1f} MiB"


def cutoff_for(now: datetime, days: int) -> datetime:
    return to_utc_naive(now) - timedelta(days=days)


def _finished_appeals(cutoff: datetime):
    """Appeals answered or closed before ``cutoff``, with no letter still waiting to be processed."""
    pending = Letter.select(Letter.id).where((Letter.appeal == Appeal.number) & (Letter.status == "new"))
    return (Appeal.select(Appeal.number)
            .where(Appeal.status.in_(FINISHED)
                   & (fn.COALESCE(Appeal.closed_at, Appeal.answered_at, Appeal.updated_at) < cutoff)
                   & (Appeal.updated_at < cutoff)
                   & ~fn.EXISTS(pending)))


def _not_removed(field):
    return field != REMOVED_RAW


def _letters(finished, cutoff: datetime):
    of_appeals = Letter.appeal.in_(finished) & Letter.status.not_in(("new", "quarantined"))
    orphans = (Letter.appeal.is_null() & Letter.status.in_(("processed", "ignored"))
               & (Letter.received_at < cutoff))
    quarantined = (Letter.status == "quarantined") & (Letter.fetched_at < cutoff)
    return (of_appeals | orphans | quarantined) & _not_removed(Letter.raw)


def _outgoing(finished, cutoff: datetime):
    of_appeals = Outgoing.appeal.in_(finished)
    orphans = Outgoing.appeal.is_null() & (Outgoing.sent_at < cutoff)
    sent = (Outgoing.status == "sent") & (of_appeals | orphans)
    failed = (Outgoing.status == "failed") & (Outgoing.created_at < cutoff)
    return (sent | failed) & _not_removed(Outgoing.raw)


def _sum_length(model, where) -> tuple[int, int]:
    count, size = model.select(fn.COUNT(model.id), fn.SUM(fn.LENGTH(model.raw))).where(where).scalar(
        as_tuple=True)
    count = int(count or 0)
    return count, max(0, int(size or 0) - count * len(REMOVED_RAW))


def _text_events(finished):
    return (Event.appeal.in_(finished) & Event.kind.in_(TEXT_EVENTS)
            & Event.message.contains(CLOSED_MARK + ":"))


def neutral_closed_message(message: str) -> str:
    """The "closed" event's sentence without the teacher's note."""
    head = message.split(CLOSED_MARK, 1)[0]
    return head + CLOSED_MARK + " (пояснение удалено по сроку хранения)."


def purge(now: datetime, days: int, *, dry_run: bool = False) -> PurgeResult:
    """Remove the bodies of letters of appeals finished more than ``days`` days before ``now``."""
    if days <= 0:
        raise ValueError("days must be positive (0 means: keep forever, nothing to purge)")
    cutoff = cutoff_for(now, days)
    result = PurgeResult(cutoff=cutoff, dry_run=dry_run)
    if not dry_run:
        overwrite_freed_space()
    with database.atomic():
        finished = _finished_appeals(cutoff)
        result.appeals = finished.count()
        letters, outgoing = _letters(finished, cutoff), _outgoing(finished, cutoff)
        result.letters, result.letter_bytes = _sum_length(Letter, letters)
        result.outgoing, result.outgoing_bytes = _sum_length(Outgoing, outgoing)
        events = list(Event.select(Event.id, Event.message).where(_text_events(finished)))
        result.events = len(events)
        if dry_run:
            return result
        Letter.update(raw=REMOVED_RAW).where(letters).execute()
        Outgoing.update(raw=REMOVED_RAW).where(outgoing).execute()
        for event in events:
            Event.update(message=neutral_closed_message(event.message)).where(Event.id == event.id).execute()
        if result.letters or result.outgoing or result.events:
            Event.create(
                kind="purged",
                message=(f"Удалены тексты писем по сроку хранения ({days} дн.): входящих писем "
                         f"{result.letters}, исходящих {result.outgoing}, пояснений в журнале "
                         f"{result.events}; статистика обращений сохранена."),
                data=json.dumps(result.as_dict(), ensure_ascii=False),
            )
    flush_journal()
    return result
