"""The due-work sweep: fire the ladder steps whose time has come.

``sweep(config, now)`` is safe to call every daemon cycle:

1. ``plan.reconcile``: plan the appeals created or reopened since the last pass,
   cancel the steps of appeals answered or closed since then (indexed on
   ``appeal.updated_at``);
2. one range query on ``sla_step (state, due_at)`` for the pending steps due by
   ``now`` (nothing else is read when nothing is due);
3. for those: a step of an appeal no longer open, or planned for an older
   deadline, is cancelled; a reminder whose deadline has already passed (the
   daemon was down) is skipped; every other step is claimed (a conditional
   update, so two sweeps at once cannot both fire it), batched into one letter
   per person, queued as ``Outgoing`` rows and written to the event log.

Everything of one sweep is one transaction: the marks, the letters and the
events are stored together or not at all. ``dry_run`` rolls it back. On
PostgreSQL the transaction first takes an advisory lock (``SWEEP_LOCK``), so
several daemons on one database sweep one at a time: a daemon that finds the
lock taken skips its sweep, the other one does the work.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .. import app
from ..compose import Composer
from ..roster.store import load_roster
from ..store.db import try_transaction_lock
from ..store.models import Appeal, Event, Outgoing, as_aware, database, to_utc_naive, utcnow
from .calendar import WorkCalendar
from .ladder import ESCALATION, REMINDER, WHO_NAMES, Ladder, ladder_from_config, resolve, window_days_from_config
from .models import FIRED, PENDING, SKIPPED, SlaStep
from .notices import Fired, ItemMaker, Notice, batch, late_text, render
from .plan import cancel_steps, plan_appeal, reconcile, status_reason

log = logging.getLogger("helpdesk.sla")

CHUNK = 500  # ids per UPDATE ... IN (...), rows per INSERT
SWEEP_LOCK = "helpdesk/sla-sweep"  # advisory lock name (PostgreSQL)


@dataclass(frozen=True)
class LetterInfo:
    kind: str  # reminder | escalation
    to: str
    numbers: tuple[int, ...]
    outgoing_id: int | None  # None in a dry run


@dataclass
class SweepResult:
    now: datetime
    dry_run: bool = False
    planned: int = 0  # appeals whose steps were planned or re-planned
    cancelled: int = 0  # steps cancelled (answered, closed, deadline changed)
    skipped: int = 0  # steps due but not sent (reminder after the deadline, nobody to tell)
    fired: list[tuple[int, int, str]] = field(default_factory=list)  # (appeal, level, kind)
    letters: list[LetterInfo] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not (self.planned or self.cancelled or self.skipped or self.fired)

    def summary(self) -> str:
        kinds = {k: sum(1 for l in self.letters if l.kind == k) for k in (REMINDER, ESCALATION)}
        return (
            f"sla: {len(self.fired)} step(s) fired, {kinds[REMINDER]} reminder and "
            f"{kinds[ESCALATION]} escalation letter(s) queued; {self.planned} appeal(s) planned, "
            f"{self.cancelled} step(s) cancelled, {self.skipped} skipped"
            + (" (dry run: nothing stored)" if self.dry_run else "")
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "planned": self.planned,
            "cancelled": self.cancelled,
            "skipped": self.skipped,
            "fired": [{"appeal": a, "level": lv, "kind": k} for a, lv, k in self.fired],
            "letters": [
                {"kind": l.kind, "to": l.to, "appeals": list(l.numbers), "outgoing": l.outgoing_id}
                for l in self.letters
            ],
        }


class _Rollback(Exception):
    pass


def sweep(config, now: datetime | None = None, *, dry_run: bool = False, full: bool = False) -> SweepResult:
    """Fire every ladder step due by ``now`` (aware; default: the real time).

    ``dry_run``: compute everything, store nothing. ``full``: look at every appeal
    for missing plans, not only those changed since the last sweep. The database
    must be open (``app.open_db``)."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("sweep: `now` must be an aware datetime")
    calendar = app.work_calendar(config)
    runner = _Sweep(config, calendar, ladder_from_config(config), window_days_from_config(config), now, full)
    result = SweepResult(now=now, dry_run=dry_run)
    try:
        with database.atomic():
            # Several daemons on one PostgreSQL: one sweep at a time; a daemon that
            # finds another one sweeping leaves it the work (the claim of each step
            # below is conditional as well, so no step can fire twice in any case).
            if not try_transaction_lock(SWEEP_LOCK):
                return result
            runner.run(result)
            if dry_run:
                raise _Rollback
    except _Rollback:
        result.letters = [dataclasses.replace(l, outgoing_id=None) for l in result.letters]
    if result.letters and not dry_run:
        log.info(result.summary())
    return result


