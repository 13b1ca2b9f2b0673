"""Stored state of the daily digest (schema version 4).

``DigestSent``: one row per school day a digest was queued for. The unique
``day`` is the exactly-once mark; it is written in the same transaction as the
``Outgoing`` row of the letter, so a crash leaves either both or neither.
"""
from __future__ import annotations

from peewee import BooleanField, DateField, DateTimeField, IntegerField, TextField

from ..store.models import BaseModel, utcnow


class DigestSent(BaseModel):
    day = DateField(unique=True)  # the school's calendar day the digest is for
    sent_at = DateTimeField(default=utcnow)  # when it was queued (naive UTC)
    period_start = DateTimeField()  # naive UTC, included
    period_end = DateTimeField()  # naive UTC, excluded (the scheduled send moment)
    outgoing = IntegerField(null=True)  # Outgoing.id; None when nobody could be addressed
    late = BooleanField(default=False)
    manual = BooleanField(default=False)  # queued by ``helpdesk digest --send``
    note = TextField(default="")

    class Meta:
        table_name = "digest_sent"


DIGEST_MODELS = [DigestSent]
