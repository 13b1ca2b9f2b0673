"""Peewee models: the only durable state of the daemon.

Every stage is a loop over rows of these tables (Mailman-style runners):
``Letter.status == "new"`` is the processing queue, ``Outgoing.status ==
"queued"`` the outbox. Timestamps are stored in UTC (naive UTC datetimes, the
portable choice for SQLite and PostgreSQL alike); the CLI and the letters show
them in the school's time zone.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from peewee import (
    AutoField,
    BlobField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DateTimeField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

database = DatabaseProxy()


def utcnow() -> datetime:
    """Naive UTC 'now', the form every timestamp column holds."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_utc_naive(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def as_aware(value: datetime | None) -> datetime | None:
    """A stored naive-UTC timestamp as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite may hand back text for old rows
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Meta(BaseModel):
    """Key/value facts about the database itself (schema version, ...)."""

    key = CharField(primary_key=True, max_length=64)
    value = TextField()


# --- the school --------------------------------------------------------------


class Person(BaseModel):
    """A student or a staff member. Parents are rows of ``Parent``."""

    email = CharField(unique=True, max_length=254)
    full_name = CharField(max_length=254)
    kind = CharField(max_length=16)  # student | staff
    roles = CharField(max_length=128, default="")  # staff roles, ';'-separated
    class_name = CharField(max_length=8, null=True, index=True)  # students only
    active = BooleanField(default=True)


class Parent(BaseModel):
    student = ForeignKeyField(Person, backref="parents", on_delete="CASCADE")
    email = CharField(max_length=254, index=True)
    position = IntegerField(default=0)  # order in the roster file

    class Meta:
        indexes = ((("student", "email"), True),)


class SchoolClass(BaseModel):
    name = CharField(unique=True, max_length=8)
    class_teacher = ForeignKeyField(Person, null=True, on_delete="SET NULL")


class TeachingAssignment(BaseModel):
    school_class = ForeignKeyField(SchoolClass, backref="assignments", on_delete="CASCADE")
    subject = CharField(max_length=128)
    teacher = ForeignKeyField(Person, on_delete="CASCADE")
    position = IntegerField(default=0)

    class Meta:
        indexes = ((("school_class", "subject", "teacher"), True),)


# --- mail in ------------------------------------------------------------------


class MailboxState(BaseModel):
    """getmail-style bookkeeping: the highest UID stored per (mailbox, UIDVALIDITY)."""

    mailbox = CharField(unique=True, max_length=255)  # "user@host:port/FOLDER"
    uidvalidity = IntegerField(null=True)
    last_uid = IntegerField(default=0)
    last_poll_at = DateTimeField(null=True)


class Appeal(BaseModel):
    number = AutoField()
    status = CharField(max_length=16, default="open", index=True)  # open|answered|closed
    sender = CharField(max_length=254, index=True)
    sender_name = CharField(max_length=254, default="")
    sender_role = CharField(max_length=16)
    student = CharField(max_length=254, null=True)  # the student the appeal concerns
    class_name = CharField(max_length=8, null=True)
    subject = CharField(max_length=128, null=True)
    category = CharField(max_length=32)
    assignee = CharField(max_length=254, index=True)
    triage = BooleanField(default=False)
    confidence = FloatField(default=1.0)
    reasons = TextField(default="[]")  # JSON list of Russian sentences
    title = TextField(default="")  # the subject line of the first letter
    thread_root = CharField(max_length=998, null=True)  # Message-ID of the first letter
    received_at = DateTimeField(index=True)
    due_at = DateTimeField(null=True, index=True)
    answered_at = DateTimeField(null=True)
    closed_at = DateTimeField(null=True)
    updated_at = DateTimeField(default=utcnow)

    def reason_list(self) -> list[str]:
        return json.loads(self.reasons or "[]")


class Letter(BaseModel):
    """One incoming letter, raw bytes kept: the mailbox is the only copy of what a child wrote."""

    mailbox = CharField(max_length=255)
    uidvalidity = IntegerField(null=True)
    uid = IntegerField(null=True)
    message_id = CharField(max_length=998, null=True, unique=True)
    content_hash = CharField(max_length=64, index=True)
    raw = BlobField()
    fetched_at = DateTimeField(default=utcnow)
    received_at = DateTimeField(default=utcnow, index=True)  # IMAP INTERNALDATE (UTC)
    date = DateTimeField(null=True)  # the Date header (UTC)
    sender = CharField(max_length=254, default="")
    title = TextField(default="")
    kind = CharField(max_length=16, null=True)  # appeal|followup|teacher_reply|auto_reply|bounce|bulk
    status = CharField(max_length=16, default="new", index=True)  # new|processed|ignored|quarantined
    reason = TextField(default="")
    appeal = ForeignKeyField(Appeal, null=True, backref="letters", on_delete="SET NULL")
    attempts = IntegerField(default=0)

    class Meta:
        indexes = ((("mailbox", "uidvalidity", "uid"), True),)


# --- mail out -----------------------------------------------------------------


class Outgoing(BaseModel):
    """A rendered letter waiting to be sent. Rendered once, at queue time, so a
    resend after a crash sends the same bytes with the same Message-ID."""

    appeal = ForeignKeyField(Appeal, null=True, backref="outgoing", on_delete="SET NULL")
    letter = ForeignKeyField(Letter, null=True, on_delete="SET NULL")  # what caused it
    kind = CharField(max_length=32)  # ack | to_assignee | relay | ...
    mail_from = CharField(max_length=254)
    recipients = TextField()  # JSON list
    message_id = CharField(max_length=998, unique=True)
    raw = BlobField()
    status = CharField(max_length=16, default="queued", index=True)  # queued|sending|sent|failed
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(default=utcnow, index=True)
    last_error = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)
    # While ``sending``: which process holds the letter ("host/pid/start token") and
    # until when (naive UTC). Schema version 6; see helpdesk/outbox/sender.py.
    claimed_by = CharField(max_length=255, null=True)
    lease_until = DateTimeField(null=True)

    def recipient_list(self) -> list[str]:
        return json.loads(self.recipients)


# --- what happened ---------------------------------------------------------------


class Event(BaseModel):
    """The event log: every decision, in words a deputy head understands."""

    at = DateTimeField(default=utcnow, index=True)
    kind = CharField(max_length=32)
    appeal = ForeignKeyField(Appeal, null=True, backref="events", on_delete="CASCADE")
    letter = ForeignKeyField(Letter, null=True, backref="events", on_delete="SET NULL")
    message = TextField()
    data = TextField(default="{}")


ALL_MODELS = [
    Meta,
    Person,
    Parent,
    SchoolClass,
    TeachingAssignment,
    MailboxState,
    Appeal,
    Letter,
    Outgoing,
    Event,
]