def due_query(now: datetime):
    """Pending steps due by ``now`` with their appeals: the sweep's one indexed query."""
    return (
        SlaStep.select(SlaStep, Appeal)
        .join(Appeal)
        .where((SlaStep.state == PENDING) & (SlaStep.due_at <= to_utc_naive(now)))
        .order_by(SlaStep.due_at, SlaStep.id)
    )


class _Sweep:
    def __init__(self, config, calendar: WorkCalendar, ladder: Ladder, window_days: float, now: datetime,
                 full: bool = False):
        self.config = config
        self.full = full
        self.calendar = calendar
        self.ladder = ladder
        self.window_days = window_days
        self.now = now
        self.now_naive = to_utc_naive(now)

    def run(self, result: SweepResult) -> None:
        result.planned, result.cancelled = reconcile(
            self.calendar, self.ladder, window_days=self.window_days, now=self.now, full=self.full
        )
        due = list(due_query(self.now))
        if not due:
            return
        fired = self._select(due, result)
        if not fired:
            return
        roster = load_roster()
        notices, orphans = batch(fired, roster, ItemMaker(roster, self.calendar, self.now))
        composer = Composer(self.config.paths.templates, app.school_identity(self.config))
        sent_to: dict[int, list[tuple[str, int]]] = {}
        for notice in notices:
            outgoing_id = self._queue(notice, composer)
            result.letters.append(LetterInfo(notice.kind, notice.recipient, tuple(notice.numbers), outgoing_id))
            for step_id in dict.fromkeys(notice.step_ids):
                sent_to.setdefault(step_id, []).append((notice.recipient, outgoing_id))
        orphan_set = set(orphans)
        events: list[dict] = []
        for f in fired:
            if f.step_id in orphan_set:
                log.warning("appeal %s: ladder level %s has nobody to notify", f.appeal.number, f.level.to)
                events.append(_event_row(
                    "sla_skipped",
                    f"Уровень эскалации по обращению № {f.appeal.number} пропущен: в списке "
                    f"сотрудников нет адресата ({', '.join(WHO_NAMES.get(w, w) for w in f.level.to)}).",
                    f.appeal.number, step=f.step_id,
                ))
                continue
            result.fired.append((f.appeal.number, f.index, f.level.kind))
            log.info("appeal %s: %s (step %s) to %s", f.appeal.number, f.level.kind, f.step_id,
                     ", ".join(f"letter {o}" for _r, o in sent_to.get(f.step_id, [])) or "nobody")
            events.append(self._event(f, sent_to.get(f.step_id, []), roster))
        if orphans:  # claimed as fired above: ours to re-mark
            SlaStep.update(state=SKIPPED, note="некому отправить: нет нужной роли в списке сотрудников").where(
                SlaStep.id.in_(orphans)).execute()
            result.skipped += len(orphans)
        for chunk in range(0, len(events), CHUNK):
            Event.insert_many(events[chunk:chunk + CHUNK]).execute()

    # --- deciding what fires --------------------------------------------------------

    def _select(self, due: list[SlaStep], result: SweepResult) -> list[Fired]:
        candidates: list[Fired] = []
        skipped: dict[str, list[int]] = {}
        closed: set[int] = set()  # appeals already cancelled or re-planned in this pass
        for step in due:
            appeal: Appeal = step.appeal
            if appeal.number in closed:
                continue
            if appeal.status != "open":
                result.cancelled += cancel_steps(appeal.number, status_reason(appeal.status), self.now)
                closed.add(appeal.number)
                continue
            if appeal.due_at is None or not _same(step.planned_for, appeal.due_at):
                # The deadline changed without updated_at being bumped, so reconcile
                # missed it: re-plan now (which cancels this step); new steps fire later.
                if appeal.due_at is None:
                    result.cancelled += cancel_steps(appeal.number, "срок ответа снят", self.now)
                else:
                    result.cancelled += plan_appeal(appeal, self.calendar, self.ladder,
                                                    window_days=self.window_days, now=self.now)[1]
                result.planned += 1
                closed.add(appeal.number)
                continue
            level = self.ladder.level(step.level)
            if level is None or level.kind != step.kind:
                skipped.setdefault("уровень убран из настроек", []).append(step.id)
            elif level.kind == REMINDER and as_aware(appeal.due_at) <= self.now:
                skipped.setdefault("срок ответа уже истёк: напоминание не нужно", []).append(step.id)
            else:
                candidates.append(Fired(step.id, appeal, step.level, level))
        for note, ids in skipped.items():
            result.skipped += self._mark(ids, SKIPPED, note)
        return self._claim(candidates)

    def _claim(self, candidates: list[Fired]) -> list[Fired]:
        """Mark the candidates fired; only those still pending are ours (another sweep
        running at the same moment may have taken some)."""
        ids = [f.step_id for f in candidates]
        with database.atomic() as savepoint:
            if self._mark(ids, FIRED, "") == len(ids):
                return candidates
            savepoint.rollback()
        return [f for f in candidates if self._mark([f.step_id], FIRED, "")]

    def _mark(self, step_ids: list[int], state: str, note: str) -> int:
        """Move pending due steps to ``state``; returns how many were still pending.

        The due-time bound is redundant for the result but lets the database walk
        the (state, due_at) index over the due steps only."""
        count = 0
        for chunk in range(0, len(step_ids), CHUNK):
            count += (
                SlaStep.update(state=state, done_at=self.now_naive, note=note)
                .where((SlaStep.state == PENDING) & (SlaStep.due_at <= self.now_naive)
                       & SlaStep.id.in_(step_ids[chunk:chunk + CHUNK]))
                .execute()
            )
        return count

    # --- storing what fired --------------------------------------------------------

    def _queue(self, notice: Notice, composer: Composer) -> int:
        rendered = render(notice, composer)
        row = Outgoing.create(
            appeal=None,  # not tied to one appeal: a reply to it must not reach a student
            letter=None,
            kind=notice.kind,
            mail_from=composer.school.address,
            recipients=json.dumps(list(rendered.recipients)),
            message_id=rendered.message_id,
            raw=rendered.raw,
        )
        return row.id

    def _event(self, f: Fired, sent: list[tuple[str, int]], roster) -> dict:
        appeal = f.appeal
        data = {"step": f.step_id, "level": f.index, "to": [a for a, _ in sent],
                "outgoing": [o for _, o in sent]}
        if f.level.kind == REMINDER:
            people = "; ".join(f"{roster.name_of(a)} <{a}>" for a, _ in sent)
            return _event_row(
                "sla_reminder",
                f"Напоминание о сроке ответа по обращению № {appeal.number} отправлено: {people}.",
                appeal.number, **data,
            )
        targets = {
            address
            for spec in f.level.to
            for address in resolve(spec, assignee=appeal.assignee, class_name=appeal.class_name, roster=roster)
        }
        main = "; ".join(f"{roster.name_of(a)} <{a}>" for a, _ in sent if a in targets)
        copies = "; ".join(f"{roster.name_of(a)} <{a}>" for a, _ in sent if a not in targets)
        hours = self.calendar.working_hours_between(as_aware(appeal.due_at), self.now)
        late = late_text(hours)
        return _event_row(
            "sla_escalation",
            f"Обращение № {appeal.number} не получило ответа в срок"
            + (f" (просрочено на {late} рабочего времени)" if late else "")
            + f". Эскалация: письмо — {main}" + (f"; копия — {copies}" if copies else "") + ".",
            appeal.number, late_hours=round(hours, 2), **data,
        )


def _event_row(kind: str, message: str, appeal: int, **data) -> dict:
    return {"at": utcnow(), "kind": kind, "message": message, "appeal": appeal,
            "data": json.dumps(data, ensure_ascii=False, default=str)}


def _same(a, b) -> bool:
    return to_utc_naive(as_aware(a)) == to_utc_naive(as_aware(b))
