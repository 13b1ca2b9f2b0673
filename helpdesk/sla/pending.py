"""What the ladder still has to do: the pending steps of open appeals (read-only)."""
from __future__ import annotations

from datetime import datetime, timezone

from ..roster.store import load_roster
from ..store.models import Appeal, as_aware, database
from .ladder import ladder_from_config, resolve, window_days_from_config
from .models import PENDING, SlaStep
from .plan import reconcile


class _Rollback(Exception):
    pass


def pending_steps(config, now: datetime | None = None) -> list[dict]:
    """Upcoming steps, soonest first: ``{"appeal", "level", "kind", "due_at", "deadline",
    "assignee", "to", "copy"}`` (datetimes aware UTC). Appeals the sweep has not planned
    yet are planned for the listing only: nothing is stored."""
    from .. import app

    now = now or datetime.now(timezone.utc)
    calendar = app.work_calendar(config)
    ladder = ladder_from_config(config)
    rows: list[dict] = []
    try:
        with database.atomic():
            reconcile(calendar, ladder, window_days=window_days_from_config(config), now=now)
            roster = load_roster()
            query = (
                SlaStep.select(SlaStep, Appeal)
                .join(Appeal)
                .where((SlaStep.state == PENDING) & (Appeal.status == "open")
                       & (SlaStep.planned_for == Appeal.due_at))
                .order_by(SlaStep.due_at, SlaStep.id)
            )
            for step in query:
                appeal = step.appeal
                level = ladder.level(step.level)

                def who(specs) -> list[str]:
                    return list(dict.fromkeys(
                        a for spec in specs
                        for a in resolve(spec, assignee=appeal.assignee, class_name=appeal.class_name,
                                         roster=roster)
                    ))

                to = who(level.to) if level else []
                rows.append({
                    "appeal": appeal.number,
                    "level": step.level,
                    "kind": step.kind,
                    "due_at": as_aware(step.due_at),
                    "deadline": as_aware(appeal.due_at),
                    "assignee": appeal.assignee,
                    "to": to,
                    "copy": [a for a in who(level.copy) if a not in to] if level else [],
                })
            raise _Rollback
    except _Rollback:
        pass
    return rows
