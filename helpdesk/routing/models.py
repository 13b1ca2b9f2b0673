"""Stored state of routing beyond the roster (schema version 3).

- ``StaffAbsence``: a staff member away for a period, with an optional substitute
  (``helpdesk absence add``). The router reads them as ``domain.Absence`` values
  through ``helpdesk.routing.store.load_absences``.
- ``RoutingCorrection``: an appeal given by hand to another staff member
  (``helpdesk appeals reassign``). Each row keeps what the rules had decided
  (category, class, subject, triage, confidence) next to the person who was
  right, so the school can see where the rules were wrong
  (``helpdesk corrections list``).
"""
from __future__ import annotations

from peewee import BooleanField, CharField, DateField, DateTimeField, FloatField, ForeignKeyField, TextField

from ..store.models import Appeal, BaseModel, utcnow


class StaffAbsence(BaseModel):
    teacher = CharField(max_length=254, index=True)  # staff e-mail, lower case
    start = DateField()  # first day away (school's calendar day)
    end = DateField(index=True)  # last day away, included
    substitute = CharField(max_length=254, null=True)  # staff e-mail
    note = TextField(default="")  # "больничный", "курсы", ...
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "staff_absence"


class RoutingCorrection(BaseModel):
    appeal = ForeignKeyField(Appeal, backref="corrections", on_delete="CASCADE")
    old_assignee = CharField(max_length=254)
    new_assignee = CharField(max_length=254)
    source = CharField(max_length=16, default="cli")  # cli | mail (the teachers' mail command)
    who = CharField(max_length=254, default="")  # the operator or the staff member who corrected
    note = TextField(default="")
    # What the rules had decided when the correction was made.
    category = CharField(max_length=32, default="")
    class_name = CharField(max_length=8, null=True)
    subject = CharField(max_length=128, null=True)
    triage = BooleanField(default=False)
    confidence = FloatField(default=1.0)
    at = DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "routing_correction"


ROUTING_MODELS = [StaffAbsence, RoutingCorrection]
