"""Planning the ladder of each appeal into ``sla_step`` rows, and cancelling it.

``schedule_steps`` computes, with the working calendar, when every level of the
ladder falls due for an appeal's current deadline and stores the rows; the
processing stage may call it in the transaction that creates or reopens an
appeal. The sweep does not rely on that: ``reconcile`` finds the appeals whose
steps are missing or out of date, cheaply, through ``appeal.updated_at`` (every
writer of an appeal bumps it): only appeals updated since the last pass (less a
safety margin for transactions that committed late) are looked at, with one
anti-join query. The first pass after an upgrade looks at every appeal.

Writers of ``sla_step`` must run inside a transaction of their caller.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from peewee import fn

from ..store.db import set_meta
from ..store.models import Appeal, Event, Letter, Meta, as_aware, to_utc_naive
from .calendar import WorkCalendar
from .ladder import WHO_NAMES, Ladder, level_times
from .models import CANCELLED, PENDING, REMINDER, SlaStep

MARK_KEY = "sla_updated_mark"
# Appeals updated this long before the last mark are looked at again: a transaction
# that stamped updated_at earlier but committed after the last pass is not missed.
SAFETY_MARGIN = timedelta(minutes=10)

STATUS_REASONS = {
    "answered": "на обращение ответили",
    "closed": "обращение закрыто",
    "paused": "обращение приостановлено: ждём ответа автора",
}


def status_reason(status: str) -> str:
    return STATUS_REASONS.get(status, f"обращение в состоянии «{status}»")


def event(kind: str, message: str, appeal: int | None, **data) -> None:
    Event.create(kind=kind, message=message, appeal=appeal,
                 data=json.dumps(data, ensure_ascii=False, default=str))


# --- when the clock of the current deadline started ------------------------------------


def window_start(appeal: Appeal, calendar: WorkCalendar, window_days: float) -> datetime:
    """When the clock of the appeal's current deadline started.

    The deadline is computed from the letter that opened or reopened the appeal,
    so that letter is looked for (newest first) among the appeal's letters. When
    none matches (the deadline was set otherwise, or the window setting changed),
    the latest start whose deadline is not after the current one is searched for
    (the deadline is monotone in the start), to the minute.
    """
    due = as_aware(appeal.due_at)
    received = as_aware(appeal.received_at)
    if received is not None and calendar.deadline(received, window_days).due == due:
        return received  # a new appeal: no need to look at its letters
    candidates = [
        as_aware(row.received_at)
        for row in Letter.select(Letter.received_at)
        .where((Letter.appeal == appeal.number) & Letter.kind.in_(("appeal", "followup")))
        .order_by(Letter.received_at.desc())
        .limit(20)
    ]
    for moment in candidates:
        if calendar.deadline(moment, window_days).due == due:
            return moment
    lo = received
    if lo is None or calendar.deadline(lo, window_days).due > due:
        return lo or due
    hi = due
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if calendar.deadline(mid, window_days).due <= due:
            lo = mid
        else:
            hi = mid
    whole = lo.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if whole <= hi and calendar.deadline(whole, window_days).due <= due:
        return whole  # letters arrive at any second, deadlines are set on whole minutes
    return lo.replace(microsecond=0)


# --- one appeal -----------------------------------------------------------------------------


def schedule_steps(
    appeal: Appeal,
    calendar: WorkCalendar,
    ladder: Ladder,
    *,
    window_days: float = 1.0,
    start: datetime | None = None,
    now: datetime | None = None,
) -> list[SlaStep]:
    """Make sure the appeal's ladder is planned for its current deadline; idempotent.

    Pending steps planned for an older deadline (a follow-up reopened the appeal)
    are cancelled and the ladder is planned anew. ``start`` is when the clock of
    the deadline started (default: found by ``window_start``). Returns the steps
    of the current deadline. Call inside a transaction.
    """
    return plan_appeal(appeal, calendar, ladder, window_days=window_days, start=start, now=now)[0]


def plan_new_appeal(
    appeal: Appeal, calendar: WorkCalendar, ladder: Ladder, *, window_days: float, start: datetime
) -> int:
    """Plan the ladder of an appeal created in the caller's transaction, whose deadline
    clock started at ``start``: it can have no steps yet, so this is one INSERT (what
    ``schedule_steps`` does for such an appeal, without its look-ups). Returns how many
    steps were planned."""
    if appeal.due_at is None or appeal.status != "open":
        return 0
    planned_for = to_utc_naive(as_aware(appeal.due_at))
    rows = _ladder_rows(appeal, calendar, ladder, start, window_days, planned_for)
    if rows:
        SlaStep.insert_many(rows).execute()
    return len(rows)


def _ladder_rows(appeal: Appeal, calendar: WorkCalendar, ladder: Ladder, start: datetime,
                 window_days: float, planned_for: datetime) -> list[dict]:
    times = level_times(ladder, calendar, start, as_aware(appeal.due_at), window_days)
    return [
        {"appeal": appeal.number, "level": index, "kind": level.kind,
         "planned_for": planned_for, "due_at": to_utc_naive(at)}
        for index, level, at in times
    ]


def plan_appeal(
    appeal: Appeal,
    calendar: WorkCalendar,
    ladder: Ladder,
    *,
    window_days: float = 1.0,
    start: datetime | None = None,
    now: datetime | None = None,
) -> tuple[list[SlaStep], int]:
    """``schedule_steps``, also returning how many stale steps were cancelled."""
    if appeal.due_at is None or appeal.status != "open":
        return [], 0
    now_naive = to_utc_naive(now or datetime.now(timezone.utc))
    planned_for = to_utc_naive(as_aware(appeal.due_at))
    existing = list(SlaStep.select().where(SlaStep.appeal == appeal.number))
    current = [s for s in existing if _same(s.planned_for, planned_for)]
    stale = [s.id for s in existing if not _same(s.planned_for, planned_for) and s.state == PENDING]
    if stale:
        SlaStep.update(state=CANCELLED, done_at=now_naive, note="срок ответа изменился").where(
            SlaStep.id.in_(stale)
        ).execute()
    if current:
        revived = [s.id for s in current if s.state == CANCELLED]
        if revived:  # the appeal is open again with the same deadline (e.g. a pause undone)
            SlaStep.update(state=PENDING, done_at=None, note="").where(SlaStep.id.in_(revived)).execute()
            ids = [s.id for s in current]
            return list(SlaStep.select().where(SlaStep.id.in_(ids)).order_by(SlaStep.level)), len(stale)
        return sorted(current, key=lambda s: s.level), len(stale)
    begin = start or window_start(appeal, calendar, window_days)
    rows = _ladder_rows(appeal, calendar, ladder, begin, window_days, planned_for)
    if rows:
        SlaStep.insert_many(rows).on_conflict_ignore().execute()
    steps = list(
        SlaStep.select()
        .where((SlaStep.appeal == appeal.number) & (SlaStep.planned_for == planned_for))
        .order_by(SlaStep.level)
    )
    if existing:
        tz = calendar.hours.tz
        when = "; ".join(
            f"{_step_name(s, ladder)} — {as_aware(s.due_at).astimezone(tz):%d.%m.%Y %H:%M}" for s in steps
        )
        event("sla_replanned",
              f"Срок ответа по обращению № {appeal.number} изменился: напоминания и эскалация "
              f"пересчитаны{': ' + when if when else ''}.",
              appeal.number, cancelled=len(stale))
    return steps, len(stale)


def cancel_steps(appeal_number: int, reason: str, now: datetime | None = None) -> int:
    """Cancel the pending steps of an appeal (answered, closed); returns how many.

    Call inside the transaction that changes the appeal's status.
    """
    now_naive = to_utc_naive(now or datetime.now(timezone.utc))
    count = (
        SlaStep.update(state=CANCELLED, done_at=now_naive, note=reason)
        .where((SlaStep.appeal == appeal_number) & (SlaStep.state == PENDING))
        .execute()
    )
    if count:
        event("sla_cancelled",
              f"Напоминания и эскалация по обращению № {appeal_number} отменены: {reason}.",
              appeal_number, steps=count)
    return count


def _step_name(step: SlaStep, ladder: Ladder) -> str:
    if step.kind == REMINDER:
        return "напоминание"
    level = ladder.level(step.level)
    who = ", ".join(WHO_NAMES.get(w, w) for w in level.to) if level else ""
    return f"эскалация ({who})" if who else "эскалация"


def _same(a, b) -> bool:
    return to_utc_naive(as_aware(a)) == to_utc_naive(as_aware(b))


# --- every appeal that changed ----------------------------------------------------------


def reconcile(
    calendar: WorkCalendar, ladder: Ladder, *, window_days: float, now: datetime, full: bool = False
) -> tuple[int, int]:
    """Plan the appeals without an up-to-date plan, cancel the steps of appeals no
    longer open. Looks only at appeals updated since the last pass (every appeal
    when ``full`` or on the first pass). Returns (appeals planned, steps
    cancelled). Call inside a transaction."""
    newest = as_aware(Appeal.select(fn.MAX(Appeal.updated_at)).scalar())
    if newest is None:
        return 0, 0
    mark_row = None if full else Meta.get_or_none(Meta.key == MARK_KEY)
    mark = as_aware(datetime.fromisoformat(mark_row.value)) if mark_row else None

    live = SlaStep.alias("live")
    planned_now = (
        live.select(live.id)
        .where((live.appeal == Appeal.number) & (live.planned_for == Appeal.due_at) & (live.state != CANCELLED))
    )
    pending = SlaStep.alias("pending")
    has_pending = pending.select(pending.id).where((pending.appeal == Appeal.number) & (pending.state == PENDING))
    needs_plan = (Appeal.status == "open") & Appeal.due_at.is_null(False) & ~fn.EXISTS(planned_now)
    needs_cancel = (Appeal.status != "open") & fn.EXISTS(has_pending)
    query = Appeal.select().where(needs_plan | needs_cancel)
    if mark is not None:
        query = query.where(Appeal.updated_at >= to_utc_naive(mark - SAFETY_MARGIN))
    planned = cancelled = 0
    # No ORDER BY: it would steer SQLite from the updated_at index to a primary-key scan.
    for appeal in sorted(query, key=lambda a: a.number):
        if appeal.status == "open":
            cancelled += plan_appeal(appeal, calendar, ladder, window_days=window_days, now=now)[1]
            planned += 1
        else:
            cancelled += cancel_steps(appeal.number, status_reason(appeal.status), now)
    if mark is None or newest > mark:
        set_meta(MARK_KEY, newest.isoformat())
    return planned, cancelled


__all__ = [
    "cancel_steps",
    "reconcile",
    "plan_appeal",
    "plan_new_appeal",
    "schedule_steps",
    "status_reason",
    "window_start",
]
