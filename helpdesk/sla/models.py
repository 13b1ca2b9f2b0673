"""Stored state of the reminder and escalation ladder (schema version 2).

One ``SlaStep`` row per ladder level per appeal per deadline: the moment the
level falls due is computed once, with the school's working calendar, when the
steps are planned, so the sweep is a range query on ``(state, due_at)`` and
never recomputes the calendar for the open appeals.

``planned_for`` is the appeal's ``due_at`` the row was computed from. When a
follow-up reopens an appeal with a new deadline, the steps of the old deadline
are cancelled and a new set is planned; the old rows stay as history.
"""
from __future__ import annotations

from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField, TextField

from ..store.models import Appeal, BaseModel

PENDING = "pending"  # waiting for its due time
FIRED = "fired"  # the letter was queued
SKIPPED = "skipped"  # due, but pointless (a reminder after the deadline passed)
CANCELLED = "cancelled"  # the appeal was answered or closed, or its deadline changed

REMINDER = "reminder"
ESCALATION = "escalation"


class SlaStep(BaseModel):
    appeal = ForeignKeyField(Appeal, backref="sla_steps", on_delete="CASCADE")
    level = IntegerField()  # position in the ladder: 0 = the first level
    kind = CharField(max_length=16)  # reminder | escalation
    planned_for = DateTimeField()  # the appeal's due_at these steps were computed for (UTC)
    due_at = DateTimeField()  # when this level fires (UTC)
    state = CharField(max_length=16, default=PENDING)
    done_at = DateTimeField(null=True)  # when it fired, was skipped or cancelled (UTC)
    note = TextField(default="")  # why it was skipped or cancelled, in Russian

    class Meta:
        table_name = "sla_step"
        indexes = (
            (("state", "due_at"), False),  # the sweep: state = 'pending' AND due_at <= now
            (("appeal", "planned_for", "level"), True),  # once per level per deadline
        )


SLA_MODELS = [SlaStep]
